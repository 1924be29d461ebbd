"""Texts one node hands another in a workflow (a calibration, a plan): short JSON, parsed strictly.

Workflows carry and share these texts, and a user can paste anything into them, so each is refused,
before sampling, with a message that names the input and what to connect instead.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable

from .checks import SettingsError, is_whole, shown

_PARSE_ERRORS = (ValueError, KeyError, TypeError, AttributeError, RecursionError, OverflowError)


def parse(text, name: str, source: str, limit: int, build: Callable[[dict], object]):
    """``build(data)`` of the JSON in ``text``, the output ``name`` of the node ``source``.

    ``build`` raises ValueError, KeyError or TypeError on a field it cannot use; every such error, like
    text that is not JSON, becomes one SettingsError naming ``name`` (SettingsErrors pass as they are).
    """
    if not isinstance(text, str):
        raise SettingsError(f"{name}: must be the text {source} outputs, got {type(text).__name__} {shown(text)}")
    if len(text) > limit:
        raise SettingsError(f"{name}: at most {limit} characters, got {len(text)}")
    if not text.strip():  # a text node left blank, or a file that did not load: not a request to run without it
        raise SettingsError(f"{name}: the text is empty; connect the '{name}' output of {source}, "
                            "or leave the input unconnected")
    try:
        return build(json.loads(text, parse_constant=_refuse_constant))
    except SettingsError:
        raise
    except _PARSE_ERRORS as e:
        why = {RecursionError: "nested too deeply", OverflowError: "a number too large"}.get(type(e), _cut(str(e), 160))
        raise SettingsError(f"{name}: not a {name} from {source} ({why}); connect that node's '{name}' output, "
                            "or leave the input unconnected") from None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def number(value) -> float:
    """A finite number (JSON's 1e999 reads as infinity: refused like the word Infinity)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{shown(value)} is not a finite number")
    return float(value)


def whole(value, low: int, high: int) -> int:
    if not is_whole(value, low, high):
        raise ValueError(f"{shown(value)} is not a whole number from {low} to {high}")
    return value


def note(value, field: str, limit: int) -> str:
    """A short free text of a plan or calibration (the model's name, what it was searched on): printable only,
    since the viewer shows it and the console logs it."""
    if not isinstance(value, str) or len(value) > limit:
        raise ValueError(f"its {field} {shown(value)} is not a text of at most {limit} characters")
    if not value.isprintable():
        raise ValueError(f"its {field} {shown(value)} holds characters that cannot be shown (control characters or broken "
                         "unicode)")
    return value


def short(value: float) -> float:
    """Six significant digits: a short text to share, far finer than run-to-run differences."""
    return float(f"{value:.6g}")


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number")
