"""The batch path (``ngspice -b -r``) against the in-process engine, the raw-file reader on binary and
ASCII files, and failures: real ngspice throughout."""

import re
import shutil

import numpy as np
import pytest

from circuitnn.circuits.crossbar import Crossbar
from circuitnn.circuits.default import default_spec
from circuitnn.circuits.program import ProgrammingCircuit, PulseSpec
from circuitnn.circuits.netlist import subcircuit_lines
from circuitnn.devices.media import MEDIA
from circuitnn.errors import CircuitRejectedError, ConvergenceError, SimulationError
from circuitnn.spice.batch import NgspiceNotFoundError, ngspice_version, run_batch, run_batch_unvalidated
from circuitnn.spice.rawfile import read_raw

# Same ngspice (39.3) on both paths, so agreement should be near round-off; 1e-6 is the contract.
RTOL = 1e-6
ATOL_V = 1e-12  # values near 0 V compare absolutely
# ASCII raw files print "%.15e" (16 significant digits): rounding is below 5e-16 relative.
ASCII_RTOL = 1e-15

RC_NETLIST = """rc low-pass: op, ac and tran in one file
v1 in 0 dc 1 ac 1
r1 in out 1k
c1 out 0 1u
.op
.ac dec 5 10 10k
.tran 10u 1m
.end
"""


def _random_case(crossbar, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1.0, crossbar.n_devices), rng.uniform(-1.0, 1.0, crossbar.n_inputs)


def _op_batch(crossbar, states, inputs, workdir, name):
    result = run_batch(crossbar.netlist(states, inputs), name, workdir=workdir)
    return result.plot("operating point").variables


@pytest.mark.parametrize("medium", sorted(MEDIA))
def test_crossbar_op_agrees_with_the_in_process_engine(medium, engine, tmp_path):
    crossbar = Crossbar(default_spec(MEDIA[medium]))
    nodes = crossbar.neuron_nodes()
    name = f"batch_op_{medium.lower()}"
    states, inputs = _random_case(crossbar, seed=len(medium))
    text = crossbar.netlist(states, inputs)
    batch = _op_batch(crossbar, states, inputs, tmp_path, name)

    engine.load(name, text)
    loaded = engine.run("op", nodes).vectors
    for node in nodes:
        np.testing.assert_allclose(batch[node], loaded[node], rtol=RTOL, atol=ATOL_V, err_msg=node)
        assert batch[node] is batch[f"v({node})"]  # alias and raw-file name are the same vector

    # How the engine is used: load once, then alter states and inputs before each read.
    new_states, new_inputs = _random_case(crossbar, seed=100 + len(medium))
    engine.load(name, crossbar.netlist(np.full(crossbar.n_devices, 0.5), np.zeros(crossbar.n_inputs)))
    altered = engine.run("op", nodes, alters={**crossbar.state_alters(new_states),
                                              **crossbar.input_alters(new_inputs)}).vectors
    rendered = _op_batch(crossbar, new_states, new_inputs, tmp_path, name)
    for node in nodes:
        np.testing.assert_allclose(rendered[node], altered[node], rtol=RTOL, atol=ATOL_V, err_msg=node)
    # The states really moved the outputs, so the comparison above is not trivially true.
    assert not np.allclose([rendered[n][0] for n in nodes], [batch[n][0] for n in nodes], rtol=1e-3)


@pytest.mark.parametrize("medium", sorted(MEDIA))
def test_programming_pulse_final_state_agrees(medium, engine, tmp_path):
    circuit = ProgrammingCircuit(MEDIA[medium])
    pulse = PulseSpec(amplitude_V=1.0, width_s=10e-6)
    text = circuit.netlist(0.3, pulse)
    name = f"batch_program_{medium.lower()}"
    batch = run_batch(text, name, workdir=tmp_path).plot("transient").variables

    engine.load(name, text)
    loaded = engine.run(circuit.analysis(pulse), ["time", "xdut.x", "vprog#branch"]).vectors
    np.testing.assert_allclose(batch["time"][-1], loaded["time"][-1], rtol=1e-12)
    np.testing.assert_allclose(batch["xdut.x"][-1], loaded["xdut.x"][-1], rtol=RTOL)
    assert batch["xdut.x"][-1] > 0.3  # a SET pulse raised the state
    assert set(batch) >= {"time", "v(xdut.x)", "i(vprog)", "vprog#branch"}


def test_relative_include_resolves_in_the_workdir(tmp_path):
    device = MEDIA["Cr"]
    crossbar = Crossbar(default_spec(device))
    states, inputs = _random_case(crossbar, seed=7)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "msdc.lib").write_text("\n".join(subcircuit_lines(device.spice_subcircuit())) + "\n")
    included = run_batch(crossbar.netlist(states, inputs, models="lib"), "included", workdir=tmp_path)
    inline = run_batch(crossbar.netlist(states, inputs), "inline", workdir=tmp_path)
    assert ".include lib/msdc.lib" in included.cir_path.read_text()
    for node in crossbar.output_nodes():
        np.testing.assert_array_equal(included.plots[0].variables[node], inline.plots[0].variables[node])


def test_without_workdir_files_go_to_a_kept_temporary_folder():
    result = run_batch_unvalidated(RC_NETLIST, "rc temp")
    try:
        assert result.cir_path.name == "rc_temp.cir"
        assert result.cir_path.exists() and result.raw_path.exists() and result.log_path.exists()
        assert "Circuit: rc low-pass" in result.log_path.read_text()
        assert result.wall_time_s > 0
    finally:
        shutil.rmtree(result.cir_path.parent)


def test_multi_plot_complex_file_matches_the_analytic_rc_filter(tmp_path):
    result = run_batch_unvalidated(RC_NETLIST, "rc", workdir=tmp_path)
    assert sorted(p.plotname for p in result.plots) == ["AC Analysis", "Operating Point",
                                                         "Transient Analysis"]
    assert result.plot("operating point").variables["out"][0] == pytest.approx(1.0, rel=1e-9)
    ac = result.plot("ac").variables
    assert ac["frequency"].dtype == np.float64 and ac["out"].dtype == np.complex128
    expected = 1.0 / (1.0 + 2j * np.pi * ac["frequency"] * 1e3 * 1e-6)
    np.testing.assert_allclose(ac["out"], expected, rtol=1e-9)
    np.testing.assert_allclose(ac["v1#branch"], -(1.0 - expected) / 1e3, rtol=1e-9)


def _ascii_and_binary(monkeypatch, tmp_path, text, name):
    binary = run_batch_unvalidated(text, name, workdir=tmp_path / "binary")
    monkeypatch.setenv("SPICE_ASCIIRAWFILE", "1")
    ascii_ = run_batch_unvalidated(text, name, workdir=tmp_path / "ascii")
    assert b"\nBinary:\n" in binary.raw_path.read_bytes()
    assert b"\nValues:\n" in ascii_.raw_path.read_bytes()
    return binary.plots, ascii_.plots


@pytest.mark.parametrize("case", ["crossbar_op", "program_tran", "rc_op_ac_tran"])
def test_ascii_and_binary_raw_files_hold_the_same_values(case, monkeypatch, tmp_path):
    (tmp_path / "binary").mkdir()
    (tmp_path / "ascii").mkdir()
    if case == "crossbar_op":
        crossbar = Crossbar(default_spec(MEDIA["W"]))
        text = crossbar.netlist(*_random_case(crossbar, seed=3))
    elif case == "program_tran":
        text = ProgrammingCircuit(MEDIA["C"]).netlist(0.6, PulseSpec(-1.0, 5e-6))
    else:
        text = RC_NETLIST
    binary, ascii_ = _ascii_and_binary(monkeypatch, tmp_path, text, case)
    assert [p.plotname for p in binary] == [p.plotname for p in ascii_]
    for b, a in zip(binary, ascii_):
        assert list(b.variables) == list(a.variables)
        for key in b.variables:
            assert b.variables[key].dtype == a.variables[key].dtype
            np.testing.assert_allclose(a.variables[key], b.variables[key], rtol=ASCII_RTOL, atol=0,
                                       err_msg=f"{b.plotname}: {key}")


def test_unknown_subcircuit_is_rejected_naming_the_circuit(tmp_path):
    text = "bad subckt\nx1 a 0 nosuch\nv1 a 0 dc 1\n.op\n.end\n"
    with pytest.raises(CircuitRejectedError, match=r"circuit 'no_such_subckt', batch") as info:
        run_batch(text, "no_such_subckt", workdir=tmp_path)
    assert info.value.step == "batch" and "unknown subckt" in info.value.output
    assert "unknown subckt" in (tmp_path / "no_such_subckt.log").read_text()


def test_parallel_voltage_sources_do_not_converge(tmp_path):
    text = "parallel sources\nv1 a 0 dc 1\nv2 a 0 dc 2\nr1 a 0 1k\n.op\n.end\n"
    with pytest.raises(ConvergenceError, match=r"circuit 'shorted_sources', batch") as info:
        run_batch(text, "shorted_sources", workdir=tmp_path)
    assert "timestep too small" in info.value.output.lower()


def test_a_run_past_the_timeout_is_stopped(tmp_path):
    endless = RC_NETLIST.replace(".op\n.ac dec 5 10 10k\n.tran 10u 1m", ".tran 1n 100")
    with pytest.raises(SimulationError, match=r"circuit 'endless', batch: ngspice gave no result within"):
        run_batch_unvalidated(endless, "endless", workdir=tmp_path, timeout_s=0.5)


def test_a_stale_raw_file_is_never_read_as_the_result(tmp_path):
    run_batch_unvalidated(RC_NETLIST, "stale", workdir=tmp_path)
    with pytest.raises(SimulationError, match="wrote no raw file"):
        run_batch("no analysis\nr1 a 0 1k\nv1 a 0 dc 1\n.end\n", "stale", workdir=tmp_path)


def test_missing_ngspice_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NgspiceNotFoundError, match=r"apt-get install ngspice libngspice0"):
        run_batch_unvalidated(RC_NETLIST, "rc", workdir=tmp_path)
    with pytest.raises(FileNotFoundError, match="ngspice"):
        ngspice_version()


def test_ngspice_version_is_read_from_its_banner():
    assert re.fullmatch(r"\d+[0-9A-Za-z.+-]*", ngspice_version())


# -- malformed raw files ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def raw_files(tmp_path_factory):
    """A valid binary and a valid ASCII raw file of the RC filter (op, ac, tran)."""
    folder = tmp_path_factory.mktemp("raw")
    binary = run_batch_unvalidated(RC_NETLIST, "rc_binary", workdir=folder).raw_path.read_bytes()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPICE_ASCIIRAWFILE", "1")
        ascii_ = run_batch_unvalidated(RC_NETLIST, "rc_ascii", workdir=folder).raw_path.read_bytes()
    return binary, ascii_


def _first_value_line(ascii_: bytes) -> bytes:
    return ascii_[ascii_.index(b"Values:\n") + 8:].split(b"\n")[1]


MALFORMED = {
    "empty": (lambda b, a: b"", "the file is empty"),
    "no point count": (lambda b, a: re.sub(rb"No. Points: *\d+ *\n", b"", b, count=1),
                       "no 'No. Points:' line"),
    "bad point count": (lambda b, a: re.sub(rb"No. Points: *\d+", b"No. Points: many", b, count=1),
                        "'No. Points: many' is not a count"),
    "garbage header line": (lambda b, a: b.replace(b"Flags: complex\n", b"Flags: complex\nhello\n", 1),
                            "unexpected header line 'hello'"),
    "short variable list": (lambda b, a: b.replace(b"\t2\tv(out)\tvoltage\n", b"", 1),
                            "variable 2 of 4 should read"),
    "no variables list": (lambda b, a: b.split(b"Variables:\n")[0] + b"Variables:\n",
                          "found the end of the file"),
    "truncated binary": (lambda b, a: b[:-8], "binary data is truncated"),
    "missing ascii value": (lambda b, a: a.replace(_first_value_line(a) + b"\n", b"", 1),
                            "'Values:' holds"),
    "non-numeric ascii value": (lambda b, a: a.replace(_first_value_line(a), b"\tvolts,0", 1),
                                "non-numeric text"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_raw_files_raise_value_error_naming_the_file(case, raw_files, tmp_path):
    make, what = MALFORMED[case]
    path = tmp_path / f"{case.replace(' ', '_')}.raw"
    path.write_bytes(make(*raw_files))
    assert path.read_bytes() not in raw_files  # the edit really happened
    with pytest.raises(ValueError, match=re.escape(what)) as info:
        read_raw(path)
    assert str(path) in str(info.value)


def test_valid_raw_files_read_back(raw_files, tmp_path):
    for index, data in enumerate(raw_files):
        path = tmp_path / f"rc{index}.raw"
        path.write_bytes(data)
        assert [p.plotname for p in read_raw(path)] == ["AC Analysis", "Operating Point",
                                                        "Transient Analysis"]
