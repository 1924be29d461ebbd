"""Write the drag-and-drop workflow files in workflows/ (UI format) from one description each.

    .venv/bin/python tools/make_workflows.py

Model file names are those of ComfyUI's own templates; sampler settings follow those templates.
Every workflow puts AdaCache Patch Model (with MoReg Settings) between the model and the sampler
and a Cache Schedule Viewer after the sampler. Generated, not hand-edited, so all files share one
layout and stay valid against the live node registry (the tests check them).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))
from tools import comfy_runtime, make_thumbnails  # noqa: E402
from tools.workflow import LOADER_FOLDERS, NodeRef, WorkflowBuilder  # noqa: E402

OUT = comfy_runtime.REPO_ROOT / "workflows"


def _repackaged(repo: str, folder: str, names: tuple[str, ...]) -> dict[str, str]:
    return {n: f"https://huggingface.co/Comfy-Org/{repo}/resolve/main/split_files/{folder}/{n}" for n in names}


# Where users download each model file the workflows load: the files ComfyUI's own templates and
# examples point to. Written into every loader node (properties.models), so the front end offers
# the download when a file is missing. The bundled tiny model has none: it ships in demo_models/.
MODEL_URLS = (
    _repackaged("Wan_2.1_ComfyUI_repackaged", "diffusion_models",
                ("wan2.1_t2v_1.3B_fp16.safetensors", "wan2.1_t2v_14B_fp16.safetensors",
                 "wan2.1_i2v_480p_14B_fp16.safetensors"))
    | _repackaged("Wan_2.1_ComfyUI_repackaged", "text_encoders", ("umt5_xxl_fp8_e4m3fn_scaled.safetensors",))
    | _repackaged("Wan_2.1_ComfyUI_repackaged", "vae", ("wan_2.1_vae.safetensors",))
    | _repackaged("Wan_2.1_ComfyUI_repackaged", "clip_vision", ("clip_vision_h.safetensors",))
    | _repackaged("Wan_2.2_ComfyUI_Repackaged", "diffusion_models",
                  ("wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors",
                   "wan2.2_ti2v_5B_fp16.safetensors"))
    | _repackaged("Wan_2.2_ComfyUI_Repackaged", "loras", ("wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors",
                                                          "wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors"))
    | _repackaged("Wan_2.2_ComfyUI_Repackaged", "vae", ("wan2.2_vae.safetensors",))
    | _repackaged("HunyuanVideo_repackaged", "diffusion_models", ("hunyuan_video_t2v_720p_bf16.safetensors",))
    | _repackaged("HunyuanVideo_repackaged", "text_encoders", ("clip_l.safetensors", "llava_llama3_fp8_scaled.safetensors"))
    | _repackaged("HunyuanVideo_repackaged", "vae", ("hunyuan_video_vae_bf16.safetensors",))
    | {"ltx-video-2b-v0.9.5.safetensors": "https://huggingface.co/Lightricks/LTX-Video/resolve/main/ltx-video-2b-v0.9.5.safetensors",
       "t5xxl_fp16.safetensors": "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/t5xxl_fp16.safetensors"}
)


def with_downloads(workflow: dict) -> dict:
    """Each loader node names where to download the files it loads (the templates' ``models`` entries)."""
    for node in workflow["nodes"]:
        folder = LOADER_FOLDERS.get(node["type"])
        names = [v for v in node.get("widgets_values") or [] if isinstance(v, str) and v in MODEL_URLS]
        if folder and names:
            node["properties"]["models"] = [{"name": n, "url": MODEL_URLS[n], "directory": folder} for n in names]
    return workflow
# Wan's standard negative prompt, as in ComfyUI's Wan templates (and Wan's own examples)
WAN_NEGATIVE = ("色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
                "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
                "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走")


def adacache_chain(wf: WorkflowBuilder, model: NodeRef, slot: int, x: int, y: int, preset: str,
                   moreg_widgets: dict | None = None, patch_widgets: dict | None = None) -> NodeRef:
    patch = wf.add("AdaCachePatchModel", {"preset": preset} | (patch_widgets or {}), pos=(x, y))
    moreg = wf.add("AdaCacheMoRegSettings", moreg_widgets, pos=(x, y + 1))  # below it (WorkflowBuilder stacks columns)
    wf.connect(model, slot, patch, "model")
    wf.connect(moreg, 0, patch, "moreg")
    return patch


def text_encoders(wf: WorkflowBuilder, prompt: str, y: int = 400, references: tuple[str, ...] = ()):
    """Positive and negative prompt encodes (and, with ``references``, a list of encodes of those prompts)."""
    clip = wf.add("CLIPLoader", {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan"}, pos=(0, y))
    pos = wf.add("CLIPTextEncode", {"text": prompt}, pos=(380, y), title="Positive")
    neg = wf.add("CLIPTextEncode", {"text": WAN_NEGATIVE}, pos=(380, y + 220), title="Negative")
    wf.connect(clip, 0, pos, "clip")
    wf.connect(clip, 0, neg, "clip")
    if not references:
        return pos, neg
    refs = [wf.add("CLIPTextEncode", {"text": text}, pos=(380, y + 440 + 220 * i), title=f"Calibration prompt {i + 1}")
            for i, text in enumerate(references)]
    for ref in refs:
        wf.connect(clip, 0, ref, "clip")
    return pos, neg, refs


def diffusion_model(wf: WorkflowBuilder, unet: str, shift: float, y: int = 0, title: str | None = None,
                    lora: str | None = None) -> NodeRef:
    """UNETLoader (then a LoRA on the model, when given) then ModelSamplingSD3 with this shift."""
    model = wf.add("UNETLoader", {"unet_name": unet}, pos=(0, y), title=title)
    if lora:
        with_lora = wf.add("LoraLoaderModelOnly", {"lora_name": lora, "strength_model": 1.0}, pos=(380, y))
        wf.connect(model, 0, with_lora, "model")
        model = with_lora
    sampling = wf.add("ModelSamplingSD3", {"shift": shift}, pos=(380, y + 1))
    wf.connect(model, 0, sampling, "model")
    return sampling


def ksampler(wf: WorkflowBuilder, settings: dict, model: NodeRef, pos: NodeRef, neg: NodeRef, latent: NodeRef,
             x: int = 1140) -> NodeRef:
    sampler = wf.add("KSampler", settings, pos=(x, 0))
    for src, name in ((model, "model"), (pos, "positive"), (neg, "negative"), (latent, "latent_image")):
        wf.connect(src, 0, sampler, name)
    return sampler


def save_video(wf: WorkflowBuilder, latent: NodeRef, vae: NodeRef, fps: int, x: int, prefix: str, vae_slot: int = 0,
               tiled: bool = False) -> None:
    """Decode (tiled, with the node's defaults, where the template decodes tiled) and save as a video."""
    decode = wf.add("VAEDecodeTiled" if tiled else "VAEDecode", pos=(x, 0))
    wf.connect(latent, 0, decode, "samples")
    wf.connect(vae, vae_slot, decode, "vae")
    video = wf.add("CreateVideo", {"fps": fps}, pos=(x, 160))
    wf.connect(decode, 0, video, "images")
    save = wf.add("SaveVideo", {"filename_prefix": prefix}, pos=(x, 320))
    wf.connect(video, 0, save, "video")


def viewer(wf: WorkflowBuilder, model: NodeRef, latent: NodeRef, x: int, model_2: NodeRef | None = None) -> NodeRef:
    view = wf.add("AdaCacheScheduleViewer", pos=(x, 560))
    wf.connect(model, 0, view, "model")
    wf.connect(latent, 0, view, "samples")
    if model_2 is not None:
        wf.connect(model_2, 0, view, "model_2")
    return view


def wan21_t2v_1_3b() -> dict:
    wf = WorkflowBuilder()
    model = diffusion_model(wf, "wan2.1_t2v_1.3B_fp16.safetensors", 8.0)
    patched = adacache_chain(wf, model, 0, 760, 0, "fast (paper, 30 steps)")
    pos, neg = text_encoders(wf, "a red fox runs through fresh snow in a pine forest, tracking shot")
    latent = wf.add("EmptyHunyuanLatentVideo", {"width": 832, "height": 480, "length": 33}, pos=(760, 520))
    sampler = ksampler(wf, {"seed": 42, "steps": 30, "cfg": 6.0, "sampler_name": "uni_pc", "scheduler": "simple"}, patched, pos, neg, latent)
    vae = wf.add("VAELoader", {"vae_name": "wan_2.1_vae.safetensors"}, pos=(760, 700))
    save_video(wf, sampler, vae, 16, 1520, "video/wan21_t2v_adacache")
    viewer(wf, patched, sampler, 1520)
    return wf.to_ui("Wan 2.1 T2V 1.3B with AdaCache. Settings from ComfyUI's template (832x480, 33 frames, 30 steps, "
                    "uni_pc, CFG 6, shift 8); AdaCache's speed knob at 2x with forecast (MoReg and the preset act only with target_speedup 0).")


def wan21_t2v_1_3b_calibrated() -> dict:
    """Wan 2.1 1.3B with MoReg calibrated on two reference prompts instead of the paper's hand-set scale."""
    wf = WorkflowBuilder()
    model = diffusion_model(wf, "wan2.1_t2v_1.3B_fp16.safetensors", 8.0)
    pos, neg, references = text_encoders(wf, "a red fox runs through fresh snow in a pine forest, tracking shot",
                                         references=("a quiet mountain lake at dawn, still water, static camera",
                                                     "people dancing at a night festival, fast handheld camera"))
    latent = wf.add("EmptyHunyuanLatentVideo", {"width": 832, "height": 480, "length": 33}, pos=(760, 520))
    sampling = {"seed": 0, "steps": 30, "cfg": 6.0, "sampler_name": "uni_pc",
                "scheduler": "simple"}
    calibration = None
    for i, prompt in enumerate(references):
        cal = wf.add("AdaCacheCalibrate", sampling, pos=(760, 880 + 420 * i), title=f"AdaCache Calibrate {i + 1}")
        for src, name in ((model, "model"), (prompt, "positive"), (neg, "negative"), (latent, "latent_image")):
            wf.connect(src, 0, cal, name)
        if calibration is not None:
            wf.connect(calibration, 1, cal, "earlier_calibration")
        calibration = cal
    moreg = wf.add("AdaCacheMoRegSettings", pos=(1140, 700))
    wf.connect(calibration, 1, moreg, "calibration")
    # MoReg only chooses steps when the speed knob is off (target_speedup 0): the preset's codebook decides
    patch = wf.add("AdaCachePatchModel", {"preset": "fast (paper, 30 steps)", "target_speedup": 0.0}, pos=(1140, 1000))
    wf.connect(model, 0, patch, "model")
    wf.connect(moreg, 0, patch, "moreg")
    sampler = ksampler(wf, sampling | {"seed": 42}, patch, pos, neg, latent, x=1520)
    vae = wf.add("VAELoader", {"vae_name": "wan_2.1_vae.safetensors"}, pos=(1140, 1400))
    save_video(wf, sampler, vae, 16, 1900, "video/wan21_t2v_adacache_calibrated")
    viewer(wf, patch, sampler, 1900)
    return wf.to_ui("Wan 2.1 T2V 1.3B with AdaCache and MoReg calibrated on this model: the two AdaCache Calibrate nodes "
                    "sample two reference prompts (one still, one moving) with every step computed, once (ComfyUI keeps "
                    "their result while their inputs stay the same), and MoReg then judges your prompt's motion "
                    "against theirs at every noise level instead of the paper's scale 0.385, which was set on Open-Sora. "
                    "The speed knob is off here (target_speedup 0), so the paper's codebook and MoReg choose the steps.")


def wan21_t2v_14b_raylight() -> dict:
    """Wan 2.1 T2V 14B on two GPUs with Raylight (Ulysses sequence parallel), AdaCache on every worker."""
    wf = WorkflowBuilder()
    ray = wf.add("RayInitializer", {"GPU": 2, "ulysses_degree": 2, "ring_degree": 1, "cfg_degree": 1}, pos=(0, 0))
    unet = wf.add("RayUNETLoader", {"unet_name": "wan2.1_t2v_14B_fp16.safetensors"}, pos=(380, 0))
    wf.connect(ray, 0, unet, "ray_actors_init")
    patch = wf.add("AdaCachePatchModelRaylight", {"preset": "fast (paper, 30 steps)"}, pos=(760, 0))
    moreg = wf.add("AdaCacheMoRegSettings", pos=(760, 1))
    wf.connect(unet, 0, patch, "ray_actors")
    wf.connect(moreg, 0, patch, "moreg")
    pos, neg = text_encoders(wf, "a red fox runs through fresh snow in a pine forest, tracking shot")
    latent = wf.add("EmptyHunyuanLatentVideo", {"width": 832, "height": 480, "length": 33}, pos=(760, 520))
    sampler = wf.add("XFuserKSamplerAdvanced", {"noise_seed": 42, "steps": 30, "cfg": 6.0, "sampler_name": "uni_pc",
                                                "scheduler": "simple"}, pos=(1140, 0))
    for src, name in ((patch, "ray_actors"), (pos, "positive"), (neg, "negative"), (latent, "latent_image")):
        wf.connect(src, 0, sampler, name)
    vae = wf.add("VAELoader", {"vae_name": "wan_2.1_vae.safetensors"}, pos=(760, 700))
    save_video(wf, sampler, vae, 16, 1520, "video/wan21_t2v_14B_raylight_adacache")
    view = wf.add("AdaCacheScheduleViewer", pos=(1520, 560))
    wf.connect(sampler, 1, view, "ray_actors")
    wf.connect(sampler, 0, view, "samples")
    return wf.to_ui("Wan 2.1 T2V 14B on 2 GPUs with Raylight (Ulysses sequence parallel) and AdaCache on every worker. "
                    "Needs the Raylight custom nodes. Settings as the Wan 2.1 T2V template (832x480, 33 frames, 30 steps, "
                    "uni_pc, CFG 6); Raylight applies the model's own shift. Every GPU takes the same cache decisions, "
                    "measured over both: one all_reduce of a few numbers per computed step.")


def wan21_i2v_14b() -> dict:
    wf = WorkflowBuilder()
    model = diffusion_model(wf, "wan2.1_i2v_480p_14B_fp16.safetensors", 8.0)
    patched = adacache_chain(wf, model, 0, 760, 0, "fast (paper, 30 steps)")
    pos, neg = text_encoders(wf, "the woman turns her head and smiles, hair moving in the wind")
    vae = wf.add("VAELoader", {"vae_name": "wan_2.1_vae.safetensors"}, pos=(0, 860))
    clip_vision = wf.add("CLIPVisionLoader", {"clip_name": "clip_vision_h.safetensors"}, pos=(0, 1000))
    image = wf.add("LoadImage", {"image": "example.png"}, pos=(0, 1140))
    encode = wf.add("CLIPVisionEncode", {"crop": "none"}, pos=(380, 1000))
    wf.connect(clip_vision, 0, encode, "clip_vision")
    wf.connect(image, 0, encode, "image")
    i2v = wf.add("WanImageToVideo", {"width": 512, "height": 512, "length": 33}, pos=(760, 520))
    for src, slot, name in ((pos, 0, "positive"), (neg, 0, "negative"), (vae, 0, "vae"), (encode, 0, "clip_vision_output"), (image, 0, "start_image")):
        wf.connect(src, slot, i2v, name)
    sampler = wf.add("KSampler", {"seed": 42, "steps": 20, "cfg": 6.0, "sampler_name": "uni_pc", "scheduler": "simple"}, pos=(1140, 0))
    wf.connect(patched, 0, sampler, "model")
    for slot, name in ((0, "positive"), (1, "negative"), (2, "latent_image")):
        wf.connect(i2v, slot, sampler, name)
    save_video(wf, sampler, vae, 16, 1520, "video/wan21_i2v_adacache")
    viewer(wf, patched, sampler, 1520)
    return wf.to_ui("Wan 2.1 I2V 14B 480p with AdaCache. Settings from ComfyUI's template (512x512, 33 frames, 20 steps, "
                    "uni_pc, CFG 6); AdaCache's speed knob at 2x with forecast (MoReg and the preset act only with target_speedup 0).")


def wan22_a14b_t2v(steps: int = 20, cfg: float = 3.5, shift: float = 8.0, loras: tuple[str, str] | None = None) -> dict:
    """Wan 2.2 A14B: two experts, each patched, half of the steps each (KSamplerAdvanced)."""
    wf = WorkflowBuilder()
    high = diffusion_model(wf, "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", shift, y=0, title="High-noise expert",
                           lora=loras and loras[0])
    low = diffusion_model(wf, "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors", shift, y=180, title="Low-noise expert",
                          lora=loras and loras[1])
    patched_high = adacache_chain(wf, high, 0, 760, 0, "fast (paper, 30 steps)")
    patched_low = adacache_chain(wf, low, 0, 760, 520, "fast (paper, 30 steps)")
    pos, neg = text_encoders(wf, "a paper boat sails down a rain-filled street, low camera following it", y=400)
    latent = wf.add("EmptyHunyuanLatentVideo", {"width": 640, "height": 640, "length": 81}, pos=(760, 1040))
    common = {"cfg": cfg, "sampler_name": "euler", "scheduler": "simple", "steps": steps}
    first = wf.add("KSamplerAdvanced", common | {"add_noise": "enable", "noise_seed": 42, "start_at_step": 0, "end_at_step": steps // 2,
                                                 "return_with_leftover_noise": "enable"}, pos=(1140, 0))
    second = wf.add("KSamplerAdvanced", common | {"add_noise": "disable", "noise_seed": 42, "start_at_step": steps // 2,
                                                  "end_at_step": 10000, "return_with_leftover_noise": "disable"}, pos=(1140, 520))
    for sampler, model in ((first, patched_high), (second, patched_low)):
        wf.connect(model, 0, sampler, "model")
        wf.connect(pos, 0, sampler, "positive")
        wf.connect(neg, 0, sampler, "negative")
    wf.connect(latent, 0, first, "latent_image")
    wf.connect(first, 0, second, "latent_image")
    vae = wf.add("VAELoader", {"vae_name": "wan_2.1_vae.safetensors"}, pos=(760, 1220))
    save_video(wf, second, vae, 16, 1520, "video/wan22_a14b_adacache")
    viewer(wf, patched_high, second, 1520, model_2=patched_low)
    if loras:
        return wf.to_ui(f"Wan 2.2 A14B T2V on the path of ComfyUI's current template: the LightX2V 4-step LoRAs, {steps} steps "
                        f"split {steps // 2}/{steps // 2}, CFG {cfg:g}, shift {shift:g}. With {steps // 2} steps per expert there is "
                        "nothing for a per-step cache to reuse (the first and last two steps are always computed): "
                        "AdaCache computes every step and the viewer and the console say so in one line. Kept to show "
                        "that; for speed from AdaCache use the 20-step workflow.")
    return wf.to_ui("Wan 2.2 A14B T2V with AdaCache on both experts: each patched model has its own cache and step "
                    "accounting. Settings from ComfyUI's earlier template (640x640, 81 frames, 20 steps split 10/10, euler, "
                    "CFG 3.5); the current template's default is the 4-step LightX2V path (the other Wan 2.2 A14B workflow). "
                    "The viewer shows both experts side by side.")


def wan22_ti2v_5b() -> dict:
    wf = WorkflowBuilder()
    model = diffusion_model(wf, "wan2.2_ti2v_5B_fp16.safetensors", 8.0)
    patched = adacache_chain(wf, model, 0, 760, 0, "fast (paper, 30 steps)")
    pos, neg = text_encoders(wf, "a hummingbird hovers at a red flower, slow motion, macro")
    vae = wf.add("VAELoader", {"vae_name": "wan2.2_vae.safetensors"}, pos=(0, 860))
    latent = wf.add("Wan22ImageToVideoLatent", {"width": 1280, "height": 704, "length": 121}, pos=(760, 520))
    wf.connect(vae, 0, latent, "vae")
    sampler = ksampler(wf, {"seed": 42, "steps": 20, "cfg": 5.0, "sampler_name": "uni_pc", "scheduler": "simple"}, patched, pos, neg, latent)
    save_video(wf, sampler, vae, 24, 1520, "video/wan22_ti2v_5b_adacache")
    viewer(wf, patched, sampler, 1520)
    return wf.to_ui("Wan 2.2 TI2V 5B (48-channel latents) with AdaCache. Settings from ComfyUI's template (1280x704, "
                    "121 frames, 20 steps, uni_pc, CFG 5); connect a start image to Wan22ImageToVideoLatent for I2V.")


def hunyuan_video_t2v() -> dict:
    """HunyuanVideo is guidance-distilled: FluxGuidance + BasicGuider + SamplerCustomAdvanced, as its template."""
    wf = WorkflowBuilder()
    model = diffusion_model(wf, "hunyuan_video_t2v_720p_bf16.safetensors", 7.0)
    patched = adacache_chain(wf, model, 0, 760, 0, "fast (paper, 30 steps)")
    clip = wf.add("DualCLIPLoader", {"clip_name1": "clip_l.safetensors", "clip_name2": "llava_llama3_fp8_scaled.safetensors",
                                     "type": "hunyuan_video"}, pos=(0, 400))
    text = wf.add("CLIPTextEncode", {"text": "a cat walks on the grass, realistic style, tracking shot"}, pos=(380, 400), title="Positive")
    wf.connect(clip, 0, text, "clip")
    guidance = wf.add("FluxGuidance", {"guidance": 6.0}, pos=(380, 620))
    wf.connect(text, 0, guidance, "conditioning")
    guider = wf.add("BasicGuider", pos=(1140, 0))
    wf.connect(patched, 0, guider, "model")
    wf.connect(guidance, 0, guider, "conditioning")
    noise = wf.add("RandomNoise", {"noise_seed": 42}, pos=(1140, 120))
    sampler = wf.add("KSamplerSelect", {"sampler_name": "euler"}, pos=(1140, 240))
    sigmas = wf.add("BasicScheduler", {"scheduler": "simple", "steps": 20, "denoise": 1.0}, pos=(1140, 360))
    wf.connect(patched, 0, sigmas, "model")
    latent = wf.add("EmptyHunyuanLatentVideo", {"width": 848, "height": 480, "length": 73}, pos=(760, 520))
    run = wf.add("SamplerCustomAdvanced", pos=(1140, 500))
    for src, name in ((noise, "noise"), (guider, "guider"), (sampler, "sampler"), (sigmas, "sigmas"), (latent, "latent_image")):
        wf.connect(src, 0, run, name)
    vae = wf.add("VAELoader", {"vae_name": "hunyuan_video_vae_bf16.safetensors"}, pos=(760, 700))
    save_video(wf, run, vae, 24, 1520, "video/hunyuan_video_adacache", tiled=True)
    viewer(wf, patched, run, 1520)
    return wf.to_ui("HunyuanVideo T2V with AdaCache. Settings from ComfyUI's template (848x480, 73 frames, 20 steps, euler, "
                    "guidance 6 through FluxGuidance, shift 7); guidance-distilled, so only the cond branch runs.")


def ltx_video_t2v() -> dict:
    """LTX-Video ships as a checkpoint (model + VAE); sampled with SamplerCustom and LTXVScheduler, as its template."""
    wf = WorkflowBuilder()
    checkpoint = wf.add("CheckpointLoaderSimple", {"ckpt_name": "ltx-video-2b-v0.9.5.safetensors"}, pos=(0, 0))
    patched = adacache_chain(wf, checkpoint, 0, 760, 0, "fast (paper, 30 steps)")
    clip = wf.add("CLIPLoader", {"clip_name": "t5xxl_fp16.safetensors", "type": "ltxv"}, pos=(0, 400))
    pos = wf.add("CLIPTextEncode", {"text": "a woman with long brown hair walks along a beach at sunset, waves rolling in, "
                                            "the camera follows her from the side"}, pos=(380, 400), title="Positive")
    neg = wf.add("CLIPTextEncode", {"text": "low quality, worst quality, deformed, distorted, disfigured, motion smear, "
                                            "motion artifacts, fused fingers, bad anatomy, weird hand, ugly"},
                 pos=(380, 620), title="Negative")
    for text in (pos, neg):
        wf.connect(clip, 0, text, "clip")
    conditioning = wf.add("LTXVConditioning", {"frame_rate": 25.0}, pos=(760, 520))
    wf.connect(pos, 0, conditioning, "positive")
    wf.connect(neg, 0, conditioning, "negative")
    latent = wf.add("EmptyLTXVLatentVideo", {"width": 768, "height": 512, "length": 97}, pos=(760, 700))
    sigmas = wf.add("LTXVScheduler", {"steps": 30, "max_shift": 2.05, "base_shift": 0.95, "stretch": True, "terminal": 0.1},
                    pos=(1140, 360))
    wf.connect(latent, 0, sigmas, "latent")
    sampler = wf.add("KSamplerSelect", {"sampler_name": "euler"}, pos=(1140, 240))
    run = wf.add("SamplerCustom", {"add_noise": True, "noise_seed": 42, "cfg": 3.0}, pos=(1140, 0))
    wf.connect(patched, 0, run, "model")
    wf.connect(conditioning, 0, run, "positive")
    wf.connect(conditioning, 1, run, "negative")
    wf.connect(sampler, 0, run, "sampler")
    wf.connect(sigmas, 0, run, "sigmas")
    wf.connect(latent, 0, run, "latent_image")
    save_video(wf, run, checkpoint, 25, 1520, "video/ltx_video_t2v_adacache", vae_slot=2)
    viewer(wf, patched, run, 1520)
    return wf.to_ui("LTX-Video 2B (0.9.5) T2V with AdaCache. Settings from ComfyUI's example (768x512, 97 frames, 30 steps, "
                    "LTXVScheduler, euler, CFG 3, 25 fps); AdaCache's speed knob at 2x with forecast (MoReg and the preset act only with target_speedup 0).")


def tiny_demo() -> dict:
    """The demo on the bundled tiny model: runs anywhere, headless, in seconds."""
    wf = WorkflowBuilder()
    loader = wf.add("UNETLoader", {"unet_name": "tiny_wan21_motion.safetensors"}, pos=(0, 0))
    # Hand-tuned on this model: its block residual's motion scores are 0.04-0.36, so "normal" motion is
    # 0.15, not 0.385; the block residual separates its motion classes better than the attention
    # residual does (benchmarks/RESULTS.md, "What the probe measures")
    patched = adacache_chain(wf, loader, 0, 380, 0, "fast (paper, 30 steps)", {"motion_scale": 0.15},
                             {"probe_residual": "block"})
    pos = wf.add("AdaCacheDemoPrompt", {"motion": "fast"}, pos=(0, 400), title="Positive")
    neg = wf.add("AdaCacheDemoPrompt", {"motion": "empty"}, pos=(0, 520), title="Negative")
    latent = wf.add("EmptyHunyuanLatentVideo", {"width": 128, "height": 128, "length": 33}, pos=(380, 520))
    sampler = ksampler(wf, {"seed": 7, "steps": 30, "cfg": 5.0, "sampler_name": "euler", "scheduler": "simple"}, patched, pos, neg, latent, x=760)
    preview = wf.add("AdaCacheDemoLatentPreview", pos=(1140, 0))
    wf.connect(sampler, 0, preview, "samples")
    save = wf.add("SaveAnimatedWEBP", {"filename_prefix": "adacache_demo/video", "fps": 6.0}, pos=(1140, 160))
    wf.connect(preview, 0, save, "images")
    latent_out = wf.add("SaveLatent", {"filename_prefix": "adacache_demo/latent"}, pos=(1140, 420))
    wf.connect(sampler, 0, latent_out, "samples")
    view = viewer(wf, patched, sampler, 1140)
    chart = wf.add("SaveImage", {"filename_prefix": "adacache_demo/schedule"}, pos=(1520, 560))
    wf.connect(view, 0, chart, "images")
    return wf.to_ui("AdaCache demo on the bundled tiny Wan 2.1 model (trained by tools/train_tiny_wan.py on synthetic "
                    "moving blobs). Put demo_models/tiny_wan21_motion.safetensors in models/diffusion_models. "
                    "Turn target_speedup up for speed or down for fidelity and compare the viewer's picture. With "
                    "target_speedup 0 the paper's codebook decides; MoReg's motion_scale is then tuned by hand for this "
                    "model (0.15: its block residual's motion scores are 0.04-0.36; the paper's 0.385 fits Open-Sora).")


WORKFLOWS = {
    "adacache_demo_tiny_model.json": tiny_demo,
    "wan2.1_t2v_1.3B_adacache.json": wan21_t2v_1_3b,
    "wan2.1_t2v_1.3B_adacache_calibrated.json": wan21_t2v_1_3b_calibrated,
    "wan2.1_i2v_480p_14B_adacache.json": wan21_i2v_14b,
    "wan2.2_t2v_A14B_two_experts_adacache.json": wan22_a14b_t2v,
    "wan2.2_t2v_A14B_lightx2v_4steps_adacache.json": lambda: wan22_a14b_t2v(
        steps=4, cfg=1.0, shift=5.0, loras=("wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors",
                                            "wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors")),
    "wan2.2_ti2v_5B_adacache.json": wan22_ti2v_5b,
    "wan2.1_t2v_14B_raylight_adacache.json": wan21_t2v_14b_raylight,
    "hunyuan_video_t2v_720p_adacache.json": hunyuan_video_t2v,
    "ltx_video_2b_t2v_adacache.json": ltx_video_t2v,
}


def main() -> None:
    comfy_runtime.boot()
    comfy_runtime.load_raylight_nodes()  # the Raylight workflow's nodes (../shared/third_party/raylight)
    OUT.mkdir(exist_ok=True)
    for name, build in WORKFLOWS.items():
        (OUT / name).write_text(json.dumps(with_downloads(build()), indent=1) + "\n")
        print("wrote", OUT.relative_to(comfy_runtime.REPO_ROOT) / name)
    make_thumbnails.write_all(OUT)  # each workflow's <name>.jpg beside it (a picture of its graph)


if __name__ == "__main__":
    main()
