"""Range checks that fail with the field's dotted path, the value and the allowed range."""

from __future__ import annotations

import math

from .errors import ConfigError


def check_range(path: str, value, low: float, high: float, low_inclusive: bool = False) -> None:
    """Raise ConfigError unless ``value`` is a real number in (low, high] (or [low, high])."""
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and (low <= value if low_inclusive else low < value) and value <= high)
    if not ok:
        raise ConfigError(path, value, f"{'[' if low_inclusive else '('}{low:g}, {high:g}]")


def check_choice(path: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(path, value, "one of " + ", ".join(map(str, choices)))
