"""Nothing reaches ngspice that circuitnn did not write: no init file from the user's folder or home
is read (engine, batch path and CLI), and every vector name, alter, analysis and netlist is checked
in full before it is sent."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from circuitnn.circuits.crossbar import Crossbar
from circuitnn.circuits.default import default_spec
from circuitnn.devices.base import preset as medium
from circuitnn.errors import NetlistError
from circuitnn.spice.batch import run_batch
from circuitnn.spice.engine import SpiceEngine

# ngspice runs a .control block of an init file (and a whole file starting with *ng_script).
SPICEINIT = "* a user's init file\n.control\nshell touch {marker}\n.endc\n"
SCRIPT = "*ng_script\nshell touch {marker}\n"


@pytest.fixture(scope="module")
def crossbar():
    return Crossbar(default_spec(medium("Cr")))


@pytest.fixture
def hostile(tmp_path, monkeypatch):
    """A working folder and a HOME, each holding every init file ngspice looks for, each of which
    creates a marker file when read. Yields the list of markers, which must never appear."""
    work, home = tmp_path / "work", tmp_path / "home"
    # SPICE_SCRIPTS names the folder of spinit; SPICE_LIB_DIR the folder whose scripts/ holds it.
    scripts, library = tmp_path / "scripts", tmp_path / "lib" / "scripts"
    markers = []
    for folder in (work, home, scripts, library):
        folder.mkdir(parents=True)
        for file_name, template in ((".spiceinit", SPICEINIT), ("spice.rc", SPICEINIT), ("spinit", SCRIPT)):
            marker = tmp_path / f"read-{folder.parent.name}-{folder.name}-{file_name.lstrip('.')}"
            (folder / file_name).write_text(template.format(marker=marker))
            markers.append(marker)
    # The trap works: plain ngspice, started as circuitnn must not start it, reads them.
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "t.cir").write_text("t\nr1 a 0 1\nv1 a 0 dc 1\n.op\n.end\n")
    subprocess.run(["ngspice", "-b", str(tmp_path / "probe" / "t.cir")], cwd=work, capture_output=True,
                   timeout=60, env={**os.environ, "HOME": str(home)})
    subprocess.run(["ngspice", "-b", "t.cir"], cwd=tmp_path / "probe", capture_output=True, timeout=60,
                   env={**os.environ, "HOME": str(home)})
    for variable, folder in (("SPICE_SCRIPTS", scripts), ("SPICE_LIB_DIR", library.parent)):
        subprocess.run(["ngspice", "-b", "-n", "t.cir"], cwd=tmp_path / "probe", capture_output=True, timeout=60,
                       env={**os.environ, variable: str(folder)})
    assert {m.name for m in markers if m.exists()} >= {
        f"read-{tmp_path.name}-work-spiceinit", f"read-{tmp_path.name}-home-spiceinit",
        f"read-{tmp_path.name}-scripts-spinit", "read-lib-scripts-spinit"}
    for marker in markers:
        marker.unlink(missing_ok=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SPICE_USERINIT_DIR", str(home))
    # Either variable left in a user's environment would point every ngspice at a hostile spinit.
    monkeypatch.setenv("SPICE_SCRIPTS", str(scripts))
    monkeypatch.setenv("SPICE_LIB_DIR", str(library.parent))
    yield work, markers
    assert [m.name for m in markers if m.exists()] == []


def test_engine_reads_no_init_file(hostile, crossbar):
    work, markers = hostile
    with SpiceEngine(timeout_s=60) as engine:
        engine.load("init_check", crossbar.netlist(np.full(30, 0.5), np.zeros(9)))
        assert engine.run("op", ["l2a0"]).vectors["l2a0"].shape == (1,)
        # libngspice reads ./.spiceinit, else the password database's home: the worker's folder is
        # private and holds circuitnn's own, so the home one is never looked at.
        folder = Path(os.readlink(f"/proc/{engine.worker_pid()}/cwd"))
        assert folder != work and sorted(os.listdir(folder)) == [".spiceinit", "spinit"]
        assert (folder / ".spiceinit").read_text().startswith("* circuitnn")
    assert not folder.exists()  # removed with the worker
    assert [m.name for m in markers if m.exists()] == []


def test_batch_path_reads_no_init_file(hostile, crossbar):
    work, markers = hostile
    result = run_batch(crossbar.netlist(np.full(30, 0.5), np.zeros(9)), "init_check", workdir=work)
    assert "l2a0" in result.plot("operating point").variables
    assert [m.name for m in markers if m.exists()] == []


def test_cli_reads_no_init_file(hostile):
    work, markers = hostile
    done = subprocess.run([sys.executable, "-m", "circuitnn.cli", "simulate", "--medium", "Cr"], cwd=work,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert '"outputs_V"' in done.stdout
    assert [m.name for m in markers if m.exists()] == []


PYSPICE_READ = """
import numpy as np
from circuitnn.circuits.crossbar import Crossbar
from circuitnn.circuits.default import default_spec
from circuitnn.devices.base import preset
from circuitnn.interop.pyspice import operating_point, to_pyspice
netlist = Crossbar(default_spec(preset("Cr"))).netlist(np.full(30, 0.5), np.zeros(9))
print(operating_point(to_pyspice(netlist))["l2a0"])
"""


def test_pyspice_path_reads_no_init_file(hostile):
    """PySpice runs libngspice inside the caller's process and folder: its one instance is made in
    a fresh interpreter here, so the init files are really looked for when it starts."""
    pytest.importorskip("PySpice")
    work, markers = hostile
    done = subprocess.run([sys.executable, "-c", PYSPICE_READ], cwd=work, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert 0.0 < float(done.stdout.split()[-1]) < 1.0
    assert [m.name for m in markers if m.exists()] == []


def test_pyspice_path_takes_only_netlists_circuitnn_writes(tmp_path, crossbar):
    pytest.importorskip("PySpice")
    from circuitnn.interop.pyspice import check_circuit, operating_point, to_pyspice

    marker = tmp_path / "pwned"
    control = f".control\nshell touch {marker}\n.endc"
    with pytest.raises(NetlistError, match="'.control'"):
        to_pyspice(f"t\nr1 a 0 1\nv1 a 0 dc 1\n{control}\n.op\n.end\n")
    circuit = to_pyspice(crossbar.netlist(np.full(30, 0.5), np.zeros(9)))
    check_circuit(circuit)
    circuit.raw_spice += "\n" + control  # changed after to_pyspice checked it
    with pytest.raises(NetlistError, match="'.control'"):
        operating_point(circuit)
    # An included library reaches ngspice too: model statements only.
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "evil.lib").write_text(f"* models\n{control}\n")
    with pytest.raises(NetlistError, match="evil.lib.*'.control'"):
        to_pyspice("t\nr1 a 0 1\nv1 a 0 dc 1\n.include models/evil.lib\n.op\n.end\n", include_dir=tmp_path)
    assert not marker.exists()


def test_batch_path_checks_the_libraries_it_includes(tmp_path, crossbar):
    """A netlist that passes the checks may include a library: ngspice reads that file as well."""
    marker = tmp_path / "pwned"
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "evil.lib").write_text(f"* models\n.control\nshell touch {marker}\n.endc\n")
    (tmp_path / "netlists").mkdir()
    text = "t\nr1 a 0 1\nv1 a 0 dc 1\n.include ../models/evil.lib\n.op\n.end\n"
    with pytest.raises(NetlistError, match="evil.lib.*'.control'"):
        run_batch(text, "evil", workdir=tmp_path / "netlists")
    with pytest.raises(NetlistError, match="missing.lib.*cannot be read"):
        run_batch(text.replace("evil", "missing"), "missing", workdir=tmp_path / "netlists")
    assert not marker.exists()


@pytest.mark.parametrize("vector", [
    "l2a0; shell touch {marker}", "l2a0 `touch {marker}`", "l2a0\nshell touch {marker}", "l2a0\x00x",
    "l2a0\n", "l2a0\u2028", "v(l2a0)", "l2a0 l1a0", "", "@bref[i]; shell touch {marker}", "$HOME",
])
def test_vector_names_are_checked_in_full(engine, crossbar, tmp_path, vector):
    engine.load("vectors", crossbar.netlist(np.full(30, 0.5), np.zeros(9)))
    with pytest.raises(NetlistError, match="vector name"):
        engine.run("op", ["l2a0", vector.format(marker=tmp_path / "pwned")])
    assert not (tmp_path / "pwned").exists()
    assert engine.run("op", ["l2a0", "@brefl1[i]", "xl1_0_0.x"]).vectors.keys() == {"l2a0", "@brefl1[i]", "xl1_0_0.x"}


def test_vectors_given_as_one_string_are_refused(engine, crossbar):
    engine.load("vectors", crossbar.netlist(np.full(30, 0.5), np.zeros(9)))
    with pytest.raises(NetlistError, match="list of names"):
        engine.run("op", "l2a0")


@pytest.mark.parametrize("value", ["dc=1e400", "dc=1e+301", "= [ 0 1e999 ]", "dc=inf", "dc=nan", "dc=1e5x",
                                   "dc=0x10", "= [ ]", "dc=1 2"])
def test_alter_values_must_be_numbers_ngspice_can_hold(engine, crossbar, value):
    engine.load("alters", crossbar.netlist(np.full(30, 0.5), np.zeros(9)))
    with pytest.raises(NetlistError, match="alter value"):
        engine.run("op", ["l2a0"], alters={"vin0": value})


def test_absurd_transient_is_refused_at_once(engine):
    from circuitnn.circuits.program import ProgrammingCircuit, PulseSpec

    circuit = ProgrammingCircuit(medium("Cr"))
    engine.load("tran_limits", circuit.netlist(0.5, PulseSpec(1.0, 1e-5)))
    for analysis in ("tran 1e400 1e400", "tran 1e-15 1", "tran 1 1e7"):
        with pytest.raises(NetlistError):
            engine.run(analysis, ["time"])
    assert engine.run(circuit.analysis(PulseSpec(1.0, 1e-5)), ["time"]).vectors["time"][-1] > 1e-5


@pytest.mark.parametrize("netlist", [
    "t\nr1 a 0 1\nv1 a 0 dc 1\n.control\nshell touch {marker}\n.endc\n.op\n.end\n",
    "t\nr1 a 0 1\nv1 a 0 dc 1\n*# shell touch {marker}\n.op\n.end\n",
    "*ng_script\nshell touch {marker}\n.end\n",
    "t\nr1 a 0 1\nv1 a 0 dc 1\n.op\n.end\n.control\nshell touch {marker}\n.endc\n",
])
def test_load_takes_only_netlists_circuitnn_writes(engine, tmp_path, netlist):
    text = netlist.format(marker=tmp_path / "pwned")
    with pytest.raises(NetlistError):
        engine.load("hostile", text)
    with pytest.raises(NetlistError):
        run_batch(text, "hostile", workdir=tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_engine_refuses_includes_it_could_not_resolve(engine):
    with pytest.raises(NetlistError, match="inline"):
        engine.load("include", "t\nr1 a 0 1\nv1 a 0 dc 1\n.include ../models/msdc.lib\n.op\n.end\n")


def test_unvalidated_load_is_really_raw(engine, tmp_path):
    """The expert entry point does what its name says: the check above is what stands in the way."""
    marker = tmp_path / "ran"
    engine.load_unvalidated("raw", f"t\nr1 a 0 1\nv1 a 0 dc 1\n.control\nshell touch {marker}\n.endc\n.end\n")
    assert marker.exists()
    assert any("ngspice" in line.lower() or line for line in engine.command_unvalidated("version"))


def test_trace_file_name_cannot_run_a_command_through_a_fitted_model(tmp_path, monkeypatch):
    """The reported chain: a trace whose file name holds a .control block, fitted, then simulated."""
    from circuitnn.circuits.characterize import simulate_trace, sine_sweep
    from circuitnn.devices import msdc
    from circuitnn.devices.fit import fit_msdc, load_trace_csv

    marker = tmp_path / "pwned"
    monkeypatch.setenv("CIRCUITNN_TEST_MARKER", str(marker))  # ngspice's shell expands it
    t, v = sine_sweep(1.0, 100.0, 1, 60)
    _, _, i = msdc.simulate_waveform(medium("Cr"), 0.2, t, v)
    path = tmp_path / "trace\n.control\nshell touch $CIRCUITNN_TEST_MARKER\n.endc\n* .csv"
    path.write_text("time_s,voltage_V,current_A\n" + "".join(f"{a:.17g},{b:.17g},{c:.17g}\n" for a, b, c in zip(t, v, i)))
    result = fit_msdc(*load_trace_csv(path), medium("Cr"), source=str(path), max_evaluations=3)
    assert ".control" in result.params.provenance and "\n" in result.params.provenance
    with SpiceEngine(timeout_s=60) as engine:
        trace = simulate_trace(result.params, t, v, engine)
    assert trace.x.shape == t.shape
    assert not marker.exists()
