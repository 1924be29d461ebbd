"""What every tiny-model benchmark shares: its common options, the booted ComfyUI and the loaded model."""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO))
from tools import comfy_runtime  # noqa: E402

LATENT = (1, 16, 9, 16, 16)  # 9 latent frames of 16x16: the size every tiny-model benchmark samples


def parser(doc: str, model: str) -> argparse.ArgumentParser:
    """The options every tiny-model benchmark takes: which model, how many steps, CPU threads."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("motion", "heldout", "clips"), default=model)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    return ap


def load(args: argparse.Namespace):
    """Boot ComfyUI and load the tiny model: (tools.pack_calls, model, {class: cond}, empty cond, latent)."""
    comfy_runtime.boot()
    torch.set_num_threads(args.threads)
    from tools import pack_calls

    base, conds, empty = pack_calls.load_tiny(args.model)
    return pack_calls, base, conds, empty, torch.zeros(*LATENT)


@contextlib.contextmanager
def computing_exactly(h, model, computed: frozenset[int]):
    """Inside: every sampling run of the patched ``model`` computes exactly the steps in ``computed`` and
    reuses the rest (the pack's exact-steps schedule, as AdaCache Plan Search samples its candidates), so a
    benchmark can sample any schedule, including ones the knob would never pick."""
    session = h.session_of(model)
    session.compute_exactly(frozenset(computed))
    try:
        yield
    finally:
        session.compute_exactly(None)
