"""The checks every setting of the pack passes: a bad value raises :class:`SettingsError`, naming the input and
what is allowed, so a node refuses it before sampling starts."""
from __future__ import annotations

import re

MAX_TEXT = 1000  # characters of a list input (codebook, probe blocks, frame strides)
WHOLE = re.compile(r"[0-9]+")


class SettingsError(ValueError):
    """A user-facing setting is invalid; the message names the input and what is allowed.

    The message is made safe to print first (:func:`printable`): it may quote what the user typed, and
    ComfyUI logs it; a character the log cannot encode would fail inside ComfyUI's own error handler.
    """

    def __init__(self, message: str):
        super().__init__(printable(message))


def printable(text: str) -> str:
    """``text`` with every character that is not printable (control characters, lone surrogates) escaped."""
    return "".join(c if c.isprintable() or c == "\n" else ascii(c)[1:-1] for c in text)


def shown(value, limit: int = 40) -> str:
    """A value for an error message: its repr, cut to a short prefix (inputs can be megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def text_input(name: str, value, example: str) -> str:
    """A list input as text, refused when it is not text or longer than :data:`MAX_TEXT`."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SettingsError(f"{name}: must be text like {example!r}, got {type(value).__name__} {shown(value)}")
    if len(value) > MAX_TEXT:
        raise SettingsError(f"{name}: at most {MAX_TEXT} characters, like {example!r}; got {len(value)}")
    return value


def is_whole(value, low: int, high: int) -> bool:
    """A whole number (an int, not a bool) from ``low`` to ``high``: the one test every count the pack reads passes."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def check_number(name: str, value, low: float, high: float) -> float:
    """``value`` as a finite float within [low, high], or a SettingsError naming the input and the range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SettingsError(f"{name}: must be a number from {low:g} to {high:g}, got {type(value).__name__} {shown(value)}")
    if not (low <= value <= high):  # NaN fails this too
        raise SettingsError(f"{name}: {shown(value)} must be a number from {low:g} to {high:g}")
    return float(value)


def check_fraction(name: str, value: float) -> None:
    check_number(name, value, 0.0, 1.0)
