"""Write the drag-and-drop workflows in workflows/ from ComfyUI's own templates, and docs/template_differences.md.

    .venv/bin/python tools/make_workflows.py

Each workflow but the tiny-model demo is a template of the comfyui-workflow-templates package with
the pack's nodes inserted: AdaCache Patch Model between the model and the
node that samples it, and a Cache Schedule Viewer on the sampler's output. Every template setting
is kept; what a workflow changes beyond its own nodes is listed in docs/template_differences.md, written from
the comparison with the template (tools/templates.py), never by hand.

A workflow from a newer ComfyUI's template (``Spec.templates``: the templates installed beside the venv, see
tools/templates.py) may use nodes the pinned ComfyUI lacks: building it needs only the pack's nodes, so this
script runs on the pinned ComfyUI for all of them; ``Spec.comfyui`` names the ComfyUI that runs it.
"""
from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))
from tools import comfy_runtime, make_thumbnails, templates  # noqa: E402
from tools.make_thumbnails import TITLE_H, node_box  # noqa: E402
from tools.workflow import GAP, NodeRef, WorkflowBuilder, widget_names  # noqa: E402

OUT = comfy_runtime.REPO_ROOT / "workflows"
DOC = comfy_runtime.REPO_ROOT / "docs" / "template_differences.md"
# Nodes that sample the model they take (Raylight's from its workers), and the socket each patch node sits on.
SAMPLERS = {"KSampler", "KSamplerAdvanced", "SamplerCustom", "BasicGuider", "CFGGuider", "XFuserKSamplerAdvanced"}
PATCH_SOCKET = {"AdaCachePatchModel": "model", "AdaCachePatchModelRaylight": "ray_actors"}
COLUMN = 360  # the width of the column made for the pack's nodes
PICTURE_WIDTH = 640  # the viewer's and Compare's width: their pictures shown at least about 600 px wide
KNOB = "AdaCache's speed knob at 2x: turn target_speedup up for speed, down for fidelity."


@dataclass(frozen=True)
class Spec:
    """One workflow: its template (None: built here), the note put on its canvas, how it is built
    (default: the template with the pack's nodes) and which of the template's paths it keeps; ``compare`` (for
    that default build): whether it ships the bypassed run without AdaCache and AdaCache Compare; ``templates``: the version of a
    newer templates package installed beside the venv (None: the venv's); ``comfyui``: the oldest ComfyUI
    that has all its nodes (None: the pinned one)."""

    template: str | None
    note: str
    build: Callable[["Spec"], dict] = field(default=lambda spec: patched(spec))
    paths: dict = field(default_factory=dict)
    compare: bool = True
    templates: str | None = None
    comfyui: str | None = None

    def load_template(self) -> dict:
        return templates.load(self.template, self.templates)


def from_template(name: str, keep_group: str | None = None, drop_group: str | None = None,
                  remove: tuple[int, ...] = (), version: str | None = None) -> WorkflowBuilder:
    """The template as a builder; with groups named, one of its alternative paths: ``drop_group`` and
    its nodes go (and ``remove``, template node ids), ``keep_group`` is enabled and moved up in its place."""
    wf = WorkflowBuilder.from_template(templates.load(name, version))
    top = wf.drop_group(drop_group) if drop_group else None
    for node_id in remove:
        wf.remove(node_id)
    if keep_group:
        wf.enable_group(keep_group, top)
    return wf


def adacache(wf: WorkflowBuilder, patch: str = "AdaCachePatchModel", with_moreg: bool = False,
             only: list[NodeRef] | None = None, **patch_widgets) -> list[tuple[NodeRef, NodeRef | None]]:
    """Patch Model (with MoReg Settings, which act only at knob 0) before every enabled node that samples a
    model (left to right; ``only``: before these), in a column made for them; returns (patch, moreg or None) pairs."""
    takes = PATCH_SOCKET[patch]
    consumers = sorted((NodeRef(n["id"], n["type"]) for n in wf.nodes if n["type"] in SAMPLERS and n.get("mode", 0) == 0
                        and any(s["name"] == takes and s.get("link") for s in n["inputs"])
                        and (only is None or n["id"] in {ref.id for ref in only})),
                       key=lambda ref: wf.node(ref)["pos"][0])
    x = min(wf.node(c)["pos"][0] for c in consumers)
    wf.make_room(x, COLUMN)
    pairs = []
    for consumer in consumers:
        source, slot = wf.source(consumer, takes)
        patched = wf.add(patch, patch_widgets, pos=(x, wf.node(consumer)["pos"][1]))
        moreg = wf.add("AdaCacheMoRegSettings", pos=(x, wf.node(patched)["pos"][1])) if with_moreg else None
        wf.connect(source, slot, patched, takes)
        if moreg is not None:
            wf.connect(moreg, 0, patched, "moreg")
        wf.connect(patched, 0, consumer, takes)
        pairs.append((patched, moreg))
    return pairs


def decoded(wf: WorkflowBuilder) -> tuple[NodeRef, int]:
    """The sampler output that the workflow decodes (the viewer shows the run that made it)."""
    decoder = next(NodeRef(n["id"], n["type"]) for n in wf.nodes
                   if n["type"] in ("VAEDecode", "VAEDecodeTiled") and n.get("mode", 0) == 0)
    return wf.source(decoder, "samples")


def viewer(wf: WorkflowBuilder, models: list[NodeRef], samples: tuple[NodeRef, int] | None = None) -> NodeRef:
    """Cache Schedule Viewer on ``samples`` (default: the sampler output that the workflow decodes)."""
    samples, slot = samples or decoded(wf)
    view = wf.add("AdaCacheScheduleViewer", pos=wf.node(samples)["pos"], width=PICTURE_WIDTH)
    wf.connect(samples, slot, view, "samples")
    for model, name in zip(models, ("model", "model_2")):
        wf.connect(model, 0, view, name)
    return view


COMPARE_GROUP = "Compare with the uncached run: select this group and press Ctrl+B to turn it on (bypassed: it costs a full run)"
UNCACHED = " (uncached, for comparison)"  # the end of the titles of the compare branch's samplers


def _reach(wf: WorkflowBuilder, start: set[int], forward: bool) -> set[int]:
    """The ids of the nodes that links lead to from ``start`` (``forward``), or back from it."""
    seen, todo = set(start), list(start)
    while todo:
        node_id = todo.pop()
        for link in wf.links:
            src, dst = (link[1], link[3]) if forward else (link[3], link[1])
            if src == node_id and dst not in seen:
                seen.add(dst)
                todo.append(dst)
    return seen


def compare_branch(wf: WorkflowBuilder, patches: list[NodeRef]) -> None:
    """The same sampling on the unpatched model(s), decoded, and AdaCache Compare of the two: bypassed, in a
    group that says how to turn it on (ComfyUI then keeps the uncached result while the knob turns).

    Every node between the Patch Models and the decoder is copied with its settings (one KSampler; Wan 2.2's two
    KSamplerAdvanced experts, chained as in the template; a guider and SamplerCustomAdvanced; SamplerCustom), each
    copy fed as its original, but from the model a Patch Model takes and from the other copies."""
    decoder = next(NodeRef(n["id"], n["type"]) for n in wf.nodes if n["type"] in ("VAEDecode", "VAEDecodeTiled")
                   and n.get("mode", 0) == 0)
    final, final_slot = wf.source(decoder, "samples")
    patch_ids = {p.id for p in patches}
    between = (_reach(wf, patch_ids, True) & _reach(wf, {final.id}, False)) - patch_ids
    chain: list[dict] = []
    while len(chain) < len(between):  # in the order they run: a node after those that feed it
        chain += [n for n in wf.nodes if n["id"] in between and n not in chain
                  and not (_reach(wf, {n["id"]}, False) - {n["id"]}) & (between - {c["id"] for c in chain})]
    below = max(node_box(n)[3] for n in wf.nodes) + 3 * GAP + TITLE_H + 40  # the group's title bar clear of them too
    x = min(n["pos"][0] for n in chain)
    copies: dict[int, NodeRef] = {}
    for k, node in enumerate(chain):
        _seed_fixed(node)
        values = node.get("widgets_values") or []
        copy = wf.add(node["type"], dict(zip(widget_names(node["type"], values), values)), pos=(x + k * COLUMN, below),
                      title=(node.get("title") or node["type"]) + UNCACHED)
        for socket in node["inputs"]:
            if socket.get("link") is None:
                continue
            src, slot = wf.source(NodeRef(node["id"], node["type"]), socket["name"])
            if src.id in patch_ids:
                src, slot = wf.source(src, "model")
            wf.connect(copies.get(src.id, src), slot, copy, socket["name"])
        copies[node["id"]] = copy
    uncached = copies[final.id]
    values = wf.node(decoder).get("widgets_values") or []
    decoded_uncached = wf.add(decoder.class_type, dict(zip(widget_names(decoder.class_type, values), values)),
                              pos=(x + len(chain) * COLUMN, below))
    wf.connect(uncached, final_slot, decoded_uncached, "samples")
    wf.connect(*wf.source(decoder, "vae"), decoded_uncached, "vae")
    compare = wf.add("AdaCacheCompare", pos=(x + (len(chain) + 1) * COLUMN, below), width=PICTURE_WIDTH)
    for src, slot, name in ((decoded_uncached, 0, "uncached"), (decoder, 0, "adacache"), (uncached, final_slot, "uncached_latent"),
                            (final, final_slot, "adacache_latent")):
        wf.connect(src, slot, compare, name)
    branch = [*copies.values(), decoded_uncached, compare]
    boxes = [node_box(wf.node(ref)) for ref in branch]
    for ref in branch:
        wf.node(ref)["mode"] = 4  # bypassed
    left, top = min(b[0] for b in boxes) - GAP, min(b[1] for b in boxes) - GAP - 40
    wf.groups.append({"title": COMPARE_GROUP, "color": "#3f789e", "font_size": 20, "flags": {},
                      "bounding": [left, top, max(b[2] for b in boxes) + GAP - left, max(b[3] for b in boxes) + GAP - top]})


def _seed_fixed(node: dict) -> None:
    """A sampler's seed kept after each run: the compare branch's copy samples the same noise as the cached run, and
    ComfyUI keeps the uncached result while the knob turns (a randomized seed would rerun both on other noise)."""
    values = node.get("widgets_values")
    for i, name in enumerate(widget_names(node["type"], values) if values else []):
        if name.endswith(" control"):  # the front end's control after generate of a seed widget
            values[i] = "fixed"


def patched(spec: Spec) -> dict:
    wf = from_template(spec.template, **spec.paths, version=spec.templates)
    pairs = adacache(wf)
    viewer(wf, [p for p, _ in pairs])
    if spec.compare:
        compare_branch(wf, [p for p, _ in pairs])
    return wf.to_ui(spec.note)


def sigma_count(wf: WorkflowBuilder, sampler: NodeRef) -> int:
    """How many noise levels a SamplerCustomAdvanced samples (from its ManualSigmas; 0 where another node gives them)."""
    sigmas, _ = wf.source(sampler, "sigmas")
    node = wf.node(sigmas)
    return len(str(node["widgets_values"][0]).split(",")) if node["type"] == "ManualSigmas" else 0


def two_stage(spec: Spec) -> dict:
    """LTX-2.3's template: a subgraph samples at half size (8 steps), upscales the latent and refines it (3 steps),
    each stage with its own CFGGuider on the LoRA'd model. AdaCache goes on the first stage, inside the subgraph
    (its viewer on that stage's output); the refinement's 3 steps leave a per-step cache nothing to reuse."""
    wf = from_template(spec.template, version=spec.templates)
    graph = wf.subgraph_with(SAMPLERS)
    sampler = max(graph.find("SamplerCustomAdvanced"), key=lambda ref: sigma_count(graph, ref))
    guider, _ = graph.source(sampler, "guider")
    (patch, _), = adacache(graph, only=[guider])
    view = viewer(graph, [patch], samples=(sampler, 0))
    bottom = max([node_box(n)[3] for n in graph.nodes if n is not graph.node(view)]
                 + [g["bounding"][1] + g["bounding"][3] for g in graph.groups])
    graph.place(view, graph.node(patch)["pos"][0], bottom + GAP + TITLE_H)  # below the template's groups
    return wf.to_ui(spec.note)


def calibrated(spec: Spec) -> dict:
    """MoReg calibrated on two reference prompts (one still, one moving) sampled as the template samples."""
    wf = from_template(spec.template)
    sampler = wf.find("KSampler")[0]
    model, negative, latent = (wf.source(sampler, name)[0] for name in ("model", "negative", "latent_image"))
    clip = wf.source(negative, "clip")[0]
    sampling = {k: v for k, v in zip(widget_names("KSampler"), wf.node(sampler)["widgets_values"])
                if k in ("steps", "cfg", "sampler_name", "scheduler")}
    (patch, moreg), = adacache(wf, with_moreg=True, target_speedup=0.0)  # MoReg chooses steps only with the speed knob off
    calibration = None
    for i, text in enumerate(("a quiet mountain lake at dawn, still water, static camera",
                              "people dancing at a night festival, fast handheld camera")):
        prompt = wf.add("CLIPTextEncode", {"text": text}, pos=wf.node(negative)["pos"], title=f"Calibration prompt {i + 1}")
        wf.connect(clip, 0, prompt, "clip")
        cal = wf.add("AdaCacheCalibrate", sampling, pos=wf.node(moreg)["pos"], title=f"AdaCache Calibrate {i + 1}")
        for src, name in ((model, "model"), (prompt, "positive"), (negative, "negative"), (latent, "latent_image")):
            wf.connect(src, 0, cal, name)
        if calibration is not None:
            wf.connect(calibration, 1, cal, "earlier_calibration")
        calibration = cal
    wf.connect(calibration, 1, moreg, "calibration")
    viewer(wf, [patch])
    return wf.to_ui(spec.note)


def plan_searched(spec: Spec) -> dict:
    """The speed knob following a plan AdaCache Plan Search found on this model, on a small latent and two
    prompts (one still, one moving), sampled as the template samples."""
    wf = from_template(spec.template)
    sampler = wf.find("KSampler")[0]
    model, negative, latent = (wf.source(sampler, name)[0] for name in ("model", "negative", "latent_image"))
    clip = wf.source(negative, "clip")[0]
    sampling = {k: v for k, v in zip(widget_names("KSampler"), wf.node(sampler)["widgets_values"])
                if k in ("seed", "steps", "cfg", "sampler_name", "scheduler")}
    (patch, _), = adacache(wf)
    search = wf.add("AdaCachePlanSearch", sampling, pos=wf.node(patch)["pos"])
    # 128x128, 17 frames (a 5x16x16 latent): the bundled tiny model's search on it takes under 2 min on 2 CPU cores
    # (benchmarks/bench_plan_search.py)
    small = wf.add(wf.node(latent)["type"], {"width": 128, "height": 128, "length": 17}, pos=wf.node(latent)["pos"],
                   title="Small latent for the search")
    for i, (text, name) in enumerate((("a quiet mountain lake at dawn, still water, static camera", "positive"),
                                      ("people dancing at a night festival, fast handheld camera", "second_positive"))):
        prompt = wf.add("CLIPTextEncode", {"text": text}, pos=wf.node(negative)["pos"], title=f"Search prompt {i + 1}")
        wf.connect(clip, 0, prompt, "clip")
        wf.connect(prompt, 0, search, name)
    for src, name in ((model, "model"), (negative, "negative"), (small, "latent_image")):
        wf.connect(src, 0, search, name)
    wf.connect(search, 0, patch, "plan")
    viewer(wf, [patch])
    return wf.to_ui(spec.note)


def raylight_pack() -> dict:
    """Raylight's registry id, repository and version (its pyproject), so the front end can name the pack to install."""
    project = tomllib.loads((comfy_runtime.RAYLIGHT / "pyproject.toml").read_text())
    repository = project["tool"]["comfy"]["repository"].removeprefix("https://github.com/")
    return {"cnr_id": project["project"]["name"], "aux_id": repository, "ver": project["project"]["version"]}


def raylight(spec: Spec) -> dict:
    """The Wan 2.1 T2V template on 2 GPUs with Raylight (Ulysses sequence parallel), the 14B model."""
    wf = from_template(spec.template)
    loader, sampler = wf.find("UNETLoader")[0], wf.find("KSampler")[0]
    unet = "wan2.1_t2v_14B_fp16.safetensors"
    models = [m | {"name": unet, "url": m["url"].replace(m["name"], unet)} for m in wf.node(loader)["properties"]["models"]]
    wf.remove(wf.find("ModelSamplingSD3")[0])  # Raylight's workers apply the model's own shift
    loader = wf.replace(loader, "RayUNETLoader", {"unet_name": unet})
    wf.node(loader)["properties"]["models"] = models
    sampler = wf.replace(sampler, "XFuserKSamplerAdvanced", renamed={"seed": "noise_seed", "seed control": "noise_seed control"})
    ray = wf.add("RayInitializer", {"GPU": 2, "ulysses_degree": 2, "ring_degree": 1, "cfg_degree": 1},
                 pos=wf.node(loader)["pos"])
    wf.connect(ray, 0, loader, "ray_actors_init")
    wf.connect(loader, 0, sampler, "ray_actors")
    adacache(wf, "AdaCachePatchModelRaylight")
    view = viewer(wf, [])
    wf.connect(sampler, 1, view, "ray_actors")
    for node in (loader, sampler, ray):
        wf.node(node)["properties"] |= raylight_pack()
    return wf.to_ui(spec.note)


SAMPLING = {"seed": 7, "steps": 30, "cfg": 5.0, "sampler_name": "euler", "scheduler": "simple"}  # the demo's two samplers


def tiny_demo(spec: Spec) -> dict:
    """The demo on the bundled tiny model (no template has it): runs anywhere, headless, in seconds."""
    wf = WorkflowBuilder()
    loader = wf.add("UNETLoader", {"unet_name": "tiny_wan21_motion.safetensors"}, pos=(0, 0))
    patch = wf.add("AdaCachePatchModel", pos=(380, 0))
    wf.connect(loader, 0, patch, "model")
    pos = wf.add("AdaCacheDemoPrompt", {"motion": "fast"}, pos=(0, 400), title="Positive")
    neg = wf.add("AdaCacheDemoPrompt", {"motion": "empty"}, pos=(0, 400), title="Negative")
    latent = wf.add("EmptyHunyuanLatentVideo", {"width": 128, "height": 128, "length": 33}, pos=(380, 0))
    sampler = wf.add("KSampler", SAMPLING, pos=(760, 0))
    for src, name in ((patch, "model"), (pos, "positive"), (neg, "negative"), (latent, "latent_image")):
        wf.connect(src, 0, sampler, name)
    preview = wf.add("AdaCacheDemoLatentPreview", pos=(1140, 0))
    wf.connect(sampler, 0, preview, "samples")
    save = wf.add("SaveAnimatedWEBP", {"filename_prefix": "adacache_demo/video", "fps": 6.0}, pos=(1140, 0))
    wf.connect(preview, 0, save, "images")
    latent_out = wf.add("SaveLatent", {"filename_prefix": "adacache_demo/latent"}, pos=(1140, 0))
    wf.connect(sampler, 0, latent_out, "samples")
    view = wf.add("AdaCacheScheduleViewer", pos=(1140, 0), width=PICTURE_WIDTH)
    wf.connect(patch, 0, view, "model")
    wf.connect(sampler, 0, view, "samples")
    chart = wf.add("SaveImage", {"filename_prefix": "adacache_demo/schedule"}, pos=(1520, 0))
    wf.connect(view, 0, chart, "images")
    # the uncached run of the same prompt and seed, and AdaCache Compare: ComfyUI keeps the uncached branch's result
    # while the knob turns, so only the AdaCache branch runs again
    uncached = wf.add("KSampler", SAMPLING, pos=(760, 500), title="KSampler (uncached, for comparison)")
    for src, name in ((loader, "model"), (pos, "positive"), (neg, "negative"), (latent, "latent_image")):
        wf.connect(src, 0, uncached, name)
    uncached_preview = wf.add("AdaCacheDemoLatentPreview", pos=(1140, 500))
    wf.connect(uncached, 0, uncached_preview, "samples")
    compare = wf.add("AdaCacheCompare", pos=(1520, 500), width=PICTURE_WIDTH)
    for src, name in ((uncached_preview, "uncached"), (preview, "adacache"), (uncached, "uncached_latent"),
                      (sampler, "adacache_latent")):
        wf.connect(src, 0, compare, name)
    return wf.to_ui(spec.note)


WAN22_PATHS = ("Wan2.2 T2V fp8_scaled", "Wan2.2 T2V fp8_scaled +  4 steps LoRA")  # the template's two paths (groups)
WAN22_SWITCH_NOTE = 106  # the template's note on switching between its two paths, which each workflow here keeps one of

WORKFLOWS = {
    "adacache_demo_tiny_model.json": Spec(
        None, "AdaCache demo on the bundled tiny video model (it makes a few seconds of moving blobs). Put "
        "demo_models/tiny_wan21_motion.safetensors in models/diffusion_models and press Run. Then turn target_speedup "
        "on AdaCache Patch Model up for speed or down for fidelity and run again: the Cache Schedule Viewer shows which "
        "steps ran, and AdaCache Compare shows the result beside the uncached one with a sentence on what changed "
        "(the uncached sampler runs once; ComfyUI keeps its result).", tiny_demo),
    "wan2.1_t2v_1.3B_adacache.json": Spec("text_to_video_wan", "Wan 2.1 T2V 1.3B with AdaCache, on ComfyUI's template. " + KNOB),
    "wan2.1_t2v_1.3B_adacache_calibrated.json": Spec(
        "text_to_video_wan", "Wan 2.1 T2V 1.3B with AdaCache and MoReg calibrated on this model: the two AdaCache "
        "Calibrate nodes sample two reference prompts (one still, one moving) with every step computed, once (ComfyUI "
        "keeps their result while their inputs stay the same), and MoReg then judges your prompt's motion against "
        "theirs at every noise level instead of the paper's scale 0.385, which was set on Open-Sora. The speed knob is "
        "off here (target_speedup 0), so the paper's codebook and MoReg choose the steps.", calibrated),
    "wan2.1_t2v_1.3B_adacache_plan_search.json": Spec(
        "text_to_video_wan", "Wan 2.1 T2V 1.3B with AdaCache's speed knob following a plan searched on this model: "
        "AdaCache Plan Search samples two typical prompts (one still, one moving) on a small latent many times, once "
        "(ComfyUI keeps its plan while its inputs stay the same; about 6 x steps x 2 small runs, most of them sampled only "
        "from the step they give up on), and "
        "finds which steps this model skips with the least harm. Keep its steps, sampler and scheduler equal to the "
        "KSampler's: the plan applies only to runs with the same noise levels. " + KNOB, plan_searched),
    "wan2.1_i2v_480p_14B_adacache.json": Spec("image_to_video_wan", "Wan 2.1 I2V 14B 480p with AdaCache, on ComfyUI's template. " + KNOB),
    "wan2.2_t2v_A14B_two_experts_adacache.json": Spec(
        "video_wan2_2_14B_t2v", "Wan 2.2 A14B T2V with AdaCache on both experts, on the 20-step path of ComfyUI's "
        "template: each patched model has its own cache and step accounting; the viewer shows both side by side. " + KNOB,
        paths={"keep_group": WAN22_PATHS[0], "drop_group": WAN22_PATHS[1], "remove": (WAN22_SWITCH_NOTE,)}),
    "wan2.2_t2v_A14B_lightx2v_4steps_adacache.json": Spec(
        "video_wan2_2_14B_t2v", "Wan 2.2 A14B T2V on the 4-step LightX2V path of ComfyUI's template. With 2 steps per "
        "expert there is nothing for a per-step cache to reuse (the first and last two steps are always computed): "
        "AdaCache computes every step and the viewer and the console say so in one line. Kept to show that; for speed "
        "from AdaCache use the 20-step workflow.", paths={"drop_group": WAN22_PATHS[0], "remove": (WAN22_SWITCH_NOTE,)},
        compare=False),  # AdaCache computes every step here: the uncached run would be the same run
    "wan2.2_ti2v_5B_adacache.json": Spec("video_wan2_2_5B_ti2v", "Wan 2.2 TI2V 5B (48-channel latents) with AdaCache, on "
                                         "ComfyUI's template; enable the Load Image node for I2V. " + KNOB),
    "wan2.1_t2v_14B_raylight_adacache.json": Spec(
        "text_to_video_wan", "Wan 2.1 T2V 14B on 2 GPUs with Raylight (Ulysses sequence parallel) and AdaCache on every "
        "worker. Needs the Raylight custom nodes. Every GPU takes the same cache decisions, measured over both: one "
        "all_reduce of a few numbers per computed step. " + KNOB, raylight),
    "hunyuan_video_t2v_720p_adacache.json": Spec("hunyuan_video_text_to_video", "HunyuanVideo T2V with AdaCache, on "
                                                 "ComfyUI's template; guidance-distilled, so only the cond branch runs. " + KNOB),
    "ltx_video_2b_t2v_adacache.json": Spec("ltxv_text_to_video", "LTX-Video 2B T2V with AdaCache, on ComfyUI's template. " + KNOB),
    "ltx2_3_t2v_adacache.json": Spec(
        "video_ltx2_3_t2v", "LTX-2.3 22B text to video (with audio) with AdaCache, on ComfyUI 0.20.1's template; needs "
        "ComfyUI 0.20.1 or newer. The template samples inside its subgraph \"Text to Video (LTX-2.3)\" (open it to see "
        "the nodes): 8 steps at half size, then 3 steps that refine the upscaled latent. AdaCache Patch Model and the "
        "Cache Schedule Viewer sit on the 8-step stage; the 3-step refinement leaves a per-step cache nothing to reuse "
        "(the first and last two steps are always computed) and runs as in the template. " + KNOB, two_stage,
        compare=False, templates=templates.NEWER, comfyui="0.20.1"),
}


def differences_doc(folder: Path = OUT) -> str:
    """docs/template_differences.md: per workflow, what it changed of its template (tools/templates.py's comparison)."""
    lines = ["# The workflows and ComfyUI's templates", "",
             f"Generated by `tools/make_workflows.py` from the comparison of each file in `workflows/` with the "
             f"template it was built from (comfyui-workflow-templates-media-video {templates.version()}, where not "
             "named otherwise); "
             "`tests/test_workflows.py` fails when this list is out of date or a workflow changes a setting of its "
             "template. Every template setting not listed here is kept as the template has it.", ""]
    for name, spec in WORKFLOWS.items():
        lines += [f"## {name}", ""]
        if spec.template is None:
            lines += ["Built here: no template has the bundled tiny model.", ""]
            continue
        source = f" of comfyui-workflow-templates-media-video {templates.version(spec.templates)}" if spec.templates else ""
        runs_on = f" (ComfyUI {spec.comfyui} or newer)" if spec.comfyui else ""
        lines += [f"From the template `{spec.template}`{source}{runs_on}:", ""]
        workflow = json.loads((folder / name).read_text())
        lines += [f"- {d.text}" for d in templates.differences(workflow, spec.load_template())]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    comfy_runtime.boot()
    comfy_runtime.load_raylight_nodes()  # the Raylight workflow's nodes (../shared/third_party/raylight)
    OUT.mkdir(exist_ok=True)
    for name, spec in WORKFLOWS.items():
        (OUT / name).write_text(json.dumps(spec.build(spec), indent=1, ensure_ascii=False) + "\n")
        print("wrote", OUT.relative_to(comfy_runtime.REPO_ROOT) / name)
    DOC.write_text(differences_doc())
    print("wrote", DOC.relative_to(comfy_runtime.REPO_ROOT))
    make_thumbnails.write_all(OUT)  # each workflow's <name>.jpg beside it (a picture of its graph)


if __name__ == "__main__":
    main()
