"""The pack loads in a real ComfyUI through its own custom-node loader."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

EXPECTED = {
    "AdaCachePatchModel": ("AdaCache Patch Model", "AdaCache"),
    "AdaCacheMoRegSettings": ("MoReg Settings", "AdaCache"),
    "AdaCacheCompare": ("AdaCache Compare", "AdaCache"),
}


def test_pack_module_is_loaded_by_comfyui(runtime):
    import nodes

    assert str(REPO) in {str(Path(p)) for p in nodes.LOADED_MODULE_DIRS.values()}
    assert hasattr(runtime.pack, "comfy_entrypoint")


def test_every_node_registered_with_display_name_and_category(runtime):
    import nodes

    for node_id, (display, category) in EXPECTED.items():
        cls = nodes.NODE_CLASS_MAPPINGS[node_id]
        assert nodes.NODE_DISPLAY_NAME_MAPPINGS[node_id] == display
        info = cls.GET_NODE_INFO_V1()
        assert info["category"] == category
        assert info["display_name"] == display
        for name, spec in info["input"]["required"].items():
            assert spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"


def test_loading_the_pack_changes_no_builtin_node(runtime):
    import nodes

    for node_id, (cls, display) in runtime.builtin_nodes.items():
        assert nodes.NODE_CLASS_MAPPINGS[node_id] is cls, node_id
        assert nodes.NODE_DISPLAY_NAME_MAPPINGS.get(node_id) == display, node_id
    added = set(nodes.NODE_CLASS_MAPPINGS) - set(runtime.builtin_nodes)
    assert set(EXPECTED) <= added
    assert all(nodes.NODE_CLASS_MAPPINGS[n].RELATIVE_PYTHON_MODULE.startswith("custom_nodes.") for n in added)


def test_core_does_not_import_comfy():
    code = ("import sys; sys.path.insert(0, %r); import adacache_core, adacache_core.planner; "
            "bad = [m for m in sys.modules if m == 'comfy' or m.startswith('comfy.')]; "
            "assert not bad, bad; print('ok')") % str(REPO)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_front_end_extension_is_registered(runtime):
    import nodes

    web = [Path(d) for d in nodes.EXTENSION_WEB_DIRS.values()]
    assert REPO / "web" in web
    script = (REPO / "web" / "schedule_viewer.js").read_text()
    assert script.count("AdaCacheScheduleViewer") == 1 and script.count("AdaCacheCompare") == 1  # both show their text
