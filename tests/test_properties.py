"""Property tests: arbitrary TOML documents and API parameter objects (any text, Unicode line
boundaries, NUL, huge and non-finite numbers) either give a valid result or the project's own error
naming the dotted path, and no netlist written from them holds a statement circuitnn does not write.

Netlists are read back here independently of circuits/netlist.py: split at every line boundary any
reader honours, each line cut at a NUL (C strings end there), leading blanks dropped (ngspice's
reader), and each statement's first word checked against the vocabulary of circuitnn's writers."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import typing

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from circuitnn.circuits.characterize import CharacterizationCircuit, sine_sweep
from circuitnn.circuits.crossbar import Crossbar
from circuitnn.circuits.default import default_spec
from circuitnn.circuits.library import library_text
from circuitnn.circuits.program import ProgrammingCircuit, ProgrammingPath, PulseSpec
from circuitnn.experiments.config import Config, load_config
from circuitnn.devices import msdc, pcm
from circuitnn.devices.base import preset as medium
from circuitnn.devices.base import presets
from circuitnn.devices.msdc import MsdcParams
from circuitnn.errors import ConfigError, NetlistError

# Fixed and fast in the suite; CIRCUITNN_FUZZ_EXAMPLES=5000 runs a longer, randomised search.
_FUZZ = int(os.environ.get("CIRCUITNN_FUZZ_EXAMPLES", "0"))
SETTINGS = settings(max_examples=_FUZZ or 200, deadline=None, derandomize=not _FUZZ, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# What circuitnn's writers put at the start of a statement (element letters and cards).
ELEMENTS = set("bcersvx")
CARDS = {".subckt", ".ends", ".model", ".options", ".op", ".tran", ".print", ".include", ".end"}
LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
HOSTILE = ["\n.control\nshell touch pwned\n.endc\n", "\u2028.endc", "\x85*# shell ls", "\x00.control",
           "\r\n+ .include /etc/passwd", "\v.end", "`ls`", "; shell ls", "*ng_script"]

# -- values ---------------------------------------------------------------------------------------------
texts = st.one_of(
    st.text(alphabet=st.one_of(st.characters(), st.sampled_from(list(LINE_BREAKS + "\x00\t\x7f\x9b"))),
            max_size=40),
    st.sampled_from(HOSTILE),
    st.builds(lambda a, b: a + b, st.text(max_size=5), st.sampled_from(HOSTILE)),
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10 ** 400), max_value=10 ** 400),
    st.sampled_from([0, 0.0, -0.0, 1e-320, 1e300, 1e308, -1e308, 1e-9, 1.0, 0.5, 2 ** 64]),
)
scalars = st.one_of(texts, numbers, st.booleans())
values = st.one_of(scalars, st.lists(scalars, max_size=4),
                   st.dictionaries(st.text(max_size=6), scalars, max_size=3))


def _leaves(cls, prefix=()) -> list[tuple[tuple[str, ...], object]]:
    """(path, type) of every leaf field of a config dataclass."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            out += _leaves(hint, prefix + (f.name,))
        else:
            out.append((prefix + (f.name,), hint))
    return out


LEAVES = [path for path, _ in _leaves(Config)] + [("device", "overrides", "r_on_ohm"),
                                                    ("device", "overrides", "tau_s")]


def _plausible(path):
    """A value of the right kind for ``path``, near what the presets use (so documents often load)."""
    default = Config()
    for part in path:
        default = default.get(part, 1.0) if isinstance(default, dict) else getattr(default, part, 1.0)
    if default is None:  # an optional value (r_feedback_ohm, g_ref_S, batch_size): TOML has no null
        return st.one_of(st.floats(1e-6, 1e6), st.integers(1, 100), numbers)
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return st.sampled_from([default, default, default, default + 1, max(default - 1, 0)])
    if isinstance(default, float):
        return st.one_of(st.just(default), st.just(default), st.floats(*sorted((0.5 * default, 1.5 * default))))
    if isinstance(default, str):
        return st.one_of(st.just(default), st.just(default), st.just(default), texts)
    if isinstance(default, tuple):
        return st.one_of(st.just(list(default)), st.just(list(default)), st.lists(numbers, max_size=3))
    return st.builds(dict)  # device.overrides: a fresh table each time (documents fill it in place)


@st.composite
def documents(draw) -> dict:
    doc: dict = {}
    for path in draw(st.lists(st.sampled_from(LEAVES), max_size=6, unique=True)):
        value = draw(_plausible(path) if draw(st.integers(0, 5)) else values)
        node = doc
        for part in path[:-1]:
            node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
        node[path[-1]] = value
    if not draw(st.integers(0, 3)):
        doc[draw(st.sampled_from(["preset", "device", "circuit", draw(st.text(max_size=8))]))] = draw(values)
    return doc


def toml(doc: dict) -> str:
    """A TOML text for ``doc`` (tomllib reads but does not write)."""
    def key(k: str) -> str:
        return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else string(k)

    def string(s: str) -> str:
        out = []
        for ch in s:
            if ch in '"\\' or ord(ch) < 0x20 or 0x7f <= ord(ch) <= 0x9f:
                out.append(f"\\u{ord(ch):04x}")
            else:
                out.append(ch)
        return '"' + "".join(out) + '"'

    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, float):
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
        if isinstance(v, str):
            return string(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return "{" + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + "}"

    return "\n".join(f"{key(k)} = {value(v)}" for k, v in doc.items()) + "\n"


# -- reading netlists back as ngspice would ----------------------------------------------------------------
def statements(text: str) -> list[str]:
    lines = re.split("\r\n|[" + LINE_BREAKS + "]", text)
    return [line.split("\x00", 1)[0].lstrip(" \t") for line in lines]


def assert_only_our_statements(text: str, whole: bool = True) -> None:
    lines = statements(text)
    if whole:
        assert lines[0].startswith("circuitnn: ")
        body = [line for line in lines[1:] if line]
        assert body[-1] == ".end" and sum(line.lower() == ".end" for line in body) == 1
    else:
        body = [line for line in lines if line]
    for line in body:
        assert not any(ord(ch) < 0x20 or 0x7f <= ord(ch) <= 0x9f for ch in line), repr(line)
        if line.startswith("*"):
            assert line == "*" or line.startswith("* "), repr(line)
            continue
        first = line.split()[0].lower()
        if first.startswith("."):
            assert first in CARDS, repr(line)
        else:
            assert first[0] in ELEMENTS and re.fullmatch(r"[a-z][a-z0-9_]*", first), repr(line)
            assert not set(line) & set("`;$'\"\\@[]"), repr(line)


def _netlists_of(config: Config) -> list[str]:
    crossbar = Crossbar(config.crossbar_spec())
    device = config.device.params()
    t, v = sine_sweep(config.curves.sweep_amplitude_V, config.curves.sweep_frequency_Hz, 1, 20)
    return [
        crossbar.netlist(np.full(crossbar.n_devices, 0.5), np.zeros(crossbar.n_inputs)),
        crossbar.netlist(np.full(crossbar.n_devices, 0.5), np.zeros(crossbar.n_inputs), models="../models"),
        ProgrammingCircuit(device, config.programming).netlist(0.5, config.set_pulse()),
        CharacterizationCircuit(device).netlist(t, v),
    ]


# -- the properties ------------------------------------------------------------------------------------
_DOTTED = re.compile(r'(\(root\)|[A-Za-z_][A-Za-z0-9_]*|\["[^\n]*"\])(\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\]|\["[^\n]*"\])*')


@SETTINGS
@given(doc=documents(), medium_name=st.sampled_from([None, "W", "Cr", "C"]))
def test_any_toml_document_loads_or_names_its_dotted_path(tmp_path_factory, doc, medium_name):
    path = tmp_path_factory.mktemp("toml") / "config.toml"
    path.write_text(toml(doc), encoding="utf-8")
    try:
        config = load_config(path, medium_name)
    except ConfigError as exc:
        event("refused by the loader")
        assert exc.path == str(path) or _DOTTED.fullmatch(exc.path), exc.path
        assert "\n" not in str(exc) and "\u2028" not in str(exc)
        return
    try:
        texts_ = _netlists_of(config)
    except (ConfigError, NetlistError):
        event("loaded, refused by a writer")
        return
    event("loaded and written")
    for text in texts_:
        assert_only_our_statements(text)


@st.composite
def msdc_params(draw) -> MsdcParams:
    """The Cr medium with its texts replaced by hostile ones and now and then a number by a wild one."""
    base = {f.name: getattr(medium("Cr"), f.name) for f in dataclasses.fields(MsdcParams)}
    base["provenance"] = draw(texts)
    if not draw(st.integers(0, 3)):
        base["medium"] = draw(texts)
    for name in draw(st.lists(st.sampled_from(list(msdc.MODEL_FIELDS)), max_size=1)):
        base[name] = draw(st.one_of(numbers, texts))
    return MsdcParams(**base)


def _maybe(draw, default):
    """``default`` seven times in eight, else a wild number: most objects get built and written."""
    return default if draw(st.integers(0, 7)) else draw(numbers)


def _api_netlists(draw) -> list[tuple[str, bool]]:
    """Netlist texts (and whether each is a whole netlist) from drawn API objects."""
    kind = draw(st.sampled_from(["crossbar", "program", "characterize", "pcm", "libraries"]))
    if kind == "pcm":
        model = pcm.PcmModel(medium=draw(st.one_of(st.just("PCM"), texts)), provenance=draw(texts),
                             tau_set_s=_maybe(draw, 200e-9), t0_s=_maybe(draw, 20.0))
        circuit = ProgrammingCircuit(model, v_read_V=_maybe(draw, 0.2), name=draw(texts))
        pulse = PulseSpec(_maybe(draw, 1.0), _maybe(draw, 1e-6))
        inputs = {"nu": _maybe(draw, 0.05), "t_prog": _maybe(draw, 10.0), "k_read": _maybe(draw, 1.0)}
        return [(circuit.netlist(_maybe(draw, 0.3), pulse, inputs=inputs), True),
                (library_text([model]), False)]
    params = draw(msdc_params())
    if kind == "libraries":
        other = draw(st.sampled_from(list(presets().values())))
        other = dataclasses.replace(other, provenance=draw(texts))
        return [(library_text([params]), False), (library_text([other]), False)]
    if kind == "crossbar":
        crossbar = Crossbar(default_spec(params, name=draw(st.one_of(st.just("x1"), texts)),
                                         r_line_ohm=_maybe(draw, 1.0),
                                         weights=draw(st.sampled_from(["single", "differential", "x\n"]))))
        states = np.full(crossbar.n_devices, draw(st.floats(0, 1)))
        return [(crossbar.netlist(states, np.full(crossbar.n_inputs, draw(st.floats(-1, 1)))), True)]
    if kind == "program":
        path = ProgrammingPath(_maybe(draw, 50.0), _maybe(draw, 100.0), _maybe(draw, 100.0))
        pulse = PulseSpec(_maybe(draw, 1.0), _maybe(draw, 1e-5), _maybe(draw, 1e-7))
        return [(ProgrammingCircuit(params, path, name=draw(texts)).netlist(_maybe(draw, 0.5), pulse), True)]
    t = np.cumsum(np.abs(draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=2, max_size=6))))
    v = np.array(draw(st.lists(st.floats(-10, 10), min_size=len(t), max_size=len(t))))
    if draw(st.booleans()):
        t = np.arange(len(t)) * 1e-3
    return [(CharacterizationCircuit(params, _maybe(draw, 0.0), name=draw(texts)).netlist(t, v, _maybe(draw, 0.0)),
             True)]


@SETTINGS
@given(data=st.data())
def test_any_api_parameters_give_a_clean_netlist_or_our_error(data):
    try:
        written = _api_netlists(data.draw)
    except (ConfigError, NetlistError) as exc:
        event(f"refused: {type(exc).__name__}")
        assert "\n" not in str(exc)
        return
    event("written")
    for text, whole in written:
        assert_only_our_statements(text, whole)


@SETTINGS
@given(target=st.one_of(texts, st.sampled_from(["vin0", "v.xl1_0_0.vx0", "@vprog[pulse]"])),
       value=st.one_of(texts, st.builds(lambda x: f"dc={x!r}", numbers), st.sampled_from(["dc=0.5", "= [ 0 1 ]"])),
       vector=st.one_of(texts, st.sampled_from(["l2a0", "xdut.x", "vprog#branch", "@brefl1[i]"])),
       analysis=st.one_of(texts, st.builds(lambda a, b: f"tran {a!r} {b!r}", numbers, numbers)))
def test_engine_commands_are_refused_or_plain(target, value, vector, analysis):
    """Whatever reaches an alter, a save or an analysis is plain: no separator, quote or line break."""
    from circuitnn.circuits.netlist import check_analysis
    from circuitnn.spice.engine import alter_command, check_vectors

    plain = re.compile(r"[A-Za-z0-9_.#@\[\]=+\- ]*")
    for build in (lambda: alter_command(target, value), lambda: " ".join(check_vectors([vector])),
                  lambda: check_analysis(analysis)):
        try:
            command = build()
        except NetlistError:
            continue
        assert plain.fullmatch(command), repr(command)
        numbers_in = re.findall(r"-?[0-9][0-9.e+\-]*", command)
        assert all(abs(float(n)) <= 1e300 for n in numbers_in if re.fullmatch(r"-?[0-9.]+(e[+-][0-9]+)?", n))


# -- the reader above is not a rubber stamp ---------------------------------------------------------------
@pytest.mark.parametrize("line, smuggles", [
    ("* fine\n.control", True), ("* fine\u2028.endc", True), ("* fine\x85*# shell ls", True),
    ("* fine\r\n+ .include /etc/passwd", True), ("* fine\v.end", True), ("r1 a 0 `ls`", True),
    ("* fine\x00.control", False),  # a C string ends at the NUL: ngspice sees "* fine"
    ("* fine .control", False), ("r1 a 0 1", False),
])
def test_the_independent_reader_catches_smuggled_statements(line, smuggles):
    text = f"circuitnn: t\n{line}\nr1 a 0 1\n.end\n"
    if smuggles:
        with pytest.raises(AssertionError):
            assert_only_our_statements(text)
    else:
        assert_only_our_statements(text)


def test_toml_writer_round_trips():
    import tomllib

    doc = {"a": "x\n\u2028\x00\"", "b": [1, 2.5, float("inf")], "c": {"d e": 10 ** 30, "f": True}}
    back = tomllib.loads(toml(doc))
    assert back["a"] == doc["a"] and back["b"][:2] == [1, 2.5] and math.isinf(back["b"][2])
    assert back["c"] == doc["c"] and json.dumps(back["c"])


@SETTINGS
@given(st.integers(1, 6).flatmap(lambda m: st.lists(st.lists(st.sampled_from([0.0, 0.3, 1.0, -0.5]), min_size=m,
                                                              max_size=m), max_size=40)))
def test_the_chips_solve_order_is_a_permutation_that_groups_equal_rows(rows):
    from circuitnn.chip.spice_chip import few_changes_order

    rows = np.array(rows, dtype=float) if rows else np.zeros((0, 3))
    order = few_changes_order(rows)
    assert sorted(order.tolist()) == list(range(len(rows)))
    # Equal rows end up next to each other (the engine then solves them once).
    ordered = [tuple(r) for r in rows[order]]
    seen = set()
    for k, row in enumerate(ordered):
        assert row not in seen or ordered[k - 1] == row
        seen.add(row)


def test_the_chips_solve_order_of_every_binary_input_changes_one_input_at_a_time():
    import itertools

    from circuitnn.chip.spice_chip import few_changes_order

    cube = np.array(list(itertools.product([0.0, 1.0], repeat=9)))
    shuffled = cube[np.random.default_rng(3).permutation(len(cube))]
    steps = np.abs(np.diff(shuffled[few_changes_order(shuffled)], axis=0)).sum(axis=1)
    assert np.all(steps == 1)
