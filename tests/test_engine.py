"""The supervised ngspice engine: crashes, hangs and a dead library restart the worker, the circuit
and its device states come back, and failures raise errors naming the circuit and the step."""

import os
import signal
import time

import numpy as np
import pytest

from circuitnn.circuits.crossbar import Crossbar
from circuitnn.circuits.default import default_spec
from circuitnn.devices.base import preset
from circuitnn.errors import CircuitRejectedError, ConvergenceError, NetlistError, SimulationError
from circuitnn.spice.engine import STATS, SpiceEngine, alter_command


@pytest.fixture
def crossbar():
    return Crossbar(default_spec(preset("Cr")))


def _read(engine, crossbar):
    return engine.run("op", crossbar.neuron_nodes()).vectors


def _loaded_engine(crossbar, timeout_s=60):
    engine = SpiceEngine(timeout_s=timeout_s)
    rng = np.random.default_rng(5)
    engine.load("robust", crossbar.netlist(np.full(30, 0.5), np.zeros(9)))
    # Persistent alters: after a restart these must come back.
    states, inputs = rng.uniform(0, 1, 30), rng.integers(0, 2, 9).astype(float)
    before = engine.run("op", crossbar.neuron_nodes(),
                        alters={**crossbar.state_alters(states), **crossbar.input_alters(inputs)}).vectors
    return engine, before


def _same(a, b):
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-12)


def test_killed_worker_is_restarted_with_states_reapplied(crossbar, caplog):
    engine, before = _loaded_engine(crossbar)
    with engine:
        os.kill(engine.worker_pid(), signal.SIGKILL)
        time.sleep(0.1)
        after = _read(engine, crossbar)
        assert engine.restarts == 1
        _same(before, after)
    assert "restarted" in caplog.text


def test_hung_worker_is_replaced_after_the_timeout(crossbar):
    engine, before = _loaded_engine(crossbar, timeout_s=2)
    with engine:
        pid = engine.worker_pid()
        os.kill(pid, signal.SIGSTOP)  # a hang: the process is alive but never answers
        try:
            after = _read(engine, crossbar)
        finally:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert engine.restarts == 1
        _same(before, after)


def test_undefined_parameter_kills_the_library_not_the_engine(crossbar):
    # ngspice asks to be detached on an undefined parameter; the library is dead after that.
    bad = "* bad\nR1 a 0 {nosuch}\nV1 a 0 dc 1\n.op\n.end\n"
    with SpiceEngine() as engine:
        with pytest.raises(CircuitRejectedError, match="'bad_params'"):
            engine.load("bad_params", bad)
        engine.load("good", crossbar.netlist(np.full(30, 0.5), np.zeros(9)))
        assert "l2a0" in _read(engine, crossbar)


def test_malformed_expression_never_takes_the_caller_down(crossbar):
    # An unclosed parenthesis: the validated load refuses it before ngspice sees it. Passed raw, it
    # aborts the worker in most runs ("stack smashing detected") and is read as v(a) in others;
    # either way the caller keeps a working engine.
    bad = "* bad\nV1 a 0 dc 1\nR1 a b 1k\nB1 b 0 V = v(a\n.op\n.end\n"
    with SpiceEngine(timeout_s=30) as engine:
        with pytest.raises(NetlistError, match="line 4: 1 '\\(' left open"):
            engine.load("malformed", bad)
        with pytest.raises(NetlistError, match="'}' closes nothing"):
            engine.load("malformed", bad.replace("v(a", "v(a)}"))
        try:
            engine.load_unvalidated("malformed", bad)
            engine.run("op", ["b"])
        except SimulationError:
            pass
        engine.load("good", crossbar.netlist(np.full(30, 0.5), np.zeros(9)))
        assert "l2a0" in _read(engine, crossbar)


def test_convergence_failure_names_circuit_and_step_and_engine_goes_on(engine, crossbar):
    engine.load("fine", crossbar.netlist(np.full(30, 0.5), np.zeros(9)))
    good = _read(engine, crossbar)
    engine.load("parallel_sources", "* v loop\nV1 a 0 dc 1\nV2 a 0 dc 2\nR1 a 0 1k\n.op\n.end\n")
    with pytest.raises(ConvergenceError) as info:
        engine.run("op", ["a"], step="read 17")
    assert "parallel_sources" in str(info.value) and "read 17" in str(info.value)
    engine.load("fine", crossbar.netlist(np.full(30, 0.5), np.zeros(9)))
    _same(good, _read(engine, crossbar))


def test_unknown_subcircuit_is_rejected(engine):
    with pytest.raises(CircuitRejectedError, match="unknown subckt"):
        engine.load("missing_model", "* x\nV1 a 0 dc 1\nX1 a 0 nosuch\n.op\n.end\n")
        engine.run("op", ["a"])


def test_missing_vector_is_an_error_not_a_crash(engine, crossbar):
    engine.load("fine", crossbar.netlist(np.full(30, 0.5), np.zeros(9)))
    with pytest.raises(CircuitRejectedError, match="no_such_node"):
        engine.run("op", ["no_such_node"])
    assert "l2a0" in _read(engine, crossbar)


@pytest.mark.parametrize("target,value", [
    ("vin0", "dc=1\nshell rm -rf /"), ("vin0; quit", "dc=1"), ("vin0", "dc=1 ; quit"),
    (".control", "dc=1"), ("@vprog[pulse]", "= [ 0 1 ] ; shell ls"),
    ("vin0", "dc=1\n"), ("vin0\n", "dc=1"), ("v.x1.vx0", "=\n0.5"), ("vin0", "dc=\t1"), (3, "dc=1"),
])
def test_alter_refuses_anything_but_a_number(target, value):
    with pytest.raises(ValueError):
        alter_command(target, value)


def test_engine_refuses_free_form_analysis(engine, crossbar):
    engine.load("fine", crossbar.netlist(np.full(30, 0.5), np.zeros(9)))
    for analysis in ("shell ls", "op\nquit", "quit", "tran 1n 1u; shell ls", "op\n"):
        with pytest.raises(ValueError):
            engine.run(analysis, ["l2a0"])


def test_many_vectors_are_all_read(engine):
    # ngspice truncates a long command; the engine must still save and return every vector asked.
    from circuitnn.circuits.crossbar import CrossbarSpec, LayerSpec, NeuronSpec

    big = Crossbar(CrossbarSpec(name="big", device=preset("W"), r_line_ohm=1.0,
                                layers=(LayerSpec(16, 8, NeuronSpec(1e4)),)))
    engine.load("big", big.netlist(np.full(big.n_devices, 0.5), np.ones(16)))
    names = [site.state_node for site in big.sites] + big.neuron_nodes()
    assert len(" ".join(names)) > 1200
    vectors = engine.run("op", names).vectors
    assert set(vectors) == set(names)
    np.testing.assert_allclose([vectors[site.state_node][0] for site in big.sites], 0.5, atol=1e-9)


def test_polling_and_sleeping_engines_give_the_same_results(crossbar):
    """Polling for answers (the default on 2+ CPUs) changes latency, never results."""
    netlist = crossbar.netlist(np.linspace(0.1, 0.9, 30), np.zeros(9))
    inputs = [crossbar.input_alters(x) for x in np.random.default_rng(0).uniform(0, 1, (5, 9))]
    results = []
    for spin_s in (0.0, 2e-3):
        with SpiceEngine(timeout_s=60, spin_s=spin_s) as engine:
            assert engine.spin_s == spin_s
            engine.load("spin", netlist)
            results.append([r.vectors["l2a0"][0] for r in engine.run_many("op", ["l2a0"], inputs)])
    assert results[0] == results[1]


@pytest.mark.parametrize("spin_s", [-1e-3, 2.0])
def test_spin_outside_its_range_is_refused(spin_s):
    with pytest.raises(ValueError, match="spin_s"):
        SpiceEngine(spin_s=spin_s)


def test_a_table_of_operating_points_equals_the_runs_one_by_one(crossbar):
    """run_table returns what run_many returns, as one array; alters equal to values the worker
    already holds are not re-sent, and that changes nothing, also across a worker restart."""
    rng = np.random.default_rng(3)
    inputs = rng.integers(0, 2, (12, 9)).astype(float)
    inputs[4] = inputs[3]          # a repeated sample: every alter of run 4 is already held
    sets = crossbar.input_alter_sets(inputs)
    names = crossbar.neuron_nodes() + ["vin0#branch"]
    netlist = crossbar.netlist(np.linspace(0.1, 0.9, 30), np.zeros(9))
    with SpiceEngine(timeout_s=60) as engine:
        engine.load("table", netlist)
        expected = np.array([[r.vectors[n][0] for n in names] for r in engine.run_many("op", names, sets)])
        engine.load("table", netlist)
        table, solve_s = engine.run_table(names, sets[:6])
        os.kill(engine.worker_pid(), signal.SIGKILL)   # the new worker gets the held inputs back
        time.sleep(0.1)
        rest, _ = engine.run_table(names, sets[6:])
        assert engine.restarts == 1
    assert table.shape == (6, len(names)) and len(solve_s) == 6
    assert solve_s[4] == 0 and np.all(np.delete(solve_s, 4) > 0)   # run 4 repeats run 3: solved once
    np.testing.assert_array_equal(np.vstack([table, rest]), expected)



def test_a_repeated_operating_point_is_solved_once_and_only_under_the_same_states(crossbar):
    """run_table solves a run whose whole circuit state (states and inputs) an earlier run of the
    call held only once; the same inputs under changed states are solved again. The table equals
    solving every run, and a failure names the caller's run, not the position among those sent."""
    rng = np.random.default_rng(8)
    inputs = rng.integers(0, 2, (8, 9)).astype(float)
    inputs[[2, 5, 7]] = inputs[0]
    sets = crossbar.input_alter_sets(inputs)
    states = np.linspace(0.1, 0.9, 30)
    sets[4] = {**crossbar.state_alters(states[::-1]), **sets[4]}   # runs 4-7 under other states
    names = crossbar.neuron_nodes()
    with SpiceEngine(timeout_s=60) as engine:
        engine.load("reuse", crossbar.netlist(states, np.zeros(9)))
        expected = np.array([[r.vectors[n][0] for n in names] for r in engine.run_many("op", names, sets)])
        engine.load("reuse", crossbar.netlist(states, np.zeros(9)))
        runs = STATS.runs
        table, solve_s = engine.run_table(names, sets)
        assert STATS.runs - runs == 7   # run 2 reuses run 0; runs 5 and 7 (other states) are solved
        np.testing.assert_array_equal(table, expected)
        assert solve_s[2] == 0 and np.all(np.delete(solve_s, 2) > 0)
        assert not np.array_equal(table[5], table[0])
        # Held values after the call are the last run's: a next call sending only inputs reads there.
        np.testing.assert_array_equal(engine.run_table(names, sets[5:6])[0], expected[5:6])
        # An earlier call's solutions count too: only the last run is solved again.
        runs = STATS.runs
        again, _ = engine.run_table(names, sets[4:])
        assert STATS.runs - runs == 1
        np.testing.assert_array_equal(again, expected[4:])
        with pytest.raises(SimulationError, match="run 4 of 4"):
            engine.run_table(names, [sets[0], sets[1], sets[0], {"vnosuchsource": "dc=1"}])


def test_remembered_operating_points_are_bounded_by_size(crossbar, monkeypatch):
    import circuitnn.spice.engine as engine_module

    names = crossbar.neuron_nodes()
    sets = crossbar.input_alter_sets(np.random.default_rng(10).uniform(-1, 1, (5, 9)))
    with SpiceEngine(timeout_s=60) as engine:
        engine.load("bounded", crossbar.netlist(np.linspace(0.1, 0.9, 30), np.zeros(9)))
        expected = np.array([[r.vectors[n][0] for n in names] for r in engine.run_many("op", names, sets)])
        per_point = len(engine._persistent) + len(names)
        monkeypatch.setattr(engine_module, "SOLUTIONS_KEPT_VALUES", 3 * per_point)
        first, _ = engine.run_table(names, sets)
        assert len(engine._solved) == 3 and engine._solved.size <= 3 * per_point
        runs = STATS.runs
        again, _ = engine.run_table(names, sets)
        assert STATS.runs - runs == 2   # runs 0-2 remembered; 3 was not kept, 4 is the last
        assert len(engine._solved) <= 3
    np.testing.assert_array_equal(first, expected)
    np.testing.assert_array_equal(again, expected)


def test_no_operating_point_solved_before_a_raw_command_is_reused_after_it(crossbar):
    """A raw command may change what no alter names (a device state here); a single run after it
    must not make the solutions from before it count again."""
    names = crossbar.neuron_nodes()
    sets = crossbar.input_alter_sets(np.random.default_rng(9).uniform(-1, 1, (2, 9)))
    with SpiceEngine(timeout_s=60) as engine:
        engine.load("raw", crossbar.netlist(np.linspace(0.1, 0.9, 30), np.zeros(9)))
        before, _ = engine.run_table(names, sets)
        engine.command_unvalidated(f"alter {crossbar.sites[0].state_target} dc=0.95")
        engine.run("op", names, alters=sets[1])
        after, solve_s = engine.run_table(names, sets)
        assert np.all(solve_s > 0) and not np.array_equal(after[0], before[0])


def test_after_a_failed_batch_the_worker_holds_what_the_engine_set_again(crossbar):
    """A batch that fails part-way leaves its first runs' values in the worker; the next batch,
    which does not set that input, must still read with the value the engine set before."""
    names = crossbar.neuron_nodes()
    netlist = crossbar.netlist(np.linspace(0.1, 0.9, 30), np.zeros(9))
    base = crossbar.input_alters(np.full(9, 0.2))
    vin0 = {"vin0": crossbar.input_alters(np.full(9, -0.8))["vin0"]}
    vin1 = {"vin1": crossbar.input_alters(np.full(9, 0.7))["vin1"]}
    with SpiceEngine(timeout_s=60) as engine:
        engine.load("resend", netlist)
        expected = [engine.run_many("op", names, [base, vin1])[1].vectors[n][0] for n in names]
        wrong = [engine.run_many("op", names, [base, vin0, vin1])[2].vectors[n][0] for n in names]
        assert expected != wrong   # the input the failed batch set does move the outputs
        engine.load("resend", netlist)
        engine.run_table(names, [base])
        with pytest.raises(SimulationError):
            engine.run_table(names, [vin0, {"vnosuchsource": "dc=1"}])
        after, _ = engine.run_table(names, [vin1])
    np.testing.assert_array_equal(after[0], expected)


def test_values_changed_behind_the_engines_back_are_sent_again(crossbar):
    """The engine skips alters the worker already holds; after a raw command or a failed run it
    cannot know what the worker holds, so the next runs send every value again."""
    sets = crossbar.input_alter_sets(np.random.default_rng(4).uniform(-1, 1, (2, 9)))
    names = crossbar.neuron_nodes()
    with SpiceEngine(timeout_s=60) as engine:
        engine.load("held", crossbar.netlist(np.linspace(0.1, 0.9, 30), np.zeros(9)))
        first, _ = engine.run_table(names, sets)
        engine.command_unvalidated("alter vin0 dc=0.0777")
        again, _ = engine.run_table(names, sets[1:])
        np.testing.assert_array_equal(again, first[1:])
        # A raw command may change what no alter of the engine's names: earlier solutions are void.
        engine.command_unvalidated(f"alter {crossbar.sites[0].state_target} dc=0.95")
        changed, _ = engine.run_table(names, sets)
        assert not np.array_equal(changed[0], first[0])
        engine.command_unvalidated(f"alter {crossbar.sites[0].state_target} dc=0.1")
        with pytest.raises(NetlistError):   # refused before anything is sent: what is held stays known
            engine.run_table(names, [{"vin0": "dc=1;quit"}])
        np.testing.assert_array_equal(engine.run_table(names, sets[1:])[0], first[1:])
        # A batch that fails part-way leaves its first runs' values in the worker.
        with pytest.raises(SimulationError):
            engine.run_table(names, [sets[0], {"vnosuchsource": "dc=1"}])
        np.testing.assert_array_equal(engine.run_table(names, sets[1:])[0], first[1:])


def test_a_failed_run_is_named_by_the_callers_number(crossbar):
    names = crossbar.neuron_nodes()
    sets = crossbar.input_alter_sets(np.random.default_rng(11).uniform(-1, 1, (3, 9)))
    with SpiceEngine(timeout_s=60) as engine:
        engine.load("numbers", crossbar.netlist(np.linspace(0.1, 0.9, 30), np.zeros(9)))
        # Sent in the order 2, 0, 1 of the caller's samples: the second sent is the caller's first.
        with pytest.raises(SimulationError, match="run 1 of 3"):
            engine.run_table(names, [sets[2], {"vnosuchsource": "dc=1"}, sets[1]], numbers=[2, 0, 1])
