"""The report a run stores when it completes is the report `circuitnn report` rebuilds from the store
alone: written as the run's last step, it describes the complete run, not an unfinished one."""

from __future__ import annotations

import pytest

from circuitnn.cli import main
from circuitnn.experiments.drift import quick_config, run_drift
from circuitnn.experiments.network_learning import default_plan, run_learning_study
from circuitnn.experiments.networks import run_networks
from circuitnn.reports import write_report
from circuitnn.store import RunStore
from circuitnn.store import runs as store_runs

EXPERIMENTS = {
    "networks": lambda store: run_networks(store, None, epochs=1, max_examples=100, repeats=1, kinds=("mlp",),
                                           progress=False, line_resistances_ohm=(), write_report=write_report),
    "learn-networks": lambda store: run_learning_study(
        store, default_plan(max_examples=100, hidden=8, epochs=1, conductance_levels=[0.0], neuron_levels=[],
                            sweep_methods=["bp"], extra_methods=[], cnn_methods=[]),
        progress=False, write_report=write_report),
    "drift": lambda store: run_drift(store, quick_config(steps=("networks",), max_examples=300, draws=1),
                                     progress=False, write_report=write_report),
}


@pytest.mark.parametrize("experiment", list(EXPERIMENTS))
def test_the_stored_report_is_the_rebuilt_one(tmp_path, monkeypatch, experiment):
    monkeypatch.setattr(store_runs, "collect_versions", lambda: {"circuitnn": "test"})
    run = EXPERIMENTS[experiment](RunStore(tmp_path / "runs"))
    assert run.status == "complete"
    stored = run.read_text("report.md")
    assert "Incomplete run" not in stored
    assert main(["report", run.id, "--store", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / run.id / "report.md").read_text() == stored


def test_a_report_of_a_run_being_written_names_the_writer_not_a_resume(tmp_path, capsys, monkeypatch):
    import os

    from circuitnn.experiments.config import load_config

    monkeypatch.setattr(store_runs, "collect_versions", lambda: {"circuitnn": "test"})
    store = RunStore(tmp_path)
    writing = store.create("train", {"media": {"Cr": load_config(medium_name="Cr").as_dict()}}, seed=0,
                           files={"plan.json": {"media": ["Cr"], "heatmap_medium": None, "parts": ["Cr-reset"],
                                                "backend": "surrogate", "calibration": None}})
    command = ["report", writing.id, "--store", str(tmp_path), "--out", str(tmp_path / "out")]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert f"process {os.getpid()} is writing it now" in err and "--resume" not in err, err
    writing.close()  # as a kill leaves it: nobody writes it any more
    assert main(command) == 2
    assert f"resume it with `circuitnn train --resume {writing.id}" in capsys.readouterr().err
