"""AdaCache core: the method, free of ComfyUI except comfy_bridge and session (the hooks), chart (numpy, PIL, matplotlib)."""
from .checks import SettingsError
from .codebooks import CUSTOM_PRESET, DEFAULT_PRESET, PRESETS, Codebook, parse_codebook, resolve_codebook
from .config import AdaCacheConfig, parse_probe_blocks
from .moreg_settings import MoRegConfig, parse_strides
from .trace import CallRecord, DecisionRecord, RunTrace

__all__ = [
    "AdaCacheConfig", "CallRecord", "Codebook", "CUSTOM_PRESET", "DEFAULT_PRESET", "DecisionRecord", "MoRegConfig",
    "PRESETS", "RunTrace", "SettingsError", "parse_codebook", "parse_probe_blocks", "parse_strides", "resolve_codebook",
]
