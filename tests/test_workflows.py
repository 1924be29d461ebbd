"""Workflow files: valid against the live node registry and ComfyUI's own prompt validation."""
import json
from pathlib import Path
from urllib.parse import urlsplit

import helpers as h
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
            "wan2.1_t2v_14B_raylight_adacache.json", "ltx2_3_t2v_adacache.json"} <= names


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_is_valid_in_comfyui(registry, placeholder_models, path):
    from tools import comfy_exec
    from tools.workflow import all_nodes, check_links, ui_to_api

    workflow = json.loads(path.read_text())
    needs_raylight(workflow)
    h.needs_comfyui(path.name)
    types = {n["type"] for n in all_nodes(workflow)}  # a subgraph's nodes too
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
# Real-model workflows without the compare branch, and why (the others all have one).
NO_COMPARE = {"wan2.1_t2v_1.3B_adacache_calibrated.json": "calibration samples twice more already",
              "wan2.1_t2v_1.3B_adacache_plan_search.json": "Plan Search samples many times already",
              "wan2.1_t2v_14B_raylight_adacache.json": "the Raylight workers sample, not a local KSampler",
              "wan2.2_t2v_A14B_lightx2v_4steps_adacache.json": "AdaCache computes every one of its 4 steps",
              "ltx2_3_t2v_adacache.json": "two stages inside a subgraph; AdaCache is on the first only"}


@pytest.mark.parametrize("path", COMPARE_WORKFLOWS, ids=lambda p: p.name)
def test_the_compare_branch_samples_the_same_noise_after_every_run(path):
    """Both runs keep their seed (no control after generate but 'fixed'): the uncached run samples the AdaCache run's
    noise on every queue, and ComfyUI keeps its result while the knob turns. (A noise node both share may change.)"""
    samplers = [n for n in json.loads(path.read_text())["nodes"] if n["type"] in ("KSampler", "KSamplerAdvanced", "SamplerCustom")]
    assert all(not {"randomize", "increment", "decrement"} & set(map(str, n["widgets_values"])) for n in samplers), \
        [(n["id"], n["widgets_values"][:3]) for n in samplers]


def test_the_real_model_workflows_with_one_sampling_run_have_a_compare_branch():
    """Every real-model workflow ships the bypassed uncached run, whatever samples it (one KSampler, two
    KSamplerAdvanced experts, SamplerCustom, a guider and SamplerCustomAdvanced), but those listed with why."""
    names = {p.name for p in COMPARE_WORKFLOWS}
    assert names.isdisjoint(NO_COMPARE)
    assert names | set(NO_COMPARE) == set(make_workflows.WORKFLOWS)
    assert {"wan2.2_t2v_A14B_two_experts_adacache.json", "hunyuan_video_t2v_720p_adacache.json",
            "ltx_video_2b_t2v_adacache.json", "wan2.1_t2v_1.3B_adacache.json"} <= names


def _same_run_without_the_patch(prompt: dict, uncached: str, cached: str) -> int:
    """Whether node ``uncached`` computes what ``cached`` does, but on the models AdaCache Patch Model takes: same
    type and settings, inputs from the same nodes or from such copies. Returns how many Patch Models it went around."""
    a, b = prompt[uncached], prompt[cached]
    assert a["class_type"] == b["class_type"] and a["inputs"].keys() == b["inputs"].keys(), (uncached, cached)
    around = 0
    for name, mine in a["inputs"].items():
        theirs = b["inputs"][name]
        if not isinstance(theirs, list):
            assert mine == theirs, (a["class_type"], name)
        elif prompt[theirs[0]]["class_type"] == "AdaCachePatchModel":
            assert mine == prompt[theirs[0]]["inputs"]["model"], (a["class_type"], name)  # the model it patches
            around += 1
        elif mine != theirs:
            assert mine[1] == theirs[1]
            around += _same_run_without_the_patch(prompt, mine[0], theirs[0])
    return around


@pytest.mark.parametrize("path", COMPARE_WORKFLOWS, ids=lambda p: p.name)
def test_the_compare_branch_is_bypassed_and_valid_when_turned_on(registry, placeholder_models, path):
    """The real-model workflows ship the uncached run and AdaCache Compare bypassed (a full run more), in a group
    that says how to turn them on; turned on, they compare the unpatched model's run with the patched one's: the
    same nodes with the same settings (two experts chained as in the template), on the model(s) before AdaCache."""
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

    def inside(n: dict) -> bool:
        return gx <= node_box(n)[0] and node_box(n)[2] <= gx + gw and gy <= node_box(n)[1] and node_box(n)[3] <= gy + gh

    def touches(n: dict) -> bool:
        return node_box(n)[0] < gx + gw and gx < node_box(n)[2] and node_box(n)[1] < gy + gh and gy < node_box(n)[3]

    branch = [n for n in workflow["nodes"] if inside(n)]
    assert [n["id"] for n in workflow["nodes"] if touches(n) and not inside(n)] == []  # no other node in its box
    decoders = [n for n in branch if n["type"] in ("VAEDecode", "VAEDecodeTiled")]
    samplers = [n for n in branch if n not in decoders and n is not compare]
    assert compare in branch and len(decoders) == 1 and samplers
    assert all(n["title"].endswith(make_workflows.UNCACHED) for n in samplers)
    assert all(n["mode"] == 4 for n in branch)
    assert all(str(n["id"]) not in ui_to_api(workflow) for n in branch)
    for node in branch:
        node["mode"] = 0
    prompt = ui_to_api(workflow)
    valid, error, outputs, node_errors = comfy_exec.validate(prompt)
    assert valid, (error, node_errors)
    inputs = prompt[str(compare["id"])]["inputs"]
    assert _same_run_without_the_patch(prompt, inputs["uncached"][0], inputs["adacache"][0]) == \
        sum(v["class_type"] == "AdaCachePatchModel" for v in prompt.values())  # every patched model, once
    assert prompt[inputs["uncached"][0]]["inputs"]["samples"] == inputs["uncached_latent"]
    assert prompt[inputs["adacache"][0]]["inputs"]["samples"] == inputs["adacache_latent"]


def test_a_compare_branch_that_keeps_a_patched_model_is_caught(registry):
    """The check above fails on an uncached run that samples a patched model (here the two-expert workflow's
    second uncached expert on the second Patch Model)."""
    from tools.workflow import ui_to_api

    workflow = json.loads((WORKFLOW_DIR / "wan2.2_t2v_A14B_two_experts_adacache.json").read_text())
    for node in workflow["nodes"]:
        if node["mode"] == 4 and node["type"] in ("KSamplerAdvanced", "VAEDecode", "AdaCacheCompare"):  # the branch on
            node["mode"] = 0
    prompt = ui_to_api(workflow)
    compare = next(v for v in prompt.values() if v["class_type"] == "AdaCacheCompare")
    uncached, cached = compare["inputs"]["uncached_latent"][0], compare["inputs"]["adacache_latent"][0]
    assert _same_run_without_the_patch(prompt, uncached, cached) == 2
    prompt[uncached]["inputs"]["model"] = prompt[cached]["inputs"]["model"]
    with pytest.raises(AssertionError):
        _same_run_without_the_patch(prompt, uncached, cached)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_model_file_says_where_to_download_it(runtime, path):
    """As in ComfyUI's templates: each loader node lists name, url and model folder of the files it loads
    (that the folder is the one the loader reads, validation above shows: the files are only there)."""
    import folder_paths

    from tools.workflow import all_nodes

    h.needs_comfyui(path.name)  # a newer ComfyUI's template: its model folders are that ComfyUI's
    for node in all_nodes(json.loads(path.read_text())):
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
    found = templates.differences(workflow, make_workflows.WORKFLOWS[name].load_template())
    assert [d.text for d in found if d.drift] == []
    assert any(d.kind == "pack" for d in found)


def test_a_changed_template_setting_or_link_is_caught(registry):
    """The HunyuanVideo template decodes with tiles of 256 and schedules on the model as loaded: a workflow
    that decodes with 512 or schedules on the patched, shifted model drifts."""
    from tools import templates

    workflow = json.loads((WORKFLOW_DIR / "hunyuan_video_t2v_720p_adacache.json").read_text())
    nodes = {}
    for node in workflow["nodes"]:  # the template's nodes come first (the compare branch has copies of some)
        nodes.setdefault(node["type"], node)
    assert nodes["VAEDecodeTiled"]["widgets_values"][0] == 256
    nodes["VAEDecodeTiled"]["widgets_values"][0] = 512
    link = next(l for l in workflow["links"] if l[3] == nodes["BasicScheduler"]["id"])
    link[1] = nodes["AdaCachePatchModel"]["id"]
    drift = [d.text for d in templates.differences(workflow, templates.load("hunyuan_video_text_to_video")) if d.drift]
    assert drift == ["VAEDecodeTiled: tile_size 256 -> 512",
                     "BasicScheduler.model from ModelSamplingSD3 (the template: UNETLoader)"]


def test_a_changed_setting_or_link_inside_a_subgraph_is_caught(registry):
    """The LTX-2.3 workflow samples inside its template's subgraph: a changed setting or link there drifts too."""
    from tools import templates
    from tools.workflow import SUBGRAPH_INPUT

    workflow = json.loads((WORKFLOW_DIR / "ltx2_3_t2v_adacache.json").read_text())
    (definition,) = workflow["definitions"]["subgraphs"]
    nodes = {n["id"]: n for n in definition["nodes"]}
    refine = next(n for n in definition["nodes"] if n["type"] == "CFGGuider"
                  and not any(nodes.get(l["origin_id"], {}).get("type", "").startswith("AdaCache")
                              for l in definition["links"] if l["target_id"] == n["id"]))
    refine["widgets_values"][0] = 2.5
    (link,) = [l for l in definition["links"] if l["target_id"] == refine["id"] and l["type"] == "MODEL"]
    link["origin_id"] = next(n["id"] for n in definition["nodes"] if n["type"] == "CheckpointLoaderSimple")
    (prompt_in,) = [l for l in definition["links"] if l["origin_id"] == SUBGRAPH_INPUT and l["origin_slot"] == 0]
    prompt_in["origin_slot"] = 1  # the prompt node fed by the subgraph's width input
    spec = make_workflows.WORKFLOWS["ltx2_3_t2v_adacache.json"]
    drift = [d.text for d in templates.differences(workflow, spec.load_template()) if d.drift]
    assert drift == ["CFGGuider: cfg 1 -> 2.5",
                     "CFGGuider.model from CheckpointLoaderSimple (the template: LoraLoaderModelOnly)",
                     'PrimitiveStringMultiline "Prompt".value from the subgraph\'s input "value_2" (the template: '
                     'the subgraph\'s input "value")']


def test_the_stated_differences_are_current(registry):
    for path in WORKFLOWS:
        needs_raylight(json.loads(path.read_text()))
    assert make_workflows.DOC.read_text() == make_workflows.differences_doc(), \
        "run `.venv/bin/python tools/make_workflows.py` and commit docs/template_differences.md"


def test_nodes_of_other_packs_name_their_pack(runtime):
    """The front end names the pack to install from a node's cnr_id (registry) and aux_id (repository); a node of
    a newer ComfyUI than this one (its cnr_id "comfy-core"), only in a workflow that says which ComfyUI it needs."""
    from tools.workflow import FRONTEND_ONLY, all_nodes, subgraphs

    for path in WORKFLOWS:
        workflow = json.loads(path.read_text())
        spec = make_workflows.WORKFLOWS.get(path.name)
        for node in all_nodes(workflow):
            if node["type"] in runtime.builtin_nodes or node["type"] in FRONTEND_ONLY or node["type"] in subgraphs(workflow) \
                    or node["type"].startswith("AdaCache"):
                continue
            if node["properties"].get("cnr_id") == "comfy-core":
                assert spec is not None and spec.comfyui, (path.name, node["type"])
            else:
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


def _subgraph_workflow(ckpt: str) -> dict:
    """A small workflow as newer front ends save it: the top graph loads, encodes and decodes; a subgraph node (id 5)
    samples, inside it a KSampler (10) whose model comes through a Reroute (11) and whose seed is a widget that
    the subgraph node promotes (proxyWidgets) and leaves unlinked; its latent comes in through the subgraph's input."""
    sub = "5a3c2d1e-0000-4000-8000-000000000001"
    node = lambda i, t, inputs=(), outputs=(), values=(), **more: {  # noqa: E731
        "id": i, "type": t, "pos": [i * 100, 0], "size": [90, 60], "flags": {}, "order": i, "mode": 0, "properties": {},
        "inputs": [dict(name=n, type=k, link=l, **({"widget": {"name": n}} if w else {})) for n, k, l, w in inputs],
        "outputs": [{"name": n, "type": k, "links": ls} for n, k, ls in outputs], "widgets_values": list(values)} | more
    inner = [node(10, "KSampler", [("model", "MODEL", 21, False), ("positive", "CONDITIONING", 22, False),
                                   ("negative", "CONDITIONING", 23, False), ("latent_image", "LATENT", 24, False),
                                   ("seed", "INT", 25, True)], [("LATENT", "LATENT", [26])],
                  [1, "fixed", 2, 3.0, "euler", "simple", 1.0]),
             node(11, "Reroute", [("", "*", 20, False)], [("", "MODEL", [21])])]
    links = [(20, -10, 0, 11, 0, "MODEL"), (21, 11, 0, 10, 0, "MODEL"), (22, -10, 1, 10, 1, "CONDITIONING"),
             (23, -10, 1, 10, 2, "CONDITIONING"), (24, -10, 2, 10, 3, "LATENT"), (25, -10, 3, 10, 4, "INT"),
             (26, 10, 0, -20, 0, "LATENT")]
    definition = {"id": sub, "name": "Sample", "version": 1, "state": {"lastNodeId": 11, "lastLinkId": 26},
                  "inputNode": {"id": -10, "bounding": [0, 0, 10, 10]}, "outputNode": {"id": -20, "bounding": [900, 0, 10, 10]},
                  "inputs": [{"name": "model", "type": "MODEL", "linkIds": [20]},
                             {"name": "positive", "type": "CONDITIONING", "linkIds": [22, 23]},
                             {"name": "latent", "type": "LATENT", "linkIds": [24]}, {"name": "seed", "type": "INT", "linkIds": [25]}],
                  "outputs": [{"name": "LATENT", "type": "LATENT", "linkIds": [26]}], "widgets": [], "nodes": inner, "groups": [],
                  "links": [dict(zip(("id", "origin_id", "origin_slot", "target_id", "target_slot", "type"), l)) for l in links]}
    top = [node(1, "CheckpointLoaderSimple", [], [("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [2]), ("VAE", "VAE", [6])], [ckpt]),
           node(2, "CLIPTextEncode", [("clip", "CLIP", 2, False)], [("CONDITIONING", "CONDITIONING", [3])], ["a cat"]),
           node(3, "EmptyLatentImage", [], [("LATENT", "LATENT", [4])], [64, 64, 1]),
           node(5, sub, [("model", "MODEL", 1, False), ("positive", "CONDITIONING", 3, False), ("latent", "LATENT", 4, False),
                         ("seed", "INT", None, True)], [("LATENT", "LATENT", [5])], [],
                properties={"proxyWidgets": [["10", "seed"]]}),
           node(6, "VAEDecode", [("samples", "LATENT", 5, False), ("vae", "VAE", 6, False)], [("IMAGE", "IMAGE", [7])]),
           node(7, "SaveImage", [("images", "IMAGE", 7, False)], [], ["x"])]
    top_links = [[1, 1, 0, 5, 0, "MODEL"], [2, 1, 1, 2, 0, "CLIP"], [3, 2, 0, 5, 1, "CONDITIONING"], [4, 3, 0, 5, 2, "LATENT"],
                 [5, 5, 0, 6, 0, "LATENT"], [6, 1, 2, 6, 1, "VAE"], [7, 6, 0, 7, 0, "IMAGE"]]
    return {"last_node_id": 11, "last_link_id": 26, "nodes": top, "links": top_links, "groups": [],
            "definitions": {"subgraphs": [definition]}, "config": {}, "extra": {}, "version": 0.4}


def test_a_subgraph_is_flattened_as_the_front_end_flattens_it(runtime, placeholder_models):
    """Inner nodes under "<subgraph node id>:<inner id>", links followed through the subgraph's inputs, its output
    and a Reroute; the promoted widget's value from the inner node; ComfyUI accepts the prompt."""
    from tools import comfy_exec
    from tools.workflow import check_links, ui_to_api

    ckpt = sorted(p.name for p in (placeholder_models / "checkpoints").iterdir())[0]
    workflow = _subgraph_workflow(ckpt)
    assert check_links(workflow) == []
    prompt = ui_to_api(workflow)
    assert sorted(prompt) == ["1", "2", "3", "5:10", "6", "7"]
    assert prompt["5:10"] == {"class_type": "KSampler", "inputs": {
        "model": ["1", 0], "seed": 1, "steps": 2, "cfg": 3.0, "sampler_name": "euler", "scheduler": "simple",
        "positive": ["2", 0], "negative": ["2", 0], "latent_image": ["3", 0], "denoise": 1.0}}
    assert prompt["6"]["inputs"]["samples"] == ["5:10", 0]
    valid, error, outputs, node_errors = comfy_exec.validate(prompt)
    assert valid, (error, node_errors)
    # linked on the subgraph node, the seed comes from that link; bypassed, the subgraph passes its latent through
    workflow = _subgraph_workflow(ckpt)
    workflow["nodes"][3]["inputs"][3]["link"] = 8
    workflow["nodes"].insert(0, {"id": 9, "type": "EmptyLatentImage", "pos": [0, 0], "size": [1, 1], "mode": 0, "inputs": [],
                                 "outputs": [{"name": "LATENT", "type": "LATENT", "links": []}], "widgets_values": [64, 64, 1]})
    workflow["links"].append([8, 9, 0, 5, 3, "INT"])  # (a LATENT on an INT: only to see where the input goes)
    assert ui_to_api(workflow)["5:10"]["inputs"]["seed"] == ["9", 0]
    sub = workflow["definitions"]["subgraphs"][0]["id"]
    assert check_links(workflow) == [f"link 8: EmptyLatentImage gives LATENT, {sub}.seed takes INT"]
    workflow = _subgraph_workflow(ckpt)
    workflow["nodes"][3]["mode"] = 4
    prompt = ui_to_api(workflow)
    assert "5:10" not in prompt and prompt["6"]["inputs"]["samples"] == ["3", 0]


def test_the_ltx2_workflow_flattens_with_adacache_on_its_first_stage(registry, placeholder_models):
    """The LTX-2.3 workflow as ComfyUI 0.20.1 gets it from the front end: the subgraph's nodes flat, the first stage's
    guider on AdaCache Patch Model (on the LoRA'd model), the refinement's guider on the LoRA'd model as in the
    template, the viewer on the first stage's samples; newer ComfyUI's dynamic inputs by their API names."""
    from tools.workflow import ui_to_api

    h.needs_comfyui("ltx2_3_t2v_adacache.json")
    workflow = json.loads((WORKFLOW_DIR / "ltx2_3_t2v_adacache.json").read_text())
    (outer,) = [n for n in workflow["nodes"] if n["type"] == workflow["definitions"]["subgraphs"][0]["id"]]
    prompt = ui_to_api(workflow)
    prefix = f"{outer['id']}:"
    assert all(k.startswith(prefix) for k, v in prompt.items() if v["class_type"] not in ("SaveVideo",))
    by_type: dict[str, list[str]] = {}
    for key, value in prompt.items():
        by_type.setdefault(value["class_type"], []).append(key)
    (patch,), (lora,), (view,) = by_type["AdaCachePatchModel"], by_type["LoraLoaderModelOnly"], by_type["AdaCacheScheduleViewer"]
    assert prompt[patch]["inputs"]["model"] == [lora, 0]
    guiders = {prompt[k]["inputs"]["model"][0]: k for k in by_type["CFGGuider"]}
    assert set(guiders) == {patch, lora}
    (first,) = [k for k in by_type["SamplerCustomAdvanced"] if prompt[k]["inputs"]["guider"] == [guiders[patch], 0]]
    assert prompt[view]["inputs"]["samples"] == [first, 0] and prompt[view]["inputs"]["model"] == [patch, 0]
    sigmas = prompt[prompt[first]["inputs"]["sigmas"][0]]["inputs"]["sigmas"]
    assert len(sigmas.split(",")) == 9  # the 8-step stage
    (save,) = by_type["SaveVideo"]
    assert prompt[save]["inputs"]["video"][0].startswith(prefix)  # from inside the subgraph, through its output
    (resize,) = by_type["ResizeImageMaskNode"]
    assert prompt[resize]["inputs"]["resize_type"] == "scale dimensions"
    assert isinstance(prompt[resize]["inputs"]["resize_type.width"], list)  # linked from the Width primitive
    assert all("values.a" in prompt[k]["inputs"] for k in by_type["ComfyMathExpression"])
    (height,) = [k for k in by_type["PrimitiveInt"] if k == prefix + "258"]
    assert prompt[height]["inputs"]["value"] == 720  # a promoted widget the subgraph node leaves unlinked


def test_newer_templates_are_where_setup_env_installs_them():
    """A workflow from a newer ComfyUI's template names the templates' version; tools/setup_env.sh installs that
    version beside the venv's packages (not over the pinned ComfyUI's), where tools/templates.py reads it."""
    from tools import templates

    setup = (WORKFLOW_DIR.parent / "tools" / "setup_env.sh").read_text()
    newer = {spec.templates for spec in make_workflows.WORKFLOWS.values() if spec.templates}
    assert newer == {templates.NEWER}
    for version in newer:
        assert f"templates_newer=\"{version}\"" in setup
        assert templates.version(version) == version
        assert templates.version() != version  # the venv's own stays the pinned ComfyUI's


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
