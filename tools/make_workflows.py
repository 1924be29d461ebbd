"""Write the drag-and-drop workflows in workflows/ from ComfyUI's own templates, and docs/template_differences.md.

    .venv/bin/python tools/make_workflows.py

Each workflow but the tiny-model demo is a template of the comfyui-workflow-templates package with
the pack's nodes inserted: AdaCache Patch Model between the model and the
node that samples it, and a Cache Schedule Viewer on the sampler's output. Every template setting
is kept; what a workflow changes beyond its own nodes is listed in docs/template_differences.md, written from
the comparison with the template (tools/templates.py), never by hand.
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
from tools.make_thumbnails import node_box  # noqa: E402
from tools.workflow import GAP, NodeRef, WorkflowBuilder, widget_names  # noqa: E402

OUT = comfy_runtime.REPO_ROOT / "workflows"
DOC = comfy_runtime.REPO_ROOT / "docs" / "template_differences.md"
# Nodes that sample the model they take (Raylight's from its workers), and the socket each patch node sits on.
SAMPLERS = {"KSampler", "KSamplerAdvanced", "SamplerCustom", "BasicGuider", "XFuserKSamplerAdvanced"}
PATCH_SOCKET = {"AdaCachePatchModel": "model", "AdaCachePatchModelRaylight": "ray_actors"}
COLUMN = 360  # the width of the column made for the pack's nodes
PICTURE_WIDTH = 640  # the viewer's and Compare's width: their pictures shown at least about 600 px wide
KNOB = "AdaCache's speed knob at 2x: turn target_speedup up for speed, down for fidelity."


@dataclass(frozen=True)
class Spec:
    """One workflow: its template (None: built here), the note put on its canvas, how it is built
    (default: the template with the pack's nodes) and which of the template's paths it keeps."""

    template: str | None
    note: str
    build: Callable[["Spec"], dict] = field(default=lambda spec: patched(spec))
    paths: dict = field(default_factory=dict)


def from_template(name: str, keep_group: str | None = None, drop_group: str | None = None,
                  remove: tuple[int, ...] = ()) -> WorkflowBuilder:
    """The template as a builder; with groups named, one of its alternative paths: ``drop_group`` and
    its nodes go (and ``remove``, template node ids), ``keep_group`` is enabled and moved up in its place."""
    wf = WorkflowBuilder.from_template(templates.load(name))
    top = wf.drop_group(drop_group) if drop_group else None
    for node_id in remove:
        wf.remove(node_id)
    if keep_group:
        wf.enable_group(keep_group, top)
    return wf


def adacache(wf: WorkflowBuilder, patch: str = "AdaCachePatchModel", with_moreg: bool = False,
             **patch_widgets) -> list[tuple[NodeRef, NodeRef | None]]:
    """Patch Model (with MoReg Settings, which act only at knob 0) before every enabled node that samples a
    model (left to right), in a column made for them; returns (patch, moreg or None) pairs."""
    takes = PATCH_SOCKET[patch]
    consumers = sorted((NodeRef(n["id"], n["type"]) for n in wf.nodes if n["type"] in SAMPLERS and n.get("mode", 0) == 0
                        and any(s["name"] == takes and s.get("link") for s in n["inputs"])),
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


def viewer(wf: WorkflowBuilder, models: list[NodeRef]) -> NodeRef:
    samples, slot = decoded(wf)
    view = wf.add("AdaCacheScheduleViewer", pos=wf.node(samples)["pos"], width=PICTURE_WIDTH)
    wf.connect(samples, slot, view, "samples")
    for model, name in zip(models, ("model", "model_2")):
        wf.connect(model, 0, view, name)
    return view


COMPARE_GROUP = "Compare with the uncached run: select this group and press Ctrl+B to turn it on (bypassed: it costs a full run)"


def compare_branch(wf: WorkflowBuilder, patch: NodeRef) -> None:
    """The same KSampler run on the unpatched model, decoded, and AdaCache Compare of the two: bypassed, in a
    group that says how to turn it on (ComfyUI then keeps the uncached result while the knob turns)."""
    sampler = next(NodeRef(n["id"], n["type"]) for n in wf.nodes
                   if n["type"] == "KSampler" and wf.source(NodeRef(n["id"], n["type"]), "model")[0].id == patch.id)
    decoder = next(NodeRef(n["id"], n["type"]) for n in wf.nodes if n["type"] in ("VAEDecode", "VAEDecodeTiled")
                   and n.get("mode", 0) == 0 and wf.source(NodeRef(n["id"], n["type"]), "samples")[0].id == sampler.id)
    below = max(node_box(n)[3] for n in wf.nodes) + 2 * GAP
    x = wf.node(sampler)["pos"][0]
    uncached = wf.add("KSampler", dict(zip(widget_names("KSampler"), wf.node(sampler)["widgets_values"])),
                      pos=(x, below), title="KSampler (uncached, for comparison)")
    for name in ("positive", "negative", "latent_image"):
        wf.connect(*wf.source(sampler, name), uncached, name)
    wf.connect(*wf.source(patch, "model"), uncached, "model")
    decoded_uncached = wf.add(decoder.class_type, pos=(x + COLUMN, below))
    wf.connect(uncached, 0, decoded_uncached, "samples")
    wf.connect(*wf.source(decoder, "vae"), decoded_uncached, "vae")
    compare = wf.add("AdaCacheCompare", pos=(x + 2 * COLUMN, below), width=PICTURE_WIDTH)
    for src, slot, name in ((decoded_uncached, 0, "uncached"), (decoder, 0, "adacache"), (uncached, 0, "uncached_latent"),
                            (sampler, 0, "adacache_latent")):
        wf.connect(src, slot, compare, name)
    boxes = [node_box(wf.node(ref)) for ref in (uncached, decoded_uncached, compare)]
    for ref in (uncached, decoded_uncached, compare):
        wf.node(ref)["mode"] = 4  # bypassed
    left, top = min(b[0] for b in boxes) - GAP, min(b[1] for b in boxes) - GAP - 40
    wf.groups.append({"title": COMPARE_GROUP, "color": "#3f789e", "font_size": 20, "flags": {},
                      "bounding": [left, top, max(b[2] for b in boxes) + GAP - left, max(b[3] for b in boxes) + GAP - top]})


def patched(spec: Spec) -> dict:
    wf = from_template(spec.template, **spec.paths)
    pairs = adacache(wf)
    viewer(wf, [p for p, _ in pairs])
    if len(pairs) == 1 and wf.find("KSampler"):  # one sampler to compare (the two-expert and custom-sampler ones: not yet)
        compare_branch(wf, pairs[0][0])
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
        "from AdaCache use the 20-step workflow.", paths={"drop_group": WAN22_PATHS[0], "remove": (WAN22_SWITCH_NOTE,)}),
    "wan2.2_ti2v_5B_adacache.json": Spec("video_wan2_2_5B_ti2v", "Wan 2.2 TI2V 5B (48-channel latents) with AdaCache, on "
                                         "ComfyUI's template; enable the Load Image node for I2V. " + KNOB),
    "wan2.1_t2v_14B_raylight_adacache.json": Spec(
        "text_to_video_wan", "Wan 2.1 T2V 14B on 2 GPUs with Raylight (Ulysses sequence parallel) and AdaCache on every "
        "worker. Needs the Raylight custom nodes. Every GPU takes the same cache decisions, measured over both: one "
        "all_reduce of a few numbers per computed step. " + KNOB, raylight),
    "hunyuan_video_t2v_720p_adacache.json": Spec("hunyuan_video_text_to_video", "HunyuanVideo T2V with AdaCache, on "
                                                 "ComfyUI's template; guidance-distilled, so only the cond branch runs. " + KNOB),
    "ltx_video_2b_t2v_adacache.json": Spec("ltxv_text_to_video", "LTX-Video 2B T2V with AdaCache, on ComfyUI's template. " + KNOB),
}


def differences_doc(folder: Path = OUT) -> str:
    """docs/template_differences.md: per workflow, what it changed of its template (tools/templates.py's comparison)."""
    lines = ["# The workflows and ComfyUI's templates", "",
             f"Generated by `tools/make_workflows.py` from the comparison of each file in `workflows/` with the "
             f"template it was built from (comfyui-workflow-templates-media-video {templates.version()}); "
             "`tests/test_workflows.py` fails when this list is out of date or a workflow changes a setting of its "
             "template. Every template setting not listed here is kept as the template has it.", ""]
    for name, spec in WORKFLOWS.items():
        lines += [f"## {name}", ""]
        if spec.template is None:
            lines += ["Built here: no template has the bundled tiny model.", ""]
            continue
        lines += [f"From the template `{spec.template}`:", ""]
        workflow = json.loads((folder / name).read_text())
        lines += [f"- {d.text}" for d in templates.differences(workflow, templates.load(spec.template))]
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
