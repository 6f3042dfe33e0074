"""Operation sequences: write-verify inside the ngspice worker, and Read/Pulse/SetStates/Infer/Restore
sequences, against the op-by-op path of the Chip protocol (real ngspice; the surrogate in NumPy)."""

import numpy as np
import pytest

from circuitnn.chip.sequence import Infer, Pulse, Read, Restore, SetStates, Trim
from circuitnn.chip.spice_chip import SpiceChip
from circuitnn.chip.surrogate_chip import SurrogateChip
from circuitnn.errors import ConfigError
from circuitnn.circuits.crossbar import Crossbar
from circuitnn.experiments import onchip
from circuitnn.experiments.config import load_config
from circuitnn.spice.engine import STATS
from circuitnn.training.tuning import program_to_target, tune_all

DEVICES = (0, 7, 29)


def _setup(medium):
    config = load_config(None, medium)
    crossbar = Crossbar(config.crossbar_spec())
    states = onchip.initial_states(config, crossbar.n_devices)
    task = onchip.make_task(config, crossbar)
    return config, crossbar, states, task.targets_S


def _ledger_columns(chip):
    return chip.ledger.to_arrays()


@pytest.mark.parametrize("medium, reset", [("Cr", True), ("C", False)])
def test_in_worker_write_verify_equals_op_by_op_in_ngspice(medium, reset):
    config, crossbar, states, targets = _setup(medium)
    tuning = config.tuning.__class__(**{**config.tuning.__dict__, "initial_reset": reset})
    with SpiceChip(crossbar, states, config.programming, config.timing) as slow, \
            SpiceChip(crossbar, states, config.programming, config.timing) as fast:
        runs_before = STATS.runs
        by_op = [program_to_target(slow, i, float(targets[i]), tuning) for i in DEVICES]
        op_runs = STATS.runs - runs_before
        in_worker = [fast.write_verify(i, tuning.program(i, float(targets[i]))) for i in DEVICES]
        assert STATS.runs - runs_before == 2 * op_runs   # the same solves, just not one per round trip
        for a, b in zip(by_op, in_worker):
            assert (a.set_pulses, a.reset_pulses, a.reads, a.converged) == (b.set_pulses, b.reset_pulses,
                                                                             b.reads, b.converged)
            assert a.initial_S == b.initial_S and a.final_S == b.final_S
        assert sum(t.pulses for t in by_op) > 3 * len(DEVICES)  # the loops really ran
        np.testing.assert_array_equal(slow.states, fast.states)
        slow_ledger, fast_ledger = _ledger_columns(slow), _ledger_columns(fast)
        for name in slow_ledger:
            np.testing.assert_array_equal(slow_ledger[name], fast_ledger[name], err_msg=name)
        assert slow.ledger.totals() == fast.ledger.totals()
        assert slow.clock_s == fast.clock_s


def test_tune_all_takes_the_in_worker_path_with_the_same_results():
    config, crossbar, states, targets = _setup("Cr")
    with SpiceChip(crossbar, states, config.programming, config.timing) as chip:
        slow = [program_to_target(chip, i, float(targets[i]), config.tuning) for i in range(4)]
        slow_states, slow_totals = chip.states, chip.ledger.totals()
        chip.load_states(states)
        chip.ledger.clear()
        calls = []
        original = chip.write_verify_many
        chip.write_verify_many = lambda items: calls.append([i for i, _ in items]) or original(items)
        fast = tune_all(chip, targets[:4], config.tuning)
        assert calls == [[0, 1, 2, 3]]
        assert fast == slow
        np.testing.assert_array_equal(chip.states[:4], slow_states[:4])
        assert chip.ledger.totals() == slow_totals


def test_devices_tuned_in_one_round_trip_equal_one_device_per_round_trip():
    """tune_all sends eight devices per round trip: states, ledger and clock equal tuning each
    device in its own round trip, bit for bit, and each on_device sees the chip after that device
    (what a checkpoint saves), with the devices done before a resume skipped."""
    config, crossbar, states, targets = _setup("W")
    n = 11   # a round trip of eight devices and one of three
    with SpiceChip(crossbar, states, config.programming, config.timing) as one, \
            SpiceChip(crossbar, states, config.programming, config.timing) as many:
        seen_one = []
        for i in range(n):
            one.write_verify(i, config.tuning.program(i, float(targets[i])))
            seen_one.append((one.states.copy(), len(one.ledger), one.clock_s))
        seen_many = []
        tune_all(many, targets[:n], config.tuning,
                 on_device=lambda t: seen_many.append((many.states.copy(), len(many.ledger), many.clock_s)))
        for a, b in zip(seen_one, seen_many, strict=True):
            np.testing.assert_array_equal(a[0], b[0])
            assert a[1:] == b[1:]
        for name, column in _ledger_columns(one).items():
            np.testing.assert_array_equal(column, _ledger_columns(many)[name], err_msg=name)
        # A resume: devices done are skipped, the rest tuned from where the chip is.
        many.load_states(states)
        done = {i: t for i, t in enumerate(tune_all(one, targets[:3], config.tuning))}
        calls = []
        original = many.write_verify_many
        many.write_verify_many = lambda items: calls.append([i for i, _ in items]) or original(items)
        tune_all(many, targets[:n], config.tuning, done=done)
        assert calls == [[3, 4, 5, 6, 7, 8, 9, 10]]


def test_a_device_tuned_twice_in_one_call_starts_where_its_first_tuning_left_it():
    config, crossbar, states, targets = _setup("W")
    first, second = config.tuning.program(3, float(targets[3])), config.tuning.program(3, float(targets[3]) * 1.5)
    with SpiceChip(crossbar, states, config.programming, config.timing) as one, \
            SpiceChip(crossbar, states, config.programming, config.timing) as many:
        expected = [one.write_verify(3, first), one.write_verify(3, second)]
        got = list(many.write_verify_many([(3, first), (3, second)]))
        assert got == expected and got[1].initial_S == expected[0].final_S
        np.testing.assert_array_equal(many.states, one.states)
        assert many.ledger.totals() == one.ledger.totals()


def test_surrogate_write_verify_equals_program_to_target():
    config, crossbar, states, targets = _setup("W")
    a = SurrogateChip(crossbar, states, config.programming, config.timing, seed=3)
    b = SurrogateChip(crossbar, states, config.programming, config.timing, seed=3)
    for i in DEVICES:
        ta = program_to_target(a, i, float(targets[i]), config.tuning)
        ob = b.write_verify(i, config.tuning.program(i, float(targets[i])))
        assert (ta.final_S, ta.set_pulses, ta.reset_pulses, ta.reads) == (ob.final_S, ob.set_pulses,
                                                                          ob.reset_pulses, ob.reads)
    np.testing.assert_array_equal(a.states, b.states)
    assert a.ledger.totals() == b.ledger.totals()


def _dgc_ops(inputs, device, delta, x_device):
    """A DGC-like step: pulse, read, perturb ±delta, infer the mini-batch each time, restore."""
    return [Pulse(device, 1.0, 2e-6), Read(device), Read(device + 1),
            SetStates((device,), (x_device + delta,)), Infer(inputs), Restore(),
            SetStates((device,), (x_device - delta,)), Infer(inputs), Restore(), Infer(inputs),
            Pulse(device + 1, -1.0, 1e-6, phase="reset"), Read(device + 1)]


@pytest.mark.parametrize("backend", ["spice", "surrogate"])
def test_sequence_equals_single_operations(backend):
    config, crossbar, states, _ = _setup("Cr")
    rng = np.random.default_rng(5)
    inputs = rng.integers(0, 2, (6, crossbar.n_inputs)).astype(float)
    device = 4

    def make():
        if backend == "spice":
            return SpiceChip(crossbar, states, config.programming, config.timing)
        return SurrogateChip(crossbar, states, config.programming, config.timing)

    with make() as a, make() as b:
        # The reference: the same steps through the protocol's single operations.
        pulse1 = a.pulse_device(device, Pulse(device, 1.0, 2e-6).spec)
        reads = [a.read_device(device), a.read_device(device + 1)]
        after_pulse = a.states
        expected = []
        for delta in (0.1, -0.1):
            perturbed = after_pulse.copy()
            perturbed[device] += delta
            a.load_states(perturbed)
            expected.append(a.infer(inputs))
        a.load_states(after_pulse)
        expected.append(a.infer(inputs))
        pulse2 = a.pulse_device(device + 1, Pulse(device + 1, -1.0, 1e-6).spec, phase="reset")
        reads.append(a.read_device(device + 1))

        ops = _dgc_ops(inputs, device, 0.1, pulse1.x_after)
        result = b.run_sequence(ops)
        np.testing.assert_array_equal(result.reads.conductance_S, [r.conductance_S for r in reads])
        np.testing.assert_array_equal(result.pulses.x_after, [pulse1.x_after, pulse2.x_after])
        np.testing.assert_array_equal(result.pulses.energy_total_J, [pulse1.energy_total_J, pulse2.energy_total_J])
        assert len(result.inferences) == 3
        for got, want in zip(result.inferences, expected):
            # The same operating points; ngspice's op from another starting solution agrees to its tolerance.
            np.testing.assert_allclose(got.outputs, want.outputs, rtol=0, atol=1e-6)
            assert got.energy_total_J == pytest.approx(want.energy_total_J, rel=1e-5)
        # The perturbations moved the outputs (the step measured something), the restore undid them.
        assert np.max(np.abs(result.inferences[0].outputs - result.inferences[1].outputs)) > 1e-3
        np.testing.assert_array_equal(b.states, a.states)
        assert b.ledger.totals()["operations"] == a.ledger.totals()["operations"]
        assert b.ledger.totals()["pulses"] == a.ledger.totals()["pulses"] == 2
        assert b.ledger.totals()["time_s"] == pytest.approx(a.ledger.totals()["time_s"], rel=1e-12)
        # Reads and pulses exactly as the single operations charge them, entry by entry, in order.
        def programming(chip):
            return [e for e in chip.ledger.entries if e.phase in ("read", "program", "reset")]
        assert programming(b) == programming(a) and len(programming(a)) == 5


def test_write_verify_survives_a_killed_worker_with_the_same_result():
    import os
    import signal
    config, crossbar, states, targets = _setup("Cr")
    program = config.tuning.program(3, float(targets[3]))
    with SpiceChip(crossbar, states, config.programming, config.timing) as reference, \
            SpiceChip(crossbar, states, config.programming, config.timing) as chip:
        expected = reference.write_verify(3, program)
        # The programming worker is up and holds this tuning's setup; the new one must be sent it again.
        chip.write_verify(5, config.tuning.program(5, float(targets[5])))
        engine = chip._program_engine
        restarts = engine.restarts
        os.kill(engine.worker_pid(), signal.SIGKILL)
        got = chip.write_verify(3, program)
        assert engine.restarts == restarts + 1
        assert got == expected
        assert chip.states[3] == reference.states[3]


def test_ledger_keeps_single_and_bulk_operations_in_order():
    from circuitnn.chip.ledger import Ledger, LedgerEntry

    ledger = Ledger()
    ledger.add(LedgerEntry("inference", -1, 0.0, 1e-9, 1e-6))
    ledger.add_many("read", [3, 4], [1.0, 3.0], [1.5, 3.5], [0.1, 0.3], [0, 0])
    ledger.add(LedgerEntry("program", 3, 2.0, 2.5, 0.2, 1))
    assert [(e.phase, e.device, e.pulses) for e in ledger.entries] == [
        ("inference", -1, 0), ("read", 3, 0), ("read", 4, 0), ("program", 3, 1)]
    assert ledger.totals(("read",))["energy_device_J"] == 4.0
    with pytest.raises(ValueError, match="unknown ledger phase 'write'"):
        ledger.add_many("write", [1, 2], [0, 0], [0, 0], [0, 0], [0, 0])
    with pytest.raises(ValueError, match="equally long"):
        ledger.add_many("read", [1, 2], [0], [0, 0], [0, 0], [0, 0])
    assert len(ledger) == 4


def test_an_empty_inference_in_a_sequence_gives_its_empty_result_as_op_by_op():
    config, crossbar, states, _ = _setup("Cr")
    empty = np.zeros((0, crossbar.n_inputs))
    with SpiceChip(crossbar, states, config.programming, config.timing) as chip:
        together = chip.run_sequence([Infer(empty)])
        alone = chip.run_sequence_op_by_op([Infer(empty)])
    assert len(together.inferences) == len(alone.inferences) == 1
    assert together.inferences[0].outputs.shape == alone.inferences[0].outputs.shape == (0, 1)


@pytest.mark.parametrize("backend", [SpiceChip, SurrogateChip])
def test_a_pulse_of_an_unknown_phase_is_refused_with_the_phases_allowed(backend):
    config, crossbar, states, _ = _setup("Cr")
    with backend(crossbar, states, config.programming, config.timing, seed=0) as chip:
        with pytest.raises(ConfigError, match=r"operations\[1\]\.phase.*'program' or 'reset' or 'perturb'"):
            chip.run_sequence([Read(0), Pulse(0, 1.0, 1e-6, phase="write")])
        assert len(chip.ledger) == 0   # checked before anything runs


@pytest.mark.parametrize("backend", [SpiceChip, SurrogateChip])
def test_trims_in_a_sequence_equal_the_chips_trims(backend):
    """Gate trims between inferences, as a sequence: the same outputs
    and the ledger, entry for entry and in order, of Chip.trim and Chip.infer one by one."""
    config, crossbar, states, _ = _setup("Cr")
    inputs = np.random.default_rng(3).integers(0, 2, (5, crossbar.n_inputs)).astype(float)
    offsets = np.zeros(crossbar.n_devices)
    offsets[[2, 11]] = (0.08, -0.05)
    with backend(crossbar, states, config.programming, config.timing, seed=0) as a, \
            backend(crossbar, states, config.programming, config.timing, seed=0) as b:
        expected = [a.infer(inputs)]
        a.trim(offsets, 1e-5)
        expected.append(a.infer(inputs))
        a.trim(None, 2e-5)
        expected.append(a.infer(inputs))
        result = b.run_sequence([Infer(inputs), Trim(offsets, 1e-5), Infer(inputs), Trim(None, 2e-5), Infer(inputs)])
        for got, want in zip(result.inferences, expected, strict=True):
            np.testing.assert_allclose(got.outputs, want.outputs, rtol=0, atol=1e-6)
        assert np.max(np.abs(result.inferences[1].outputs - result.inferences[0].outputs)) > 1e-3  # the trim acted
        np.testing.assert_allclose(result.inferences[2].outputs, result.inferences[0].outputs, rtol=0, atol=1e-6)
        assert [(e.phase, e.time_s) for e in b.ledger.entries] == [(e.phase, e.time_s) for e in a.ledger.entries]
        assert [e.phase for e in b.ledger.entries] == ["inference", "perturb", "inference", "perturb", "inference"]
        assert b.clock_s == a.clock_s


@pytest.mark.parametrize("op, path", [(Trim(np.zeros(3)), "operations[0].offsets"),
                                      (Trim(np.full(30, np.nan)), "operations[0].offsets"),
                                      (Trim(None, -1e-6), "operations[0].time_s")])
def test_a_bad_trim_is_refused_before_anything_runs(op, path):
    config, crossbar, states, _ = _setup("Cr")
    with SurrogateChip(crossbar, states, config.programming, config.timing, seed=0) as chip:
        with pytest.raises(ConfigError, match=path.replace("[", r"\[").replace("]", r"\]")):
            chip.run_sequence([op, Infer(np.zeros((1, crossbar.n_inputs)))])
        assert len(chip.ledger) == 0
