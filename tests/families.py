"""Tiny, randomly initialised instances of ComfyUI's own DiT classes, one per supported family.

Built the way ComfyUI builds a model from a checkpoint (supported_models config -> model_base ->
ModelPatcher), minus the weights: sizes come from the table below.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Family:
    config: str  # comfy.supported_models class
    unet: dict
    latent: tuple[int, ...]
    context: tuple[int, int]  # (tokens, width) of the text conditioning
    extra: dict = field(default_factory=dict)  # further conditioning entries
    blocks: str = "blocks"  # first block list, to count executions
    frames_per_token: int = 1  # latent frames per token (temporal patch)
    architecture: str | None = None  # the table row it must get, if not named like the family
    loaded_buffers: tuple[str, ...] = ()  # buffers that come from the checkpoint, like the weights
    # where the table names the attention gate: the block's module that first sees the stream after
    # the gated self-attention residual was added (for a hand computation of that residual)
    after_attention: str | None = None


FAMILIES = {
    "HunyuanVideo": Family("HunyuanVideo", dict(in_channels=16, out_channels=16, vec_in_dim=8, context_in_dim=16, hidden_size=64,
                                                mlp_ratio=2.0, num_heads=2, depth=2, depth_single_blocks=2, axes_dim=[8, 12, 12],
                                                theta=256, patch_size=[1, 2, 2], qkv_bias=True, guidance_embed=True, byt5=False,
                                                meanflow=False, use_cond_type_embedding=False, vision_in_dim=None),
                           (1, 16, 3, 8, 8), (5, 16), {"pooled_output": (1, 8), "guidance": 6.0}, "double_blocks"),
    # 1.5: 32-channel latents (+ image and mask concat), patch 1, no single blocks, condition-type embeddings.
    "HunyuanVideo 1.5": Family("HunyuanVideo15", dict(in_channels=65, out_channels=32, vec_in_dim=None, context_in_dim=16,
                                                      hidden_size=64, mlp_ratio=2.0, num_heads=2, depth=3, depth_single_blocks=0,
                                                      axes_dim=[8, 12, 12], theta=256, patch_size=[1, 1, 1], qkv_bias=True,
                                                      guidance_embed=False, byt5=False, meanflow=False,
                                                      use_cond_type_embedding=True, vision_in_dim=None),
                               (1, 32, 3, 4, 4), (5, 16), {"pooled_output": (1, 8)}, "double_blocks",
                               architecture="HunyuanVideo"),
    "Chroma": Family("Chroma", dict(in_channels=64, out_channels=64, context_in_dim=16, hidden_size=64, mlp_ratio=2.0, num_heads=2,
                                    depth=2, depth_single_blocks=2, axes_dim=[8, 12, 12], theta=10000, patch_size=2, qkv_bias=True,
                                    in_dim=64, out_dim=64, hidden_dim=32, n_layers=2),
                     (1, 16, 8, 8), (5, 16), {"pooled_output": (1, 8), "guidance": 0.0}, "double_blocks",
                     architecture="Chroma / Chroma Radiance"),
    "Mochi": Family("GenmoMochi", dict(patch_size=2, in_channels=12, hidden_size_x=64, hidden_size_y=32, depth=3, num_heads=2,
                                      mlp_ratio_x=192.0, mlp_ratio_y=4.0, learn_sigma=False, use_t5=True, t5_feat_dim=32,
                                      t5_token_length=8, qk_norm=True, qkv_bias=False, out_bias=True, attn_drop=0.0,
                                      patch_embed_bias=True, posenc_preserve_area=True, timestep_mlp_bias=True,
                                      attend_to_padding=False, timestep_scale=1000.0, rope_theta=10000.0),
                    (1, 12, 3, 8, 8), (8, 32), {"attention_mask": (1, 8)}),
    "LTX-Video": Family("LTXV", dict(in_channels=128, cross_attention_dim=64, attention_head_dim=32, num_attention_heads=2,
                                     caption_channels=32, num_layers=3),
                        (1, 128, 3, 4, 4), (5, 32), {"attention_mask": (1, 5)}, "transformer_blocks", after_attention="attn2"),
    "Flux": Family("Flux", dict(in_channels=16, out_channels=16, vec_in_dim=8, context_in_dim=16, hidden_size=64, mlp_ratio=2.0,
                                num_heads=2, depth=2, depth_single_blocks=2, axes_dim=[8, 12, 12], theta=10000, patch_size=2,
                                qkv_bias=True, guidance_embed=True),
                   (1, 16, 8, 8), (5, 16), {"pooled_output": (1, 8), "guidance": 3.5}, "double_blocks",
                   architecture="Flux 1 / Flux 2"),
    # Flux 2 runs on the Flux class: patch 1 on 128-channel latents, four rope axes, global modulation.
    "Flux 2": Family("Flux2", dict(in_channels=128, out_channels=128, vec_in_dim=None, context_in_dim=16, hidden_size=64,
                                   mlp_ratio=3.0, num_heads=2, depth=2, depth_single_blocks=2, axes_dim=[8, 8, 8, 8],
                                   theta=2000, patch_size=1, qkv_bias=False, guidance_embed=True, global_modulation=True,
                                   mlp_silu_act=True, ops_bias=False, default_ref_method="index", ref_index_scale=10.0),
                     (1, 128, 4, 4), (5, 16), {"pooled_output": (1, 8), "guidance": 4.0}, "double_blocks", architecture="Flux 1 / Flux 2"),
    # Chroma Radiance: Chroma's blocks on 16x16 pixel patches, then a small NeRF-style pixel head.
    "Chroma Radiance": Family("ChromaRadiance", dict(in_channels=3, out_channels=3, context_in_dim=16, hidden_size=64,
                                                     mlp_ratio=2.0, num_heads=2, depth=2, depth_single_blocks=2,
                                                     axes_dim=[8, 12, 12], theta=10000, patch_size=16, qkv_bias=True,
                                                     in_dim=64, out_dim=64, hidden_dim=32, n_layers=2,
                                                     nerf_hidden_size=16, nerf_mlp_ratio=2, nerf_depth=2, nerf_max_freqs=4,
                                                     nerf_tile_size=0, nerf_final_head_type="linear",
                                                     nerf_embedder_dtype=torch.float32),
                              (1, 3, 32, 32), (5, 16), {"pooled_output": (1, 8), "guidance": 0.0}, "double_blocks", architecture="Chroma / Chroma Radiance"),
    "Qwen-Image": Family("QwenImage", dict(patch_size=2, in_channels=64, out_channels=16, num_layers=3, attention_head_dim=32,
                                           num_attention_heads=2, joint_attention_dim=24, axes_dims_rope=(8, 12, 12)),
                         (1, 16, 8, 8), (5, 24), {}, "transformer_blocks"),
    "SD3 / SD3.5": Family("SD3", dict(in_channels=16, out_channels=16, patch_size=2, depth=2, input_size=None, adm_in_channels=8,
                                      context_embedder_config={"target": "torch.nn.Linear",
                                                               "params": {"in_features": 16, "out_features": 128}},
                                      num_patches=256, pos_embed_max_size=16, qk_norm="rms", x_block_self_attn_layers=[0]),
                          (1, 16, 8, 8), (5, 16), {"pooled_output": (1, 8)}, "joint_blocks", loaded_buffers=("pos_embed",)),
    "Hunyuan-DiT": Family("HunyuanDiT", dict(input_size=8, patch_size=2, in_channels=4, hidden_size=64, depth=4, num_heads=2,
                                             text_states_dim=16, text_states_dim_t5=24, text_len=5, text_len_t5=6),
                          (1, 4, 8, 8), (5, 16), {"attention_mask": (1, 5), "conditioning_mt5xl": (1, 6, 24),
                                                  "attention_mask_mt5xl": (1, 6)}),
    "AuraFlow": Family("AuraFlow", dict(in_channels=4, out_channels=4, patch_size=2, dim=64, n_layers=4, n_double_layers=2,
                                        n_heads=2, global_conddim=64, cond_seq_dim=16, max_seq=64),
                       (1, 4, 8, 8), (5, 16), {}, "double_layers"),
    # Hooked through their blocks' forward (ComfyUI gives them no per-block replacement).
    "Cosmos Predict2": Family("CosmosT2IPredict2", dict(max_img_h=240, max_img_w=240, max_frames=128, in_channels=16,
                                                        out_channels=16, patch_spatial=2, patch_temporal=1,
                                                        concat_padding_mask=True, model_channels=64, num_blocks=3, num_heads=2,
                                                        crossattn_emb_channels=32, pos_emb_cls="rope3d", pos_emb_learnable=True,
                                                        use_adaln_lora=True, adaln_lora_dim=16, rope_h_extrapolation_ratio=4.0,
                                                        rope_w_extrapolation_ratio=4.0),
                              (1, 16, 3, 8, 8), (5, 32)),
    # Adds a position embedding to the stream before every block; blocks pass (T, H, W, B, D).
    "Cosmos 1": Family("CosmosT2V", dict(max_img_h=240, max_img_w=240, max_frames=128, in_channels=16, out_channels=16,
                                         patch_spatial=2, patch_temporal=1, model_channels=64, block_config="FA-CA-MLP",
                                         concat_padding_mask=True, pos_emb_cls="rope3d", pos_emb_learnable=False,
                                         pos_emb_interpolation="crop", block_x_format="THWBD", affline_emb_norm=True,
                                         use_adaln_lora=True, adaln_lora_dim=16, num_blocks=3, num_heads=2,
                                         extra_per_block_abs_pos_emb=True, extra_per_block_abs_pos_emb_type="learnable",
                                         crossattn_emb_channels=32),
                       (1, 16, 3, 8, 8), (5, 32)),
    "PixArt Alpha / Sigma": Family("PixArtSigma", dict(input_size=64, patch_size=2, in_channels=4, hidden_size=64, depth=2,
                                                       num_heads=2, caption_channels=16, pe_interpolation=0.5,
                                                       model_max_length=5, micro_condition=False),
                                   (1, 4, 48, 48), (5, 16), {}, "blocks",  # its position embedding needs >= 33 latent px
                                   after_attention="cross_attn"),
    "HiDream": Family("HiDream", dict(patch_size=2, in_channels=16, out_channels=16, num_layers=2, num_single_layers=2,
                                      attention_head_dim=32, num_attention_heads=2, caption_channels=[32, 24], text_emb_dim=16,
                                      num_routed_experts=2, num_activated_experts=1, axes_dims_rope=[16, 8, 8],
                                      max_resolution=[16, 16], llama_layers=[0, 1, 1, 0]),
                      (1, 16, 8, 8), (5, 32), {"pooled_output": (1, 16), "conditioning_llama3": (1, 2, 5, 24)},
                      "double_stream_blocks"),
    "Lumina 2 / Z-Image": Family("Lumina2", dict(patch_size=2, in_channels=16, dim=64, n_layers=2, n_refiner_layers=1, n_heads=2,
                                                 n_kv_heads=2, multiple_of=16, ffn_dim_multiplier=2.0, qk_norm=True, cap_feat_dim=24,
                                                 axes_dims=[8, 12, 12], axes_lens=[300, 512, 512]),
                                 (1, 16, 8, 8), (5, 24), {}, "layers"),
    # In newer ComfyUI only (0.20.1; tests/test_architectures.py skips them on the pinned 0.3.75).
    # LTX-2 with a video latent (its blocks get an empty audio stream); test_ltx2_caches_the_audio_with_the_video
    # gives it an audio latent too.
    "LTX-2": Family("LTXAV", dict(in_channels=128, audio_in_channels=128, cross_attention_dim=64, audio_cross_attention_dim=32,
                                  attention_head_dim=32, num_attention_heads=2, audio_attention_head_dim=16,
                                  audio_num_attention_heads=2, caption_channels=32, num_layers=3,
                                  connector_attention_head_dim=8, connector_num_attention_heads=2, connector_num_layers=1),
                    (1, 128, 2, 4, 4), (5, 64), {"attention_mask": (1, 5)}, "transformer_blocks"),
    "Kandinsky 5": Family("Kandinsky5", dict(in_visual_dim=16, out_visual_dim=16, in_text_dim=24, in_text_dim2=8, time_dim=32,
                                             model_dim=64, ff_dim=128, visual_embed_dim=132, patch_size=(1, 2, 2),
                                             num_text_blocks=1, num_visual_blocks=3, axes_dims=(8, 12, 12)),
                          (1, 16, 3, 8, 8), (5, 24), {"pooled_output": (1, 8)}, "visual_transformer_blocks"),
    # 1.0: patches in space only, learned positions (dim/3 even for its sin-cos table); 1.5: patches time too, rope.
    "CogVideoX": Family("CogVideoX_T2V", dict(num_attention_heads=2, attention_head_dim=48, in_channels=16, out_channels=16,
                                              time_embed_dim=32, text_embed_dim=24, num_layers=3, sample_width=8, sample_height=8,
                                              sample_frames=9, max_text_seq_length=5),
                        (1, 16, 3, 8, 8), (5, 24), {}),
    "CogVideoX 1.5": Family("CogVideoX_T2V", dict(num_attention_heads=2, attention_head_dim=32, in_channels=16, out_channels=16,
                                                  time_embed_dim=32, text_embed_dim=24, num_layers=3, patch_size=2, patch_size_t=2,
                                                  use_rotary_positional_embeddings=True, sample_width=8, sample_height=8,
                                                  sample_frames=9, max_text_seq_length=5),
                            (1, 16, 4, 8, 8), (5, 24), {}, frames_per_token=2, architecture="CogVideoX"),
    # Music features (audio_embed, 35 per frame) injected after blocks 0 and 2 by the model's music injector.
    "WanDancer": Family("WAN22_WanDancer", dict(dim=64, ffn_dim=128, num_heads=2, num_layers=4, in_dim=36, out_dim=16,
                                                text_dim=24, audio_inject_layers=[0, 2], music_dim=16, music_heads=2,
                                                music_latent_dim=16),
                        (1, 16, 3, 8, 8), (5, 24), {"audio_embed": (1, 10, 35)}, after_attention="norm3"),
}

# Families ComfyUI runs that the pack refuses (adacache_core/architectures.py, REFUSED): built to see the refusal.
_WAN = dict(dim=64, ffn_dim=128, num_heads=2, num_layers=2, in_dim=16, out_dim=16, text_dim=24)
REFUSED_FAMILIES = {
    "Causal Wan": Family("WAN21_CausalAR_T2V", _WAN, (1, 16, 3, 8, 8), (5, 24)),
    "Wan SCAIL": Family("WAN21_SCAIL", _WAN, (1, 16, 3, 8, 8), (5, 24)),
}


def require(family: Family) -> None:
    """Skip the test where this ComfyUI cannot build the family (a model it does not have)."""
    import comfy.supported_models
    import pytest

    if not hasattr(comfy.supported_models, family.config):
        pytest.skip(f"ComfyUI {comfy_version()} has no {family.config} model (newer ComfyUI, e.g. 0.20.1, has)")


def comfy_version() -> str:
    """The version of the ComfyUI the tests run on, from its comfyui_version.py (read, not imported: a test that only
    starts a ComfyUI server, as the browser test, has not put it on sys.path)."""
    from tools.comfy_runtime import find_comfyui

    return re.search(r'__version__ = "([^"]+)"', (find_comfyui() / "comfyui_version.py").read_text()).group(1)


# Settings that newer ComfyUI's model detection adds for these families (0.3.75 knows none of them),
# with the values it gives checkpoints without those features. Filled in only where the running
# ComfyUI's model asks for them, so the same families run on the pinned and on a newer ComfyUI.
NEWER_SETTINGS = {"meanflow_sum": False, "txt_ids_dims": [], "vec_in_dim": None, "use_x0": False,
                  "use_sequential_txt_ids": False}


def _model(config_cls, unet: dict):
    while True:
        config = config_cls(unet)
        config.set_inference_dtype(torch.float32, None)
        try:
            return config.get_model({})
        except TypeError as error:
            asked = re.findall(r"'(\w+)'", str(error)) if "required positional argument" in str(error) else []
            newer = {name: NEWER_SETTINGS[name] for name in asked if name in NEWER_SETTINGS and name not in unet}
            if not newer:
                raise
            unet = unet | newer


def build(family: Family, seed: int = 0):
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models

    config_cls = getattr(comfy.supported_models, family.config)
    model = _model(config_cls, dict(config_cls.unet_config) | family.unet)
    torch.manual_seed(seed)
    for p in model.diffusion_model.parameters():  # ComfyUI creates weights empty: they come from a file
        torch.nn.init.normal_(p, std=0.05)
    for name in family.loaded_buffers:
        torch.nn.init.normal_(model.diffusion_model.get_buffer(name), std=0.05)
    device = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=device)


def conditioning(family: Family, seed: int):
    g = torch.Generator().manual_seed(seed)
    extra = {}
    for key, value in family.extra.items():
        if key.startswith("attention_mask"):
            extra[key] = torch.ones(value, dtype=torch.long)  # as the T5 encoders return it
        elif isinstance(value, tuple):
            extra[key] = torch.randn(value, generator=g)
        else:
            extra[key] = value
    return [[torch.randn(1, *family.context, generator=g), extra]]
