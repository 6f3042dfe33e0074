"""Range checks that fail with the field's dotted path, the value and the allowed range."""

from __future__ import annotations

import math
import numbers

from .errors import ConfigError


def is_real(value) -> bool:
    """A finite real number (not a bool); an integer too large for a float is not one."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_range(path: str, value, low: float, high: float, low_inclusive: bool = False) -> None:
    """Raise ConfigError unless ``value`` is a real number in (low, high] (or [low, high])."""
    ok = is_real(value) and (low <= value if low_inclusive else low < value) and value <= high
    if not ok:
        raise ConfigError(path, value, f"{'[' if low_inclusive else '('}{low:g}, {high:g}]")


def check_int(path: str, value, low: int, high: int) -> None:
    """Raise ConfigError unless ``value`` is an integer (not a bool) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise ConfigError(path, value, f"an integer in [{low}, {high}]")


def check_choice(path: str, value, choices) -> None:
    if isinstance(value, bool) or value not in choices:
        raise ConfigError(path, value, "one of " + ", ".join(map(str, choices)))
