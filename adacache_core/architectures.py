"""Per-model knowledge, as data: where a DiT's blocks are and how its tokens form a video grid.

Adding a model is adding a row (and a test). Rows name ComfyUI classes by their class name so
that this module stays free of ComfyUI imports. What each field means for the bridge:

name:              shown in logs and in the run data
classes:           class names of ``model.diffusion_model`` the row applies to
block_lists:       the block lists in execution order, each hooked one of two ways (:class:`BlockList`)
stream:            key of the image hidden state in the replacement's args / returned dict (for
                   forward-hooked blocks: the name of that argument of the block's forward)
patch_size:        dotted attribute path of the patch size (int = spatial only, or (t, h, w)), or
                   a (t, h, w) tuple of such paths; None for models without a video token grid
                   (MoReg then stays off)
inplace_blocks:    blocks update their input tensor in place, so inputs are copied before use
merged_stream:     later blocks work on text and image tokens concatenated: "txt_first" or
                   "img_first" says where the image tokens sit (the probe measures those only;
                   each list's cached residual covers its whole stream)
controls_between:  the model adds ControlNet residuals or runs transformer_options["patches"]
                   ["double_block"] between blocks, outside the hook: such runs compute every step
side_blocks:       blocks the model runs beside the stack and adds between its blocks (:class:`SideBlocks`)
layout:            dotted attribute of the model naming its hidden-state layout between blocks
                   (Cosmos 1: "THWBD", batch next to last); None: batch first
adds_before_blocks: the model adds to the stream before every block, outside the hook (Cosmos 1's
                   per-block position embedding): on reused steps the last block returns what the
                   first one returned, so those additions are not counted again
paired_stream:     the stream is a (video, audio) pair of token tensors (LTX-2): each part has its own cached
                   residual, the probe measures the video part
attention_residual: how to take a block's gated self-attention residual, the quantity the paper's
                   probe measures (:class:`AttentionResidual`); None: the probe measures the whole
                   block's residual
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class BlockList:
    """One list of blocks and how the bridge hooks each of them.

    ``key``: the ``patches_replace["dit"]`` key kind (e.g. "double_block") for models whose
    forward honours per-block replacement. ``None`` for models that do not: their blocks'
    ``forward`` is shadowed for the length of one sampling call (see comfy_bridge), and
    ``returns`` names the forward's arguments that the block returns updated (one name: the
    block returns that tensor; several: a tuple in that order).
    """

    attribute: str
    key: str | None = None
    returns: tuple[str, ...] = ()

    def modules(self, diffusion_model: object) -> list:
        blocks = _attribute(diffusion_model, self.attribute)
        return list(blocks.values()) if hasattr(blocks, "values") else list(blocks)  # Cosmos 1: a ModuleDict


@dataclass(frozen=True)
class SideBlocks:
    """Blocks run beside the main stack whose outputs the model adds between main blocks (VACE hints).

    On computed steps they run, and what they add is part of the cached residual of the span; on
    reused steps they are silenced through their forward for the sampling call: the outputs named
    in ``zeroed`` are zero, the other ``returns`` pass the argument of the same name through.
    ``placement`` says after which main blocks they add: the name of the model's map of main-block
    index -> side block (VACE), or a stride (side block k after main block k * stride, Animate).
    A side block after the last main block would add outside the measured span: such a model is
    refused.
    """

    attribute: str
    returns: tuple[str, ...]
    zeroed: tuple[str, ...]
    placement: str | int

    def modules(self, diffusion_model: object) -> list:
        """The side blocks: a list of them, or one module the model calls after several main blocks (WanDancer)."""
        found = _attribute(diffusion_model, self.attribute)
        return list(found) if hasattr(found, "__len__") else [found]

    def after_blocks(self, diffusion_model: object) -> set[int]:
        """Indices of the main blocks after which one of these side blocks adds its output."""
        if isinstance(self.placement, int):
            return {k * self.placement for k in range(len(self.modules(diffusion_model)))}
        return set(_attribute(diffusion_model, self.placement))


@dataclass(frozen=True)
class AttentionResidual:
    """Where a block's gated self-attention residual ``gate * attn(x)`` comes from (the paper's probe).

    The attention module's output is read by a forward hook for the length of one block call; the
    gate is term ``gate`` of the ``chunks`` modulation terms the block forms from its ``modulation``
    parameter (``chunks`` x channels, any leading ones) plus the timestep embedding it is given
    (``timestep_arg`` of the replacement's args: ``chunks`` x channels per sample, per frame or per
    token), repeated over the tokens it covers. Nothing of the block's forward is copied: only the
    gate's two-term sum is formed again.
    """

    module: str
    modulation: str
    timestep_arg: str
    chunks: int
    gate: int


@dataclass(frozen=True)
class Architecture:
    name: str
    classes: tuple[str, ...]
    block_lists: tuple[BlockList, ...]
    stream: str = "img"
    patch_size: str | tuple[str, str, str] | None = "patch_size"
    inplace_blocks: bool = False
    merged_stream: str | None = None
    controls_between: bool = False
    side_blocks: tuple[SideBlocks, ...] = ()
    layout: str | None = None
    adds_before_blocks: bool = False
    paired_stream: bool = False
    attention_residual: AttentionResidual | None = None

    def parts(self, stream) -> tuple:
        """The stream's tensors: both of a paired stream (the video first), else the one."""
        return tuple(stream) if self.paired_stream else (stream,)

    def joined(self, parts):
        """The inverse of :meth:`parts`."""
        return tuple(parts) if self.paired_stream else parts[0]

    def batch_axis(self, diffusion_model: object) -> int:
        """Where the batch sits in the hidden states the blocks pass on."""
        return 0 if self.layout is None else str(_attribute(diffusion_model, self.layout)).index("B")

    def patch_of(self, diffusion_model: object) -> tuple[int, int, int] | None:
        if self.patch_size is None:
            return None
        if isinstance(self.patch_size, tuple):  # an axis without its own patch size (CogVideoX 1.0 in time): 1
            return tuple(int(_attribute(diffusion_model, path) or 1) for path in self.patch_size)  # type: ignore[return-value]
        value = _attribute(diffusion_model, self.patch_size)
        if isinstance(value, int):
            return (1, value, value)
        value = tuple(int(v) for v in value)
        return (1, *value) if len(value) == 2 else value

    @staticmethod
    def token_grid(latent_shape: tuple[int, ...], patch: tuple[int, ...]) -> tuple[int, int, int] | None:
        """(frames, height, width) in tokens for a (B, C, T, H, W) latent, or None if unknown."""
        if len(latent_shape) != 5 or len(patch) != 3:
            return None
        return tuple(math.ceil(n / p) for n, p in zip(latent_shape[2:], patch))  # type: ignore[return-value]

    @staticmethod
    def tokens(hidden, batch_axis: int = 0):
        """A hidden state as (batch, tokens, channels); Cosmos keeps (B, T, H, W, D), Cosmos 1 (T, H, W, B, D)."""
        return hidden.movedim(batch_axis, 0).flatten(1, -2)

    @staticmethod
    def from_tokens(tokens, like, batch_axis: int = 0):
        """The inverse of :meth:`tokens`: ``tokens`` in the layout of the hidden state ``like``."""
        return tokens.reshape(like.movedim(batch_axis, 0).shape).movedim(0, batch_axis)

    def image_range(self, list_index: int, total: int, image_count: int, options: dict) -> tuple[int, int]:
        """Where the image tokens sit in a block list's whole stream of ``total`` tokens: [start, stop).

        The first list's stream is the image (all of it, as it is for lists without text merged in);
        later lists of a ``merged_stream`` row hold text too. Newer ComfyUI (and Raylight) say where
        the image starts (``transformer_options["img_slice"]``) and have flipped HunyuanVideo's order;
        without it, the row's ``merged_stream`` (0.3.75) applies. Tokens past the image (padding a
        sequence-parallel engine added) are outside the range.
        """
        if list_index == 0 or self.merged_stream is None:
            return 0, min(image_count, total)
        where = options.get("img_slice")
        if where is not None:
            start = where[0]
        else:
            start = 0 if self.merged_stream == "img_first" else total - image_count
        return start, min(start + image_count, total)


def _attribute(obj: object, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


DOUBLE = (BlockList("blocks", "double_block"),)
# Wan blocks: x = x + gate_msa * self_attn(...), the gate chunk 2 of (modulation + e).chunk(6)
WAN_ATTENTION = AttentionResidual(module="self_attn", modulation="modulation", timestep_arg="vec", chunks=6, gate=2)
# LTX-Video blocks: x += attn1(...) * gate_msa, the gate term 2 of scale_shift_table + timestep (6 terms)
LTX_ATTENTION = AttentionResidual(module="attn1", modulation="scale_shift_table", timestep_arg="vec", chunks=6, gate=2)
# PixArt blocks (the family of the paper's Open-Sora STDiT): x + gate_msa * attn(...), from scale_shift_table + t
PIXART_ATTENTION = AttentionResidual(module="attn", modulation="scale_shift_table", timestep_arg="t", chunks=6, gate=2)
FLUX_LIKE = (BlockList("double_blocks", "double_block"), BlockList("single_blocks", "single_block"))

ARCHITECTURES: tuple[Architecture, ...] = (
    # CameraWanModel and HumoWanModel (whose blocks take the audio) run their blocks exactly as
    # WanModel (newer ComfyUI runs "double_block" patches after each Wan block, hence
    # controls_between). S2V adds audio after its last block too: refused (REFUSED below).
    Architecture("Wan 2.1 / 2.2", ("WanModel", "CameraWanModel", "HumoWanModel"), DOUBLE, controls_between=True,
                 attention_residual=WAN_ATTENTION),
    # VACE adds each vace block's hint (c_skip) to x after some blocks: silenced on reused steps,
    # where the cached residual already holds the hints of the last computed step.
    Architecture("Wan VACE", ("VaceWanModel",), DOUBLE, controls_between=True, attention_residual=WAN_ATTENTION,
                 side_blocks=(SideBlocks("vace_blocks", ("c_skip", "c"), ("c_skip",), "vace_layers_mapping"),)),
    # Animate adds a face block's output (face motion attended by x) to x after every 5th block:
    # the same pattern as VACE. The face and pose encoders run before the blocks, on every step.
    Architecture("Wan Animate", ("AnimateWanModel",), DOUBLE, controls_between=True, attention_residual=WAN_ATTENTION,
                 side_blocks=(SideBlocks("face_adapter.fuser_blocks", ("face",), ("face",), 5),)),
    Architecture("HunyuanVideo", ("HunyuanVideo",), FLUX_LIKE, inplace_blocks=True, merged_stream="img_first",
                 controls_between=True),
    Architecture("Mochi", ("AsymmDiTJoint",), DOUBLE),
    # LTX-2 (newer ComfyUI) passes its blocks the video and the audio tokens as a pair and updates both in place.
    Architecture("LTX-2", ("LTXAVModel",), (BlockList("transformer_blocks", "double_block"),),
                 patch_size="patchifier.patch_size", inplace_blocks=True, paired_stream=True),
    # Tokens are (frames, height, width) in the patchifier's order; blocks add to x in place.
    Architecture("LTX-Video", ("LTXVModel",), (BlockList("transformer_blocks", "double_block"),),
                 patch_size="patchifier.patch_size", inplace_blocks=True, attention_residual=LTX_ATTENTION),
    Architecture("Flux 1 / Flux 2", ("Flux",), FLUX_LIKE, patch_size=None, inplace_blocks=True, merged_stream="txt_first",
                 controls_between=True),
    Architecture("Chroma / Chroma Radiance", ("Chroma", "ChromaRadiance"), FLUX_LIKE, patch_size=None, inplace_blocks=True,
                 merged_stream="txt_first", controls_between=True),
    Architecture("Qwen-Image", ("QwenImageTransformer2DModel",), (BlockList("transformer_blocks", "double_block"),),
                 patch_size=None, controls_between=True),
    # SD3 / SD3.5: joint blocks update text and image apart; ControlNets add after each block.
    Architecture("SD3 / SD3.5", ("OpenAISignatureMMDITWrapper",), (BlockList("joint_blocks", "double_block"),),
                 patch_size=None, controls_between=True),
    # Hunyuan-DiT: U-Net-like long skips between its blocks, which pass through on reused steps too.
    Architecture("Hunyuan-DiT", ("HunYuanDiT",), DOUBLE, patch_size=None, controls_between=True),
    Architecture("AuraFlow", ("MMDiT",), (BlockList("double_layers", "double_block"), BlockList("single_layers", "single_block")),
                 patch_size=None, merged_stream="txt_first"),
    # No per-block replacement in ComfyUI: hooked through their blocks' forward (BlockList.key None).
    Architecture("Cosmos Predict2", ("MiniTrainDIT",), (BlockList("blocks", returns=("x_B_T_H_W_D",)),),
                 stream="x_B_T_H_W_D", patch_size=("patch_temporal", "patch_spatial", "patch_spatial")),
    Architecture("Cosmos 1", ("GeneralDIT",), (BlockList("blocks", returns=("x",)),), stream="x",
                 patch_size=("patch_temporal", "patch_spatial", "patch_spatial"), layout="block_x_format",
                 adds_before_blocks=True),
    Architecture("PixArt Alpha / Sigma", ("PixArtMS",), (BlockList("blocks", returns=("x",)),), stream="x", patch_size=None,
                 attention_residual=PIXART_ATTENTION),
    # Double blocks update image and text tokens; single blocks see [image, text] concatenated.
    Architecture("HiDream", ("HiDreamImageTransformer2DModel",),
                 (BlockList("double_stream_blocks", returns=("image_tokens", "text_tokens")),
                  BlockList("single_stream_blocks", returns=("image_tokens",))),
                 stream="image_tokens", patch_size=None, merged_stream="img_first"),
    # Newer ComfyUI (0.20.1). Kandinsky 5's own per-block replacement calls its visual blocks with an argument
    # they lack there: hooked through their forward. Its few text blocks run on every step.
    Architecture("Kandinsky 5", ("Kandinsky5",), (BlockList("visual_transformer_blocks", returns=("visual_embed",)),),
                 stream="visual_embed"),
    # No per-block replacement; blocks return (video, text) tokens; 1.5 patches time too (patch_size_t, None on 1.0).
    Architecture("CogVideoX", ("CogVideoXTransformer3DModel",),
                 (BlockList("blocks", returns=("hidden_states", "encoder_hidden_states")),), stream="hidden_states",
                 patch_size=("patch_size_t", "patch_size", "patch_size")),
    # WanDancer runs Wan's blocks; its music injector, one module called after every block, adds the music after
    # some of them (injected_block_id): a side block, silenced on reused steps as VACE's hints.
    Architecture("WanDancer", ("WanDancerModel",), DOUBLE, attention_residual=WAN_ATTENTION,
                 side_blocks=(SideBlocks("music_injector", ("x",), (), "music_injector.injected_block_id"),)),
    # Caption and image tokens form one stream from the first layer on: the residual covers both.
    # Newer ComfyUI runs "double_block" patches (Z-Image control) after each layer.
    Architecture("Lumina 2 / Z-Image", ("NextDiT",), (BlockList("layers", returns=("x",)),), stream="x",
                 patch_size=None, controls_between=True),
)

# Known DiTs that cannot be cached safely, and why: named in the warning.
REFUSED = {
    "WanModel_S2V": ("Wan S2V", "its audio injector adds to the stream after the last block too (layer 39 of 40), "
                                "outside the span of blocks a cache can measure"),
    "CausalWanModel": ("Causal Wan", "its autoregressive sampling runs the blocks without ComfyUI's per-block "
                                     "replacement, so a cache would never act"),
    "SCAILWanModel": ("Wan SCAIL", "its stream holds reference frames and pose tokens beside the video's, which the "
                                   "cache's frame grid does not know yet"),
}


def _class_names(diffusion_model: object) -> list[str]:
    """The model's class and its bases, most specific first: FSDP (Raylight's FSDP mode) wraps a model
    in a generated subclass (``FSDPWanModel``), which must still be known as the model it wraps."""
    return [cls.__name__ for cls in type(diffusion_model).__mro__]


def find_architecture(diffusion_model: object) -> Architecture | None:
    for name in _class_names(diffusion_model):
        if name in REFUSED:
            return None
        for arch in ARCHITECTURES:
            if name in arch.classes:
                return arch
    return None


def supported_names() -> list[str]:
    return [a.name for a in ARCHITECTURES]


def unsupported_reason(diffusion_model: object) -> str:
    for name in _class_names(diffusion_model):
        if name in REFUSED:
            family, why = REFUSED[name]
            return f"{family} ({name}) cannot be cached safely: {why}"
    return f"{type(diffusion_model).__name__} is not a supported diffusion transformer"
