"""A closed SpiceChip hands its running workers to the next chip: nothing of one chip reaches the
next (its results equal those on new workers, bit for bit), and a closed chip cannot reach them."""

import numpy as np
import pytest

from circuitnn.chip.spice_chip import SpiceChip
from circuitnn.circuits.crossbar import Crossbar
from circuitnn.circuits.default import default_spec
from circuitnn.circuits.program import PulseSpec
from circuitnn.devices.base import preset
from circuitnn.errors import SimulationError
from circuitnn.spice import pool


def _work(medium: str) -> list:
    """Pulses, verify reads and a noisy inference on a chip of ``medium``; what they returned."""
    model = preset(medium)
    states = np.random.default_rng(11).uniform(*model.state_bounds, 30)
    with SpiceChip(Crossbar(default_spec(model)), states, seed=5) as chip:
        pids = (chip._program_engine.worker_pid(), chip._array_engine.worker_pid())
        events = [chip.pulse_device(i, PulseSpec(a, 20e-6)) for i, a in ((1, 1.0), (2, -1.0), (1, 1.0))]
        reads = [chip.read_device(i) for i in (1, 2, 7)]
        inference = chip.infer(np.random.default_rng(2).integers(0, 2, (5, 9)))
        outcome = [[e.x_after for e in events], [e.energy_total_J for e in events],
                   [r.current_A for r in reads], inference.outputs.tolist(), inference.energy_total_J,
                   chip.states.tolist(), chip.clock_s]
    return outcome, pids


@pytest.mark.parametrize("before, after", [("PCM", "Cr"), ("Cr", "PCM"), ("PCM", "PCM")])
def test_a_chip_on_workers_another_chip_used_gives_what_new_workers_give(before, after):
    pool.stop_idle()
    fresh, _ = _work(after)
    pool.stop_idle()
    _, used_pids = _work(before)
    again, pids = _work(after)
    assert set(pids) == set(used_pids)   # the second chip really ran on the first one's workers
    assert again == fresh


def test_a_closed_chip_cannot_reach_its_former_workers():
    model = preset("Cr")
    chip = SpiceChip(Crossbar(default_spec(model)), np.full(30, 0.5))
    chip.close()
    chip.close()   # a second close does nothing
    with pytest.raises(RuntimeError, match="closed"):
        chip.read_device(0)
    with pytest.raises(RuntimeError, match="closed"):
        chip.infer(np.ones((1, 9)))


def test_idle_workers_are_bounded_and_dead_ones_are_not_handed_out():
    pool.stop_idle()
    chips = [SpiceChip(Crossbar(default_spec(preset("Cr"))), np.full(30, 0.5)) for _ in range(3)]
    engines = [engine for chip in chips for engine in (chip._program_engine, chip._array_engine)]
    for chip in chips:   # each loads both its circuits
        chip.read_device(0)
        chip.infer(np.ones((1, 9)))
    engines[0]._process.kill()
    engines[0]._process.wait()
    for chip in chips:
        chip.close()
    assert len(pool._idle) == pool.KEEP_IDLE and engines[0] not in pool._idle
    for engine in pool._idle:   # handed back unloaded: the next user must load its own circuit
        with pytest.raises(SimulationError, match="no circuit loaded"):
            engine.run("op", ["l2a0"])
    taken = [pool.take() for _ in range(pool.KEEP_IDLE + 1)]
    assert all(engine.alive() for engine in taken) and taken[-1] not in engines
    for engine in taken:
        engine.close()


def test_a_taken_engine_waits_as_long_as_its_new_user_asks():
    pool.stop_idle()
    first = pool.take(timeout_s=300.0)
    first._await_ready()
    pool.give_back(first)
    again = pool.take(timeout_s=5.0)
    assert again is first and again.timeout_s == 5.0 and again._connection.gettimeout() == 5.0
    again.close()
