"""Workflow files: valid against the live node registry and ComfyUI's own prompt validation."""
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tools import make_workflows

WORKFLOW_DIR = Path(__file__).resolve().parent.parent / "workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.json"))


@pytest.fixture(scope="module")
def placeholder_models(runtime, tmp_path_factory):
    """Empty files named as the loaders' downloads, each in the folder its ``models`` entry names, and
    the LoadImage images: validation then checks names and folders without weights."""
    import folder_paths
    from PIL import Image

    from tools.workflow import input_images, model_files

    root = tmp_path_factory.mktemp("models")
    for folder, names in model_files(WORKFLOWS).items():
        (root / folder).mkdir()
        for name in names:
            (root / folder / name).touch()
        folder_paths.add_model_folder_path(folder, str(root / folder))
    inputs = tmp_path_factory.mktemp("input")
    for name in input_images(WORKFLOWS):
        Image.new("RGB", (64, 64), (200, 100, 50)).save(inputs / name)
    folder_paths.set_input_directory(str(inputs))
    return root


@pytest.fixture(scope="module")
def registry(runtime):
    """ComfyUI's nodes, the pack's and, where it can be imported, Raylight's (as ComfyUI would load
    them from custom_nodes); a test of a workflow with Raylight's nodes asks for it with needs_raylight."""
    import nodes

    from test_raylight import missing

    if not missing() and "RayInitializer" not in nodes.NODE_CLASS_MAPPINGS:
        from tools import comfy_runtime

        comfy_runtime.load_raylight_nodes()
    return nodes.NODE_CLASS_MAPPINGS


def needs_raylight(workflow: dict) -> None:
    from test_raylight import require_raylight

    if any(n["type"] == "RayInitializer" for n in workflow["nodes"]):
        require_raylight()


def test_there_are_workflows_for_the_demo_and_every_video_family_asked_for():
    names = {p.name for p in WORKFLOWS}
    assert {"adacache_demo_tiny_model.json", "wan2.1_t2v_1.3B_adacache.json", "wan2.1_i2v_480p_14B_adacache.json",
            "wan2.2_t2v_A14B_two_experts_adacache.json", "wan2.2_ti2v_5B_adacache.json",
            "hunyuan_video_t2v_720p_adacache.json", "ltx_video_2b_t2v_adacache.json",
            "wan2.1_t2v_14B_raylight_adacache.json"} <= names


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_is_valid_in_comfyui(registry, placeholder_models, path):
    from tools import comfy_exec
    from tools.workflow import check_links, ui_to_api

    workflow = json.loads(path.read_text())
    needs_raylight(workflow)
    types = {n["type"] for n in workflow["nodes"]}
    assert check_links(workflow) == []
    assert "AdaCacheScheduleViewer" in types
    assert types & {"AdaCachePatchModel", "AdaCachePatchModelRaylight"}
    prompt = ui_to_api(workflow)
    # MoReg Settings only where they act: on a Patch Model whose knob is at 0 (the paper's schedule)
    patches = [v["inputs"] for v in prompt.values() if v["class_type"].startswith("AdaCachePatchModel")]
    assert all(("moreg" in p) == (p["target_speedup"] == 0) for p in patches)
    assert ("AdaCacheMoRegSettings" in types) == any("moreg" in p for p in patches)
    valid, error, outputs, node_errors = comfy_exec.validate(prompt)
    assert valid, (error, node_errors)
    viewer = [k for k, v in prompt.items() if v["class_type"] == "AdaCacheScheduleViewer"]
    assert viewer and set(viewer) <= set(outputs)


COMPARE_WORKFLOWS = [p for p in WORKFLOWS if any(n["type"] == "AdaCacheCompare" for n in json.loads(p.read_text())["nodes"])]


@pytest.mark.parametrize("path", COMPARE_WORKFLOWS, ids=lambda p: p.name)
def test_the_compare_branch_is_bypassed_and_valid_when_turned_on(registry, placeholder_models, path):
    """The real-model workflows ship the uncached run and AdaCache Compare bypassed (a full run more), in a group
    that says how to turn them on; turned on, they compare the unpatched model's run with the patched one's."""
    from tools import comfy_exec
    from tools.workflow import ui_to_api

    workflow = json.loads(path.read_text())
    compare = next(n for n in workflow["nodes"] if n["type"] == "AdaCacheCompare")
    if path.name == "adacache_demo_tiny_model.json":  # the demo runs it: the uncached branch is cheap there
        assert compare["mode"] == 0
        return
    from tools.make_thumbnails import node_box

    group = next(g for g in workflow["groups"] if "Ctrl+B" in g["title"])  # the group that says how to turn it on
    gx, gy, gw, gh = group["bounding"]
    branch = [n for n in workflow["nodes"] if gx <= node_box(n)[0] and node_box(n)[2] <= gx + gw
              and gy <= node_box(n)[1] and node_box(n)[3] <= gy + gh]
    assert sorted(n["type"] for n in branch) == ["AdaCacheCompare", "KSampler", "VAEDecode"]
    assert all(n["mode"] == 4 for n in branch)
    assert all(str(n["id"]) not in ui_to_api(workflow) for n in branch)
    for node in branch:
        node["mode"] = 0
    prompt = ui_to_api(workflow)
    valid, error, outputs, node_errors = comfy_exec.validate(prompt)
    assert valid, (error, node_errors)
    inputs = prompt[str(compare["id"])]["inputs"]
    samplers = {name: prompt[inputs[name][0]] for name in ("uncached_latent", "adacache_latent")}
    model_of = {name: prompt[s["inputs"]["model"][0]]["class_type"] for name, s in samplers.items()}
    assert model_of["adacache_latent"] == "AdaCachePatchModel" and model_of["uncached_latent"] != "AdaCachePatchModel"
    assert samplers["uncached_latent"]["inputs"] | {"model": None} == samplers["adacache_latent"]["inputs"] | {"model": None}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_model_file_says_where_to_download_it(runtime, path):
    """As in ComfyUI's templates: each loader node lists name, url and model folder of the files it loads
    (that the folder is the one the loader reads, validation above shows: the files are only there)."""
    import folder_paths

    for node in json.loads(path.read_text())["nodes"]:
        files = [v for v in node.get("widgets_values") or [] if isinstance(v, str) and v.endswith(".safetensors")]
        entries = {m["name"]: m for m in node["properties"].get("models", [])}
        for name in files:
            if name == "tiny_wan21_motion.safetensors":  # bundled in demo_models/, nothing to download
                continue
            assert name in entries, (path.name, node["type"], name)
            assert entries[name]["directory"] in folder_paths.folder_names_and_paths
            url = urlsplit(entries[name]["url"])
            assert (url.scheme, url.netloc) == ("https", "huggingface.co") and url.path.endswith("/" + name)


TEMPLATED = [name for name, spec in make_workflows.WORKFLOWS.items() if spec.template]


@pytest.mark.parametrize("name", TEMPLATED)
def test_workflow_keeps_its_templates_settings(registry, name):
    """Every widget value, mode and link of the template's nodes is kept, but where the pack's nodes
    are inserted; nodes removed, replaced, enabled or added are listed in docs/template_differences.md."""
    from tools import templates

    workflow = json.loads((WORKFLOW_DIR / name).read_text())
    needs_raylight(workflow)
    found = templates.differences(workflow, templates.load(make_workflows.WORKFLOWS[name].template))
    assert [d.text for d in found if d.drift] == []
    assert any(d.kind == "pack" for d in found)


def test_a_changed_template_setting_or_link_is_caught(registry):
    """The HunyuanVideo template decodes with tiles of 256 and schedules on the model as loaded: a workflow
    that decodes with 512 or schedules on the patched, shifted model drifts."""
    from tools import templates

    workflow = json.loads((WORKFLOW_DIR / "hunyuan_video_t2v_720p_adacache.json").read_text())
    nodes = {n["type"]: n for n in workflow["nodes"]}
    assert nodes["VAEDecodeTiled"]["widgets_values"][0] == 256
    nodes["VAEDecodeTiled"]["widgets_values"][0] = 512
    link = next(l for l in workflow["links"] if l[3] == nodes["BasicScheduler"]["id"])
    link[1] = nodes["AdaCachePatchModel"]["id"]
    drift = [d.text for d in templates.differences(workflow, templates.load("hunyuan_video_text_to_video")) if d.drift]
    assert drift == ["VAEDecodeTiled: tile_size 256 -> 512",
                     "BasicScheduler.model from ModelSamplingSD3 (the template: UNETLoader)"]


def test_the_stated_differences_are_current(registry):
    for path in WORKFLOWS:
        needs_raylight(json.loads(path.read_text()))
    assert make_workflows.DOC.read_text() == make_workflows.differences_doc(), \
        "run `.venv/bin/python tools/make_workflows.py` and commit docs/template_differences.md"


def test_nodes_of_other_packs_name_their_pack(runtime):
    """The front end names the pack to install from a node's cnr_id (registry) and aux_id (repository)."""
    from tools.workflow import FRONTEND_ONLY

    for path in WORKFLOWS:
        for node in json.loads(path.read_text())["nodes"]:
            if node["type"] not in runtime.builtin_nodes and node["type"] not in FRONTEND_ONLY \
                    and not node["type"].startswith("AdaCache"):
                assert node["properties"].get("cnr_id") and node["properties"].get("aux_id"), (path.name, node["type"])


def test_validation_catches_a_bad_widget_value(runtime, placeholder_models):
    from tools import comfy_exec
    from tools.workflow import ui_to_api

    workflow = json.loads(WORKFLOWS[0].read_text())
    node = next(n for n in workflow["nodes"] if n["type"] == "AdaCachePatchModel")
    node["widgets_values"][0] = "custom"
    node["widgets_values"][1] = "0.3:2, 0.1:4"
    valid, error, _, node_errors = comfy_exec.validate(ui_to_api(workflow))
    assert not valid
    assert "strictly ascending" in json.dumps(node_errors)


SAVED_BEFORE_RENAME = Path(__file__).resolve().parent / "data" / "adacache_demo_tiny_model_saved_before_preset_rename.json"


def _run_data(runtime, prompt: dict) -> dict:
    """The viewer's run data of one execution of ``prompt``."""
    from tools import comfy_exec

    executor = comfy_exec.execute(prompt)
    viewer = next(k for k, v in prompt.items() if v["class_type"] == "AdaCacheScheduleViewer")
    text = "\n".join(executor.history_result["outputs"][viewer]["text"])
    path = runtime.output_dir / text.rsplit("run data: ", 1)[1].strip()
    return json.loads(path.read_text())["model"]


def test_a_workflow_saved_with_the_old_preset_names_runs_as_before(runtime):
    """The demo as saved before the presets were renamed (the file at commit 6048504: the speed knob off, so the
    preset's codebook decides): it passes validation and computes the same steps as the new name."""
    from tools.workflow import ui_to_api

    codebooks = runtime.pack.adacache_core.codebooks
    saved = json.loads(SAVED_BEFORE_RENAME.read_text())
    prompt = ui_to_api(saved)
    patch = next(v for v in prompt.values() if v["class_type"] == "AdaCachePatchModel")
    assert patch["inputs"]["preset"] == "fast (paper, 30 steps)" and patch["inputs"]["target_speedup"] == 0
    before = _run_data(runtime, prompt)
    patch["inputs"]["preset"] = codebooks.RENAMED_PRESETS["fast (paper, 30 steps)"]
    after = _run_data(runtime, prompt)
    assert before["settings"]["preset"] == after["settings"]["preset"] == "paper: fastest (fast, 30 steps)"
    assert [(c["step"], c["computed"]) for c in before["calls"]] == [(c["step"], c["computed"]) for c in after["calls"]]
    assert before["summary"]["computed_steps"] < 30


def test_every_old_preset_name_gives_the_codebook_it_gave(runtime):
    codebooks = runtime.pack.adacache_core.codebooks
    old_codebooks = {"fast (paper, 30 steps)": ((0.08, 6), (0.16, 5), (0.24, 4), (0.32, 3), (0.40, 2), (1.00, 1)),
                     "slow (paper, 30 steps)": ((0.08, 3), (0.16, 2), (0.24, 1), (0.32, 1), (0.40, 1), (1.00, 1)),
                     "paper (100 steps)": ((0.03, 12), (0.05, 10), (0.07, 8), (0.09, 6), (0.11, 4), (1.00, 3))}
    assert set(codebooks.RENAMED_PRESETS) == set(old_codebooks)
    for old, entries in old_codebooks.items():
        assert codebooks.resolve_codebook(old).entries == entries
        assert codebooks.RENAMED_PRESETS[old] in codebooks.PRESETS
    assert list(codebooks.PRESETS) == ["paper: fastest (fast, 30 steps)", "paper: middle (100 steps)", "paper: slowest (slow, 30 steps)"]
