"""The optional PySpice bridge: a circuitnn crossbar handed to PySpice and simulated with PySpice's
ngspice-shared simulator gives the same operating point as circuitnn's own engine.

PySpice is the ``circuitnn[pyspice]`` extra. In CI (``CI=true``, where scripts/test.sh installs the
extra) a missing PySpice is a failure; locally those tests are skipped without it.
"""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from circuitnn.circuits.crossbar import Crossbar
from circuitnn.circuits.default import default_spec
from circuitnn.devices.base import preset
from circuitnn.interop import pyspice as interop

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pyspice():
    """The PySpice package; fails in CI, skips locally, when the optional extra is absent."""
    if os.environ.get("CI") != "true":
        module = pytest.importorskip("PySpice", reason=f"optional extra absent: {interop.INSTALL_HINT}")
    else:
        try:
            import PySpice as module
        except ImportError as exc:
            pytest.fail(f"PySpice must be installed in CI ({interop.INSTALL_HINT}): {exc}")
    # Before PySpice's shared module is imported: libngspice.so (from -dev) may be missing.
    interop.configure_ngspice_library()
    return module


def _case(name: str, seed: int):
    crossbar = Crossbar(default_spec(preset(name)))
    rng = np.random.default_rng(seed)
    states = rng.uniform(0, 1, crossbar.n_devices)
    inputs = rng.uniform(-1, 1, crossbar.n_inputs)  # never exactly 0: every source carries current
    return crossbar, states, crossbar.netlist(states, inputs, models="inline")


def _compared_vectors(crossbar: Crossbar) -> tuple[list[str], list[str]]:
    """Node voltages (neuron outputs, op-amp outputs, summing nodes) and source branch currents."""
    nodes = list(crossbar.neuron_nodes())
    for layer_index, layer in enumerate(crossbar.spec.layers):
        tag = f"l{layer_index + 1}"
        nodes += [f"{tag}{kind}{j}" for kind in ("u", "s") for j in range(layer.n_outputs)]
    branches = [f"{crossbar.input_source(i)}#branch" for i in range(crossbar.n_inputs)]
    return nodes, branches


def _scalar(value) -> float:
    """A float from the engine's one-point .op vectors or from operating_point's floats."""
    return float(np.asarray(value, dtype=float).reshape(-1)[0])


def _feedback_currents(crossbar: Crossbar, values) -> np.ndarray:
    """Current through each TIA feedback resistor R_f, from op-amp output to summing node."""
    currents = []
    for layer_index, layer in enumerate(crossbar.spec.layers):
        tag = f"l{layer_index + 1}"
        for j in range(layer.n_outputs):
            drop = _scalar(values[f"{tag}u{j}"]) - _scalar(values[f"{tag}s{j}"])
            currents.append(drop / layer.neuron.r_feedback_ohm)
    return np.array(currents)


def test_circuit_text_is_the_circuitnn_netlist(pyspice):
    _, _, netlist = _case("W", 3)
    circuit = interop.to_pyspice(netlist)
    assert type(circuit).__module__ == "PySpice.Spice.Netlist"
    lines = netlist.splitlines()
    expected = [f".title {lines[0]}"] + [line for line in lines[1:] if line not in (".op", ".end")]
    # PySpice ends its text with an empty line (its element list, empty here): ignored by ngspice.
    assert [line for line in str(circuit).splitlines() if line] == expected
    # The parts PySpice's own SpiceParser cannot read are carried through verbatim.
    text = str(circuit)
    assert ".subckt msdc_w p n params:" in text
    assert ".model swsel sw vt=0.5" in text
    assert "sl1_0_0 l1r0_0 l1m0_0 sel 0 swsel" in text
    assert "bactl2_0 l2a0 0 V = " in text


@pytest.mark.parametrize("name, seed", [("W", 11), ("C", 12)])
def test_operating_point_matches_circuitnn_engine(pyspice, engine, name, seed):
    crossbar, states, netlist = _case(name, seed)
    nodes, branches = _compared_vectors(crossbar)

    engine.load(f"pyspice_interop_{name}", netlist)
    ours = engine.run("op", nodes + branches).vectors
    theirs = interop.operating_point(interop.to_pyspice(netlist))

    for vector in nodes + branches:
        expected = float(ours[vector][0])
        # A 1e-15 floor only for values that are zero to within solver noise.
        assert theirs[vector] == pytest.approx(expected, rel=1e-6, abs=1e-15), vector
    np.testing.assert_allclose(_feedback_currents(crossbar, theirs), _feedback_currents(crossbar, ours),
                               rtol=1e-6, atol=1e-15)
    # A meaningful comparison: real currents flow and every stored state was read back.
    assert np.all(np.abs([float(ours[b][0]) for b in branches]) > 1e-8)
    assert np.all(np.abs(_feedback_currents(crossbar, ours)) > 1e-9)
    read_back = [theirs[site.state_node] for site in crossbar.sites]
    np.testing.assert_allclose(read_back, states, atol=1e-9)


def test_note_lines_do_not_fail_the_run(pyspice):
    # ngspice 39 prints "Note: v1: dc value used for op instead of transient time=0 value." on
    # stderr; PySpice 1.5 treats that as a failed command. operating_point reads the result anyway.
    from PySpice.Spice.Netlist import Circuit

    circuit = Circuit("note on stderr")
    circuit.raw_spice = "v1 a 0 dc 1 pulse(0 1 1n 1n 1n 1u 2u)\nr1 a 0 1k"
    values = interop.operating_point(circuit)
    assert values["a"] == pytest.approx(1.0, rel=1e-12)
    assert values["v1#branch"] == pytest.approx(-1e-3, rel=1e-9)


def test_the_private_init_folder_is_made_once_per_process(pyspice, monkeypatch):
    """libngspice reads its init files when PySpice's one instance is made: later calls return that
    instance without making (and removing) another private folder."""
    first = interop.shared_ngspice()

    def made_again():
        raise AssertionError("a second private init folder was made")

    monkeypatch.setattr(interop, "private_init_folder", made_again)
    assert interop.shared_ngspice() is first


def test_relative_includes_resolve_against_include_dir(pyspice):
    crossbar = Crossbar(default_spec(preset("Cr")))
    netlist = crossbar.netlist(np.full(crossbar.n_devices, 0.5), np.ones(9), models="../models")
    circuit = interop.to_pyspice(netlist, include_dir=ROOT / "netlists")
    assert f".include {ROOT / 'models' / 'msdc.lib'}" in str(circuit).splitlines()
    assert "../models" not in str(circuit)


def test_missing_pyspice_names_the_extra(monkeypatch):
    for module in [m for m in sys.modules if m == "PySpice" or m.startswith("PySpice.")]:
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setitem(sys.modules, "PySpice", None)  # also when it was never imported
    with pytest.raises(ImportError, match=r"circuitnn\[pyspice\]"):
        interop.to_pyspice("title\nr1 a 0 1k\n.end\n")


def test_core_never_imports_pyspice():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not any(d.lower().startswith("pyspice") for d in dependencies)
    code = ("import sys, circuitnn, circuitnn.circuits.crossbar, circuitnn.circuits.default, "
            "circuitnn.spice.engine, circuitnn.interop.pyspice; "
            "print([m for m in sys.modules if m.lower().startswith('pyspice')])")
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"
