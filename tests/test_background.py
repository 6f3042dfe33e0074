"""Work computed in a child process while ngspice runs: the same values as computed here, and
computed here when the child cannot give them."""

import os
import time

import numpy as np

from circuitnn.experiments import onchip
from circuitnn.experiments.background import InBackground


def test_the_child_computes_in_another_process():
    with InBackground(os.getpid) as child:
        assert child.result() != os.getpid()
        assert child.result() == child.result()   # asked twice: the one value


def test_a_child_that_dies_is_replaced_by_computing_here(caplog):
    with InBackground(os.getpid) as child:
        child._process.kill()
        assert child.result() == os.getpid()
    assert "its child failed" in caplog.text


def test_the_child_imports_this_circuitnn_not_one_in_the_current_folder(tmp_path, monkeypatch):
    # Another checkout (or a stray module) in the folder the user runs from must not be imported.
    fake = tmp_path / "circuitnn"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('the wrong circuitnn')\n")
    monkeypatch.chdir(tmp_path)
    with InBackground(os.getpid) as child:
        assert child.result() != os.getpid()


def test_what_cannot_reach_a_child_is_computed_here():
    # A lambda cannot be sent by name: no child is started.
    with InBackground(lambda x: x + 1, 41) as child:
        assert child._process is None
        assert child.result() == 42


def test_closing_kills_a_running_child():
    child = InBackground(time.sleep, 30)
    process = child._process
    started = time.monotonic()
    child.close()
    assert process.poll() is not None and time.monotonic() - started < 10


def test_heatmap_tasks_from_the_child_equal_those_computed_here(small_config):
    with InBackground(onchip.heatmap_tasks, small_config) as child:
        here = onchip.heatmap_tasks(small_config)
        there = child._from_child()
    assert there is not None, "the child gave no answer"
    (there,) = there
    assert len(there) == len(here) == len(small_config.onchip.noise_levels)
    for a, b in zip(there, here):
        for name in ("targets_S", "X_test", "y_test", "X_train", "y_train"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        for wa, wb in zip(a.network.weights, b.network.weights):
            np.testing.assert_array_equal(wa, wb)
        assert a.software_accuracy == b.software_accuracy


def test_an_interrupted_wait_leaves_the_child_to_be_killed(monkeypatch):
    child = InBackground(time.sleep, 30)
    process = child._process

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(process, "communicate", interrupted)
    try:
        child.result()
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    child.close()
    assert process.poll() is not None
