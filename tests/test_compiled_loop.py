"""The write-verify loop in C against the same loop in Python, both inside the real ngspice worker:
the same operations, states, energies and ledger, bit for bit; failures reported as Python reports
them; and how the library is built (or not)."""

import dataclasses
import logging
import os

import numpy as np
import pytest

from circuitnn import native
from circuitnn.chip.spice_chip import SpiceChip
from circuitnn.circuits.crossbar import Crossbar
from circuitnn.errors import SimulationError
from circuitnn.experiments import onchip
from circuitnn.experiments.config import load_config
from circuitnn.spice import compiled
from circuitnn.spice.engine import STATS

DEVICES = (0, 5, 11, 29)


def _task(medium):
    config = load_config(None, medium)
    crossbar = Crossbar(config.crossbar_spec())
    return config, crossbar, onchip.initial_states(config, crossbar.n_devices), onchip.make_task(config, crossbar).targets_S


def _tune(chip, config, targets, **changes):
    tuning = dataclasses.replace(config.tuning, **changes)
    return list(chip.write_verify_many([(i, tuning.program(i, float(targets[i]))) for i in DEVICES]))


@pytest.mark.parametrize("medium, changes", [
    ("Cr", {"initial_reset": True}),
    ("C", {"initial_reset": False}),
    ("W", {"initial_reset": False, "tolerance": 0.01}),
    ("VTEAM", {"initial_reset": True}),
    ("AgChalc", {"initial_reset": False}),
])
def test_the_c_loop_gives_what_the_python_loop_gives_bit_for_bit(medium, changes):
    config, crossbar, states, targets = _task(medium)
    with SpiceChip(crossbar, states, config.programming, config.timing) as in_c, \
            SpiceChip(crossbar, states, config.programming, config.timing) as in_python:
        in_c.read_device(0)
        in_python.read_device(0)
        # A missing C compiler is a failure here: scripts/setup.sh installs one.
        assert in_c._program_engine.use_compiled_loop(True) is True
        assert in_python._program_engine.use_compiled_loop(False) is False
        before = STATS.compiled_devices
        a = _tune(in_c, config, targets, **changes)
        assert STATS.compiled_devices - before == len(DEVICES)
        b = _tune(in_python, config, targets, **changes)
        assert STATS.compiled_devices - before == len(DEVICES)
        assert a == b
        assert sum(o.set_pulses + o.reset_pulses for o in a) > 2 * len(DEVICES)  # the loops really ran
        np.testing.assert_array_equal(in_c.states, in_python.states)
        ledger_c, ledger_python = in_c.ledger.to_arrays(), in_python.ledger.to_arrays()
        for name in ledger_c:
            np.testing.assert_array_equal(ledger_c[name], ledger_python[name], err_msg=name)
        assert in_c.clock_s == in_python.clock_s
        # Energies come from the waveforms (C sums them as pulse_outcome does): not all alike.
        assert len(np.unique(ledger_c["energy_total_J"])) > len(DEVICES)


def test_a_failure_inside_the_c_loop_is_reported_as_the_python_loop_reports_it():
    config, crossbar, states, targets = _task("Cr")
    messages = []
    for use_c in (True, False):
        with SpiceChip(crossbar, states, config.programming, config.timing) as chip:
            chip.read_device(0)
            engine = chip._program_engine
            assert engine.use_compiled_loop(use_c) is use_c
            engine.command_unvalidated("remcirc")  # the circuit gone: every operation fails
            with pytest.raises(SimulationError) as failure:
                _tune(chip, config, targets)
            messages.append(str(failure.value).splitlines()[0])
            assert len(chip.ledger) == 1  # nothing of the failed sequence charged
    assert messages[0] == messages[1]
    assert "write-verify of device 0, operation 1: Error: no circuit loaded" in messages[0]


def test_without_a_compiler_the_build_says_so_and_the_python_loop_runs(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CIRCUITNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    with caplog.at_level(logging.WARNING):
        assert compiled.build() is None
    assert "using the Python loop" in caplog.text
    assert not list((tmp_path / "cache").glob("*.so"))


def test_the_library_is_built_once_per_source_into_a_private_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CIRCUITNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CC", raising=False)
    built = compiled.build()
    assert built is not None and built.parent == tmp_path / "cache"
    assert oct(os.stat(built.parent).st_mode & 0o777) == oct(0o700)
    stamp = built.stat().st_mtime_ns
    assert compiled.build() == built and built.stat().st_mtime_ns == stamp  # not built again
    # Builds of other versions of the source: the oldest go when a new one is built.
    for k in range(native.BUILDS_KEPT + 2):
        (built.parent / f"write_verify_loop-old{k}.so").write_bytes(b"")
        os.utime(built.parent / f"write_verify_loop-old{k}.so", (k, k))
    built.unlink()
    assert compiled.build() == built
    kept = sorted(f.name for f in built.parent.glob("write_verify_loop-*.so"))
    assert len(kept) == native.BUILDS_KEPT and built.name in kept and "write_verify_loop-old0.so" not in kept
    # A folder others can write is not used: they could put their own library there.
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("CIRCUITNN_CACHE", str(shared))
    assert native.cache_folder() != shared
