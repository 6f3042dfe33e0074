"""The one place where netlist text is written, and where every name and number is checked.

ngspice treats a line starting with '.' as a card (``.control`` starts a block of shell-capable
commands), a comment line starting with ``*#`` as a command, a first line starting with
``*ng_script`` as a whole script, and a newline as a new statement; a malformed expression can abort
the simulator (reference/ngspice-binding.md §7). So nothing reaches a netlist as free text: names
are plain identifiers, numbers are finite floats in ngspice's range rendered by ``number``, comments
are flattened onto one line, an include is a relative path to a ``.lib`` file with a safe name, and
every finished netlist (and every piece of model text) is parsed back the way ngspice splits it
(``check_netlist``, ``check_model_text``) before it leaves this module.

Line boundaries: ngspice's file reader ends a line at '\\n' and drops '\\r'; the engine hands lines
split by Python's ``str.splitlines`` (which also splits at VT, FF, FS, GS, RS, NEL, U+2028 and
U+2029); a NUL ends a C string. Every one of those, and every other control character, is refused in
a statement and flattened to a space in a comment.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from .. import __version__
from ..devices.base import DeviceModel, SpiceSubcircuit
from ..errors import NetlistError
from ..validation import LINE_BREAKING, MIN_MAGNITUDE, read_bounded_text

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_INCLUDE = re.compile(r"(\.\./)*([A-Za-z0-9_\-]+/)*[A-Za-z0-9_\-]+\.lib")
# An element line of a model body: an element letter, then printable text on one line.
_ELEMENT_LINE = re.compile(r"[A-Za-z][A-Za-z0-9_]*( [ -~]+)?")

# ngspice reads doubles; 1e300 leaves headroom for the products and sums a model forms from them,
# and values below 1e-300 are subnormal (fewer than 12 significant digits survive). The config
# checks (validation.check_range) refuse the same small magnitudes, naming the field.
MAX_MAGNITUDE = 1e300

# What a netlist statement (any line that is not a comment) may contain: what circuitnn's writers use
# in element lines and B-source expressions. No quotes, backquotes, ';', '$' (inline comments),
# '@' or brackets, and never a control character.
_STATEMENT = re.compile(r"[A-Za-z0-9 _.,+\-*/(){}=<>?:!&|^%]*")
_ELEMENT = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
# Cards a model library legitimately holds, and those a whole netlist adds. Matched as whole first
# words, case-insensitively (ngspice matches by prefix: '.controlx' would still be '.control').
MODEL_CARDS = frozenset({".subckt", ".ends", ".param", ".params", ".model", ".func"})
NETLIST_CARDS = MODEL_CARDS | {".options", ".op", ".tran", ".print", ".include", ".end"}


def _flat(text: str) -> str:
    """``text`` with every control character, line or paragraph separator and lone surrogate as a
    space (runs collapse to one): nothing in it can start a new line in any reader of the netlist."""
    return re.sub(" {2,}", " ", LINE_BREAKING.sub(" ", text))


def name(text: str, what: str = "name") -> str:
    """``text`` if it is a safe SPICE identifier (letter, then letters, digits, underscores)."""
    if not isinstance(text, str) or not _NAME.fullmatch(text):
        raise NetlistError(f"{what} {text!r} is not allowed in a netlist: use a letter followed by "
                           "up to 63 letters, digits or underscores")
    return text


def number(value: float, what: str = "value") -> str:
    """A finite real number as netlist text, exact to 12 significant digits.

    0 or a magnitude in [1e-300, 1e300]: beyond that ngspice's doubles overflow or lose digits.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise NetlistError(f"{what} must be a number, got {value!r:.80}")
    try:
        as_float = float(value)
    except OverflowError:
        raise NetlistError(f"{what} = {_short(value)} is too large: allowed magnitudes "
                           f"{MIN_MAGNITUDE:g} to {MAX_MAGNITUDE:g}, or 0") from None
    if not math.isfinite(as_float):
        raise NetlistError(f"{what} must be finite, got {value!r}")
    if as_float != 0.0 and not MIN_MAGNITUDE <= abs(as_float) <= MAX_MAGNITUDE:
        raise NetlistError(f"{what} = {as_float!r} is out of range: allowed magnitudes "
                           f"{MIN_MAGNITUDE:g} to {MAX_MAGNITUDE:g}, or 0")
    return f"{as_float:.12g}"


def _short(value) -> str:
    text = str(value) if not isinstance(value, int) or value.bit_length() < 200 else f"an integer of {len(str(value))} digits"
    return text[:80]


def comment(text: str) -> str:
    """A comment line: every line boundary and control character in ``text`` becomes a space.

    Always ``"* "`` then the text, so the line can never read as ``*#`` (an ngspice command line).
    """
    return "* " + _flat(str(text))


def split_lines(text: str) -> list[str]:
    """The statements ngspice would see in ``text``, split at every boundary any reader honours
    (Python's ``splitlines`` is a superset of ngspice's '\\n'), leading blanks removed as ngspice
    does. Control characters left inside a line are refused by the checks, not removed here."""
    return [line.lstrip(" \t") for line in text.splitlines()]


def _check_statement(line: str, cards: frozenset[str], where: str, allow_include: bool) -> None:
    if line.startswith("*"):
        if LINE_BREAKING.search(line):
            raise NetlistError(f"{where}: control character {LINE_BREAKING.search(line).group()!r} in {line[:60]!r}")
        if line.startswith("*#"):
            raise NetlistError(f"{where}: '*#' lines are ngspice commands: {line[:60]!r}")
        return
    if not _STATEMENT.fullmatch(line):
        bad = next(ch for ch in line if not _STATEMENT.fullmatch(ch))
        raise NetlistError(f"{where}: character {bad!r} is not allowed in a statement: {line[:60]!r}")
    if line.startswith("+"):
        raise NetlistError(f"{where}: continuation lines are not written by circuitnn: {line[:60]!r}")
    _check_brackets(line, where)
    first = line.split(" ", 1)[0]
    if first.startswith("."):
        keyword = first.lower()
        if keyword not in cards:
            raise NetlistError(f"{where}: card {first!r} is not allowed here (allowed: "
                               f"{', '.join(sorted(cards))})")
        if keyword == ".include":
            path = _include_path(line)
            if not allow_include or not _INCLUDE.fullmatch(path):
                raise NetlistError(f"{where}: include {path!r} is not allowed"
                                   + ("" if allow_include else " (write the models inline)"))
        return
    if not _ELEMENT.fullmatch(first):
        raise NetlistError(f"{where}: {first[:60]!r} is neither a card nor an element name")


def _include_path(line: str) -> str:
    """The path an ``.include`` line names ('' for none): the one place such a line is parsed."""
    return line.split(" ", 1)[1].strip() if " " in line else ""


def included_paths(text: str) -> list[str]:
    """The relative paths the ``.include`` lines of ``text`` name, in order. ``text`` must have
    passed ``check_netlist`` (which refuses any path but a relative one to a ``.lib`` file)."""
    return [_include_path(line) for line in split_lines(text)[1:]
            if line.split(" ", 1)[0].lower() == ".include"]


def _check_brackets(line: str, where: str) -> None:
    """Parentheses balance, and so do braces (each closes an earlier one, none is left open):
    ngspice's expression parser reads past an unclosed one (``V = v(a``) and, in shared mode, often
    aborts the whole process."""
    depth = {"(": 0, "{": 0}
    closing = {")": "(", "}": "{"}
    for ch in line:
        if ch in depth:
            depth[ch] += 1
        elif ch in closing:
            depth[closing[ch]] -= 1
            if depth[closing[ch]] < 0:
                raise NetlistError(f"{where}: {ch!r} closes nothing in {line[:60]!r}")
    for opening, count in depth.items():
        if count:
            raise NetlistError(f"{where}: {count} {opening!r} left open in {line[:60]!r}")


def check_model_text(text: str, what: str = "model text") -> str:
    """``text`` if it holds only model-library statements: comments, elements and the cards
    ``.subckt``, ``.ends``, ``.param(s)``, ``.model``, ``.func``. Anything else (``.control``,
    ``.include``, ``*#`` commands, a character that ngspice or Python reads as a line break inside a
    line) raises NetlistError naming ``what`` and the line."""
    if not isinstance(text, str):
        raise NetlistError(f"{what} must be text, got {type(text).__name__}")
    for number_, line in enumerate(split_lines(text), start=1):
        if line:
            _check_statement(line, MODEL_CARDS, f"{what}, line {number_}", allow_include=False)
    return text


MAX_LIBRARY_BYTES = 2**24


def check_library_file(path, what: str = "include") -> str:
    """The text of the model library at ``path`` if it holds model statements only
    (``check_model_text``); NetlistError naming ``what`` and the file otherwise (unreadable, not
    UTF-8, larger than 16 MiB, or a ``.control`` block, ``*#`` command or card that is not a model
    statement). An included file reaches ngspice as the netlist does, so it is checked as strictly."""
    where = f"{what} {str(path)!r}"
    text = read_bounded_text(
        path, MAX_LIBRARY_BYTES, "utf-8",
        unreadable=lambda reason: NetlistError(f"{where} cannot be read ({reason})"),
        too_large=lambda: NetlistError(f"{where} is larger than {MAX_LIBRARY_BYTES // 2**20} MiB"),
        not_text=lambda byte: NetlistError(f"{where} is not UTF-8 text (byte {byte})"))
    return check_model_text(text, where)


def check_title(title: str, what: str = "netlist") -> str:
    """The first line of a netlist: ngspice reads it as the title, except that ``*ng_script`` makes
    the file a script; refuse that, cards, continuations and control characters."""
    line = title.lstrip(" \t")
    if LINE_BREAKING.search(title):
        raise NetlistError(f"{what}, title: control character in {title[:60]!r}")
    if line.lower().startswith("*ng_script") or line.startswith((".", "+", "*#")):
        raise NetlistError(f"{what}, title: {title[:60]!r} would not be read as a title")
    return title


def check_netlist(text: str, what: str = "netlist", allow_include: bool = True) -> str:
    """``text`` if ngspice would read it as circuitnn's writers write netlists: a title, then
    comments, element lines and the cards in ``NETLIST_CARDS``, ending with ``.end``.

    ``allow_include=False`` also refuses ``.include`` (the in-process engine runs in a private folder
    where relative includes cannot resolve). NetlistError names the line otherwise.
    """
    if not isinstance(text, str):
        raise NetlistError(f"{what} must be text, got {type(text).__name__}")
    lines = split_lines(text)
    if not lines:
        raise NetlistError(f"{what} is empty")
    check_title(text.splitlines()[0], what)
    ended = False
    for number_, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        if ended:
            raise NetlistError(f"{what}, line {number_}: text after .end: {line[:60]!r}")
        _check_statement(line, NETLIST_CARDS, f"{what}, line {number_}", allow_include)
        ended = line.split(" ", 1)[0].lower() == ".end"
    if not ended:
        raise NetlistError(f"{what} does not end with .end")
    return text


@dataclass
class Netlist:
    """Netlist text under construction. Add lines only through these methods."""

    title: str
    lines: list[str] = field(default_factory=list)

    def comment(self, text: str) -> None:
        self.lines.append(comment(text))

    def header(self, generator: str, parameters: dict, seed: int | None) -> None:
        """The provenance block every generated netlist carries."""
        self.comment(f"generated by circuitnn {__version__} ({generator})")
        self.comment(f"seed: {seed}")
        for key, value in parameters.items():
            self.comment(f"{key} = {value}")

    def element(self, instance: str, nodes: list[str], *values: str) -> None:
        """One element line. ``values`` must come from ``number``/``name`` or the device modules."""
        for node in nodes:
            if node != "0":
                name(node, "node")
        self.lines.append(" ".join([name(instance, "instance"), *nodes, *values]))

    def raw_model_text(self, text: str) -> None:
        """Subcircuit or model text from a device module, checked by ``check_model_text``: whatever a
        module writes (its provenance included), no line of it can become a command."""
        self.lines.extend(split_lines(check_model_text(text, "device model text")))

    def subcircuit(self, sub: SpiceSubcircuit) -> None:
        """A device model's subcircuit, rendered and checked by ``subcircuit_lines``."""
        self.lines.extend(subcircuit_lines(sub))

    def device(self, instance: str, nodes: list[str], model: DeviceModel, values: dict[str, float],
               with_parameters: bool = False) -> None:
        """One device instance: ``values`` are its instance inputs (stored state first). With
        ``with_parameters`` every model parameter is written on the line too, so the instance behaves
        as ``model`` says even when a library with other defaults is included."""
        sub = model.spice_subcircuit()
        allowed = {name for name, _, _ in sub.inputs}
        pairs = list(values.items())
        if with_parameters:
            pairs += list(sub.parameters)
        for key, _ in pairs:
            if key not in allowed and key not in dict(sub.parameters):
                raise NetlistError(f"{key!r} is not an instance parameter of subcircuit {sub.name!r}")
        self.element(instance, nodes, name(sub.name, "subcircuit name"),
                     *(f"{name(key, 'instance parameter')}={number(float(value), key)}" for key, value in pairs))

    def include(self, relative_path: str) -> None:
        if not isinstance(relative_path, str) or not _INCLUDE.fullmatch(relative_path):
            raise NetlistError(f"include path {relative_path!r} must be a relative path to a .lib file")
        self.lines.append(f".include {relative_path}")

    def card(self, keyword: str, *values: str) -> None:
        """A dot card from the fixed set circuitnn writes (.model, .options, .op, .tran, .print, .end)."""
        if keyword not in (".model", ".options", ".op", ".tran", ".print"):
            raise NetlistError(f"circuitnn does not write {keyword!r} cards")
        self.lines.append(" ".join([keyword, *values]))

    def text(self) -> str:
        """The netlist, after ``check_netlist`` parsed it back as ngspice would (so a value that
        carried a line break or a card into an element line fails here, naming the line)."""
        # ngspice reads the first line as the title (except '*ng_script'); it starts with a word.
        title = "circuitnn: " + _flat(str(self.title))
        return check_netlist("\n".join([title, *self.lines, ".end"]) + "\n", f"netlist {self.title!r:.60}")


# Limits of an analysis the engine will start: beyond them a run cannot finish in useful time (or at
# all: ngspice loops for ever on 'tran 1e400 1e400'). Stop times cover any pulse (≤ 1e4 s) or
# characterisation sweep the config allows; the step count, stop / min(step, max step), ~10^3 s of
# solving for the smallest circuits.
MAX_TRAN_STOP_S = 1e6
MAX_TRAN_POINTS = 1e8
# The text ``number`` writes, as a regular language: '0', fixed notation (.12g uses it for exponents
# -4 to 11), or one digit, a fraction and an exponent of magnitude at most 300. A checker of engine
# commands can so tell, without parsing, that a value is finite and within ngspice's range.
NUMBER_TEXT = r"-?(?:[0-9]{1,12}(?:\.[0-9]{1,16})?|[0-9](?:\.[0-9]{1,11})?e[+-](?:[0-9]{2}|[12][0-9]{2}|300))"
_TRAN = re.compile(rf"tran ({NUMBER_TEXT}) ({NUMBER_TEXT})(?: ({NUMBER_TEXT}) ({NUMBER_TEXT}))?")


def subcircuit_lines(sub: SpiceSubcircuit) -> list[str]:
    """The netlist lines of a device model's subcircuit: comments (flattened), the ``.subckt`` line
    with every parameter written by ``number``, the model's element lines, ``.ends``.

    Names (subcircuit, pins, parameters, inputs, internal DC sources) must be plain identifiers, and
    each element line must start with an element letter: a model can add elements, never a control
    card or a second statement."""
    lines = [comment(text) for text in sub.comments if text]
    names = [name(sub.name, "subcircuit name")] + [name(pin, "subcircuit pin") for pin in sub.pins]
    params = [f"{name(key, 'instance input')}={number(float(default), key)}" for key, _, default in sub.inputs]
    params += [f"{name(key, 'model parameter')}={number(float(value), key)}" for key, value in sub.parameters]
    for _, source, _ in sub.inputs:
        name(source, "input source")
    lines.append(" ".join([".subckt", *names, "params:", *params]))
    for line in sub.body:
        if not isinstance(line, str) or not _ELEMENT_LINE.fullmatch(line):
            raise NetlistError(f"subcircuit {sub.name!r}: {line!r} is not a single element line")
        lines.append(line)
    lines.append(f".ends {sub.name}")
    check_model_text("\n".join(lines), f"subcircuit {sub.name!r}")
    return lines


def tran_command(step_s: float, stop_s: float, max_step_s: float | None = None) -> str:
    """An interactive ``tran`` command; ``max_step_s`` caps the internal step (accuracy vs speed).

    Times in s, positive, stop ≤ ``MAX_TRAN_STOP_S`` and at most ``MAX_TRAN_POINTS`` steps."""
    parts = ["tran", number(step_s, "step_s"), number(stop_s, "stop_s")]
    if max_step_s is not None:
        parts += ["0", number(max_step_s, "max_step_s")]
    return check_analysis(" ".join(parts))


def check_analysis(command: str) -> str:
    """``command`` if it is ``op`` or a ``tran`` as ``tran_command`` writes it, within its limits."""
    if command == "op":
        return command
    match = _TRAN.fullmatch(command) if isinstance(command, str) else None
    if match is None:
        raise NetlistError(f"analysis {command!r:.80}: allowed 'op' or 'tran STEP STOP [0 MAXSTEP]' "
                           "with numbers written by circuitnn.circuits.netlist.number")
    step, stop, start, max_step = (None if g is None else float(g) for g in match.groups())
    steps = [step] + ([max_step] if max_step is not None else [])
    if not all(math.isfinite(v) for v in [stop, *steps]) or min(stop, *steps) <= 0 or start not in (None, 0.0):
        raise NetlistError(f"analysis {command!r}: times must be finite and positive (start 0)")
    if stop > MAX_TRAN_STOP_S:
        raise NetlistError(f"analysis {command!r}: stop time {stop:g} s is above the limit "
                           f"{MAX_TRAN_STOP_S:g} s")
    if stop / min(steps) > MAX_TRAN_POINTS:
        raise NetlistError(f"analysis {command!r}: {stop / min(steps):.3g} steps, above the limit "
                           f"{MAX_TRAN_POINTS:g} (a longer step or a shorter stop time)")
    return command
