"""The engine stays right after what would leave it out of step: a real Ctrl-C in the middle of a
call, a restart whose reload fails too, a missing libngspice."""

import os
import signal
import threading

import numpy as np
import pytest

from circuitnn.circuits.crossbar import Crossbar
from circuitnn.circuits.default import default_spec
from circuitnn.devices.base import preset as medium
from circuitnn.errors import EngineCrashedError, NgspiceNotFoundError
from circuitnn.spice.engine import SpiceEngine


@pytest.fixture(scope="module")
def crossbar():
    return Crossbar(default_spec(medium("Cr")))


def _outputs(results):
    return [result.vectors["l2a0"][0] for result in results]


def _ctrl_c_after(delay_s: float) -> threading.Timer:
    """SIGINT to the main thread after ``delay_s``: what a terminal sends on Ctrl-C (a real signal,
    so a blocking recv is interrupted, not only Python code between bytecodes)."""
    main = threading.main_thread().ident
    timer = threading.Timer(delay_s, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    return timer


@pytest.mark.parametrize("delay_s", [0.0005, 0.05, 0.4])
def test_ctrl_c_during_run_many_never_leaves_wrong_answers(crossbar, delay_s):
    rng = np.random.default_rng(1)
    states = rng.uniform(0, 1, 30)
    probe = [crossbar.input_alters(x) for x in rng.uniform(-1, 1, (4, 9))]
    long = [crossbar.input_alters(x) for x in rng.uniform(-1, 1, (4000, 9))]
    with SpiceEngine(timeout_s=120) as engine:
        engine.load("interrupted", crossbar.netlist(np.full(30, 0.5), np.zeros(9)))
        engine.run("op", ["l2a0"], alters=crossbar.state_alters(states))
        expected = _outputs(engine.run_many("op", ["l2a0"], probe))
        # CPython drops a KeyboardInterrupt that lands inside a weakref callback of a garbage
        # collection ("Exception ignored in ... WeakKeyDictionary ... remove"), which a long test
        # session makes likely: the call then simply finishes, and Ctrl-C is pressed again.
        for _ in range(3):
            timer = _ctrl_c_after(delay_s)
            try:
                engine.run_many("op", ["l2a0"], long, step="a long test set")
            except KeyboardInterrupt:
                break
            finally:
                timer.join()
        else:
            pytest.fail("Ctrl-C never interrupted the call")
        # Later calls answer themselves, with the device states set before the interrupt.
        assert _outputs(engine.run_many("op", ["l2a0"], probe)) == expected
        single = engine.run("op", ["l2a0", "l1a0"], alters=probe[2]).vectors
        assert single["l2a0"][0] == expected[2] and set(single) == {"l2a0", "l1a0"}
        assert len(engine.run_many("op", ["l2a0"], long[:50])) == 50


def _break_reload(engine, tmp_path, how):
    if how == "worker hangs":
        engine.timeout_s = 1e-3  # the new worker cannot even say it is ready in time
    elif how == "library gone":
        engine.library_path = "/nonexistent/libngspice.so.0"
    else:  # the circuit itself no longer loads
        (tmp_path / "part.lib").unlink()


@pytest.mark.parametrize("how", ["worker hangs", "library gone", "circuit gone"])
def test_failed_reload_after_a_restart_names_circuit_and_step(crossbar, tmp_path, how):
    (tmp_path / "part.lib").write_text("* a resistor\n.subckt part a b\nr1 a b 1k\n.ends part\n")
    netlist = f"t\n.include {tmp_path / 'part.lib'}\nv1 a 0 dc 1\nx1 a 0 part\n.op\n.end\n"
    with SpiceEngine(timeout_s=60) as engine:
        engine.load_unvalidated("reload_fails", netlist)
        assert engine.run("op", ["v1#branch"]).vectors["v1#branch"][0] == pytest.approx(-1e-3)
        pid = engine.worker_pid()
        _break_reload(engine, tmp_path, how)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(EngineCrashedError) as info:
            engine.run("op", ["v1#branch"], step="read 3")
    assert info.value.circuit == "reload_fails" and info.value.step == "read 3 (reload)"
    assert str(info.value).startswith("circuit 'reload_fails', read 3 (reload): could not")


def test_missing_libngspice_is_one_clear_line():
    with SpiceEngine(library_path="/nonexistent/libngspice.so.0") as engine:
        with pytest.raises(NgspiceNotFoundError) as info:
            engine.load("x", "t\nr1 a 0 1\n.end\n")
    message = str(info.value)
    assert message.startswith("/nonexistent/libngspice.so.0 not found: install libngspice0 (scripts/setup.sh does)")
    assert "\n" not in message and "Traceback" not in message
