"""Workflow files: valid against the live node registry and ComfyUI's own prompt validation."""
import json
from pathlib import Path

import pytest

WORKFLOWS = sorted((Path(__file__).resolve().parent.parent / "workflows").glob("*.json"))


@pytest.fixture(scope="module")
def placeholder_models(runtime, tmp_path_factory):
    """Empty files named as in ComfyUI's templates, so validation can check names without weights."""
    import folder_paths
    from PIL import Image

    from tools.workflow import model_files

    root = tmp_path_factory.mktemp("models")
    for folder, names in model_files(WORKFLOWS).items():
        (root / folder).mkdir()
        for name in names:
            (root / folder / name).touch()
        folder_paths.add_model_folder_path(folder, str(root / folder))
    inputs = tmp_path_factory.mktemp("input")
    Image.new("RGB", (64, 64), (200, 100, 50)).save(inputs / "example.png")
    folder_paths.set_input_directory(str(inputs))
    return root


def test_there_are_workflows_for_the_demo_and_every_video_family_asked_for():
    names = {p.name for p in WORKFLOWS}
    assert {"adacache_demo_tiny_model.json", "wan2.1_t2v_1.3B_adacache.json", "wan2.1_i2v_480p_14B_adacache.json",
            "wan2.2_t2v_A14B_two_experts_adacache.json", "wan2.2_ti2v_5B_adacache.json",
            "hunyuan_video_t2v_720p_adacache.json", "ltx_video_2b_t2v_adacache.json",
            "wan2.1_t2v_14B_raylight_adacache.json"} <= names


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_is_valid_in_comfyui(runtime, placeholder_models, path):
    from tools import comfy_exec
    from tools.workflow import check_links, ui_to_api

    workflow = json.loads(path.read_text())
    types = {n["type"] for n in workflow["nodes"]}
    if "RayInitializer" in types:  # Raylight's nodes, registered as ComfyUI would load them from custom_nodes
        import nodes

        from test_raylight import require_raylight

        require_raylight()
        if "RayInitializer" not in nodes.NODE_CLASS_MAPPINGS:
            from tools import comfy_runtime

            comfy_runtime.load_raylight_nodes()
    assert check_links(workflow) == []
    assert {"AdaCacheMoRegSettings", "AdaCacheScheduleViewer"} <= types
    assert types & {"AdaCachePatchModel", "AdaCachePatchModelRaylight"}
    prompt = ui_to_api(workflow)
    valid, error, outputs, node_errors = comfy_exec.validate(prompt)
    assert valid, (error, node_errors)
    viewer = [k for k, v in prompt.items() if v["class_type"] == "AdaCacheScheduleViewer"]
    assert viewer and set(viewer) <= set(outputs)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_model_file_says_where_to_download_it(path):
    """As in ComfyUI's templates: each loader node lists name, url and folder of the files it loads."""
    from tools.workflow import LOADER_FOLDERS

    for node in json.loads(path.read_text())["nodes"]:
        folder = LOADER_FOLDERS.get(node["type"])
        files = [v for v in node.get("widgets_values") or [] if isinstance(v, str) and v.endswith(".safetensors")]
        entries = {m["name"]: m for m in node["properties"].get("models", [])}
        for name in files:
            if name == "tiny_wan21_motion.safetensors":  # bundled in demo_models/, nothing to download
                continue
            assert name in entries, (path.name, node["type"], name)
            assert entries[name]["directory"] == folder
            assert entries[name]["url"].startswith("https://huggingface.co/") and entries[name]["url"].endswith("/" + name)


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

    config = runtime.pack.adacache_core.config
    saved = json.loads(SAVED_BEFORE_RENAME.read_text())
    prompt = ui_to_api(saved)
    patch = next(v for v in prompt.values() if v["class_type"] == "AdaCachePatchModel")
    assert patch["inputs"]["preset"] == "fast (paper, 30 steps)" and patch["inputs"]["target_speedup"] == 0
    before = _run_data(runtime, prompt)
    patch["inputs"]["preset"] = config.RENAMED_PRESETS["fast (paper, 30 steps)"]
    after = _run_data(runtime, prompt)
    assert before["settings"]["preset"] == after["settings"]["preset"] == "paper: fastest (fast, 30 steps)"
    assert [(c["step"], c["computed"]) for c in before["calls"]] == [(c["step"], c["computed"]) for c in after["calls"]]
    assert before["summary"]["computed_steps"] < 30


def test_every_old_preset_name_gives_the_codebook_it_gave(runtime):
    config = runtime.pack.adacache_core.config
    old_codebooks = {"fast (paper, 30 steps)": ((0.08, 6), (0.16, 5), (0.24, 4), (0.32, 3), (0.40, 2), (1.00, 1)),
                     "slow (paper, 30 steps)": ((0.08, 3), (0.16, 2), (0.24, 1), (0.32, 1), (0.40, 1), (1.00, 1)),
                     "paper (100 steps)": ((0.03, 12), (0.05, 10), (0.07, 8), (0.09, 6), (0.11, 4), (1.00, 3))}
    assert set(config.RENAMED_PRESETS) == set(old_codebooks)
    for old, entries in old_codebooks.items():
        assert config.resolve_codebook(old).entries == entries
        assert config.RENAMED_PRESETS[old] in config.PRESETS
    assert list(config.PRESETS) == ["paper: fastest (fast, 30 steps)", "paper: middle (100 steps)", "paper: slowest (slow, 30 steps)"]
