"""Range checks that fail with the field's dotted path, the value and the allowed range; and the
bounded read of a file a user names (``read_bounded_text``)."""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable

from .errors import ConfigError

# The smallest nonzero magnitude a value may have: below it a float is subnormal or nearly so
# (1e-320 keeps no significant digit), so a product or a reciprocal of it is 0 or inf, and ngspice
# cannot hold it (circuits/netlist.py writes no magnitude below it). A value this small is a typo or
# an attack, never a quantity circuitnn models; refusing it here, where the value is named, beats a
# division by zero or a netlist error deep inside a run.
MIN_MAGNITUDE = 1e-300


def is_real(value) -> bool:
    """A finite real number (not a bool); an integer too large for a float is not one."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_range(path: str, value, low: float, high: float, low_inclusive: bool = False) -> None:
    """Raise ConfigError unless ``value`` is a real number in (low, high] (or [low, high]), and 0
    or of magnitude at least ``MIN_MAGNITUDE``."""
    ok = is_real(value) and (low <= value if low_inclusive else low < value) and value <= high
    allowed = f"{'[' if low_inclusive else '('}{low:g}, {high:g}]"
    if not ok:
        raise ConfigError(path, value, allowed)
    if value != 0 and abs(value) < MIN_MAGNITUDE:
        raise ConfigError(path, value, f"{allowed}, and 0 or a magnitude of at least {MIN_MAGNITUDE:g}")


def check_int(path: str, value, low: int, high: int) -> None:
    """Raise ConfigError unless ``value`` is an integer (not a bool) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise ConfigError(path, value, f"an integer in [{low}, {high}]")


def check_choice(path: str, value, choices) -> None:
    """Raise ConfigError unless ``value`` is one of ``choices`` (a list, or a dict's keys); a value
    that cannot even be compared so (a list or table from a TOML file) fails the same way."""
    try:
        ok = not isinstance(value, bool) and value in choices
    except TypeError:  # unhashable (a list, a dict) against a dict's keys
        ok = False
    if not ok:
        raise ConfigError(path, value, "one of " + ", ".join(map(str, choices)))


# Control characters (C0 incl. TAB/LF/VT/FF/CR, DEL, C1 incl. NEL), line and paragraph separators and
# lone surrogates: whatever any reader (a terminal, Markdown, a netlist, ngspice) may take for a line break.
LINE_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def check_text(path: str, value, max_chars: int) -> None:
    """Raise ConfigError unless ``value`` is text of 1 to ``max_chars`` characters on one line (no
    control character or line separator), not blank: a name a user gives that is stored and shown."""
    if (not isinstance(value, str) or not value.strip() or len(value) > max_chars
            or LINE_BREAKING.search(value)):
        raise ConfigError(path, value, f"text of 1 to {max_chars} characters on one line (no control characters)")


def read_bounded_text(path, max_bytes: int, encoding: str, *, unreadable: Callable[[str], Exception],
                      too_large: Callable[[], Exception], not_text: Callable[[int], Exception]) -> str:
    """The text of the file at ``path``, of which at most ``max_bytes`` + 1 bytes are read (a path to
    /dev/zero or a huge file must not fill the memory). Each failure raises the exception the caller
    builds, so each caller keeps its own one-line message naming the file: ``unreadable(strerror)``,
    ``too_large()`` (more than ``max_bytes``), ``not_text(offset of the first bad byte)``."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise unreadable(exc.strerror) from None
    if len(data) > max_bytes:
        raise too_large()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise not_text(exc.start) from None
