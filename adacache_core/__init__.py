"""AdaCache core: the method, free of ComfyUI except comfy_bridge (the hooks) and chart (numpy, PIL, matplotlib)."""
from .config import (CUSTOM_PRESET, DEFAULT_PRESET, PRESETS, AdaCacheConfig, Codebook, MoRegConfig, SettingsError,
                     parse_codebook, parse_probe_blocks, parse_strides, resolve_codebook)
from .trace import CallRecord, DecisionRecord, RunTrace

__all__ = [
    "AdaCacheConfig", "CallRecord", "Codebook", "CUSTOM_PRESET", "DEFAULT_PRESET", "DecisionRecord", "MoRegConfig",
    "PRESETS", "RunTrace", "SettingsError", "parse_codebook", "parse_probe_blocks", "parse_strides", "resolve_codebook",
]
