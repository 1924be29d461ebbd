"""Custom socket types the pack's nodes pass between each other."""
from comfy_api.latest import io

MoRegSettings = io.Custom("ADACACHE_MOREG")
