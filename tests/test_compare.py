"""AdaCache Compare on real runs of the tiny demo model: the uncached and the AdaCache result, decoded."""
import pytest
import torch

import helpers as h
from tools import comfy_runtime

STEPS = 30


@pytest.fixture(scope="module")
def tiny(runtime):
    import comfy.sd

    return comfy.sd.load_diffusion_model(str(comfy_runtime.TINY_MODEL_DIR / "tiny_wan21_motion.safetensors"))


def decoded(runtime, model, target_speedup=None):
    """(frames of the demo's 'fast' prompt sampled by ``model``, patched at ``target_speedup`` unless None; latent)."""
    demo = runtime.pack.nodes.demo
    if target_speedup is not None:
        model = h.adacache(runtime, model, target_speedup=target_speedup)
    latent = h.ksample(model, [[demo.load_prompt("fast"), {}]], [[demo.load_prompt("empty"), {}]],
                       torch.zeros(1, 16, 5, 16, 16), steps=STEPS, seed=3)
    return demo.latent_to_rgb(latent), {"samples": latent}


def compare(runtime, uncached, adacache, **latents):
    import nodes

    return nodes.NODE_CLASS_MAPPINGS["AdaCacheCompare"].execute(uncached=uncached, adacache=adacache, **latents)


def test_the_sentence_follows_the_knob_and_matches_psnr_and_ssim(runtime, tiny):
    reference, reference_latent = decoded(runtime, tiny)
    texts = {}
    for speed in (1.0, 2.0, 10.0):
        frames, latent = decoded(runtime, tiny, speed)
        out = compare(runtime, reference, frames, uncached_latent=reference_latent, adacache_latent=latent)
        picture, text = out.args
        texts[speed] = text
        # the picture: 4 rows of frames (5 frames decoded), each uncached | AdaCache | difference
        assert picture.shape[0] == 1 and picture.shape[2] > 3 * 16 and picture.shape[1] > 4 * 16
        assert out.ui["text"] == (text,) and out.ui["images"]
    assert texts[1.0].startswith("The same to the eye.") and "PSNR identical, SSIM 1.0000" in texts[1.0]
    assert "latents: PSNR identical" in texts[1.0]  # every step computed: the unpatched output, bitwise
    psnr_at = {s: float(t.split("frames: PSNR ")[1].split(" dB")[0]) for s, t in texts.items() if s > 1}
    assert psnr_at[2.0] > psnr_at[10.0]  # more speed, further from the uncached video
    verdicts = [t.splitlines()[0] for t in texts.values()]
    order = ["The same to the eye.", "Small differences", "Visible changes"]
    ranks = [next(i for i, start in enumerate(order) if v.startswith(start)) for v in verdicts]
    assert ranks == sorted(ranks)  # the sentence never gets better as the knob goes up


def test_the_verdict_bands(runtime):
    verdict = runtime.pack.nodes.compare.verdict
    assert verdict(float("inf"), 1.0) == "The same to the eye."
    assert verdict(45.0, 0.97).startswith("Small differences")  # high PSNR but the structure moved
    assert verdict(35.0, 0.95).startswith("Small differences")
    assert verdict(29.9, 0.99).startswith("Visible changes")
    assert verdict(float("nan"), float("nan")).startswith("Visible changes")


def test_the_difference_picture_is_black_where_nothing_changed_and_amplified_where_it_did(runtime):
    frames = torch.full((2, 8, 8, 3), 0.5)
    changed = frames.clone()
    changed[:, 0, 0] += 0.05
    picture = compare(runtime, frames, changed).args[0][0]
    width = 8
    gap = picture.shape[1] - 3 * width
    difference = picture[:8, 2 * width + gap:]
    assert difference[0, 0].tolist() == pytest.approx([0.4] * 3)  # 0.05 x 8
    assert difference[1:, :].abs().max() == 0 and difference[:, 1:].abs().max() == 0


@pytest.mark.parametrize("other, why", [
    (torch.zeros(3, 8, 8, 3), "adacache: (3, 8, 8) (frames, height, width) differs from uncached (2, 8, 8)"),
    ({"samples": torch.zeros(1, 16, 2, 8, 8)}, "adacache: connect decoded frames (an IMAGE output"),
])
def test_results_that_cannot_be_compared_are_refused_naming_both(runtime, other, why):
    with pytest.raises(runtime.pack.adacache_core.SettingsError, match=why.replace("(", r"\(").replace(")", r"\)")):
        compare(runtime, torch.zeros(2, 8, 8, 3), other)


def test_in_the_demo_turning_the_knob_reruns_only_the_adacache_branch(runtime):
    """As a server between two queued prompts (one executor, ComfyUI's own cache): the uncached sampler runs once."""
    from tools import comfy_exec

    prompt = h.short_demo_prompt(8)
    ids = {}
    for node_id, node in prompt.items():
        if node["class_type"] == "KSampler":
            ids["patch" if prompt[node["inputs"]["model"][0]]["class_type"] == "AdaCachePatchModel" else "plain"] = node_id
        ids.setdefault(node["class_type"], node_id)
    executor, verdicts, cached = None, [], []
    for speed in (1.0, 4.0):
        prompt[ids["AdaCachePatchModel"]]["inputs"]["target_speedup"] = speed
        executor = comfy_exec.execute(prompt, executor)
        verdicts.append(executor.history_result["outputs"][ids["AdaCacheCompare"]]["text"][0])
        cached.append(set(next((d["nodes"] for e, d in executor.status_messages if e == "execution_cached"), [])))
    assert ids["plain"] in cached[1] and ids["patch"] not in cached[1]  # only the AdaCache branch sampled again
    assert verdicts[0].startswith("The same to the eye.") and "latents: PSNR identical" in verdicts[0]
    assert "latents: PSNR identical" not in verdicts[1]
