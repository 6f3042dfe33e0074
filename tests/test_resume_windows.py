"""The moments between two writes where a kill used to leave a run that could not be resumed, or that
resumed to less than an uninterrupted run: every experiment's run killed the instant it appears
(before anything else is written) still resumes, because its plan is created with it; and a part made
of several files is marked done by the file written last, so a kill between them never leaves the
resumed run without one (the drift study's trained networks: history, then weights)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from circuitnn.experiments import drift, reproduction
from circuitnn.experiments.config import load_config
from circuitnn.store import RunStore

# Runs one experiment and SIGKILLs itself at a chosen moment: "appear" right after the run's directory
# takes its name (os.rename of the hidden staging folder), "first-part" right after run.json records
# the first file written under parts/.
DRIVER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from circuitnn.store import RunStore, runs

    runs.collect_versions = lambda: {"circuitnn": "test"}  # no ngspice process per run
    root, experiment, moment = sys.argv[1], sys.argv[2], sys.argv[3]
    real_rename, real_replace = os.rename, os.replace
    part_written = [False]

    def rename(src, dst, *args, **kwargs):
        real_rename(src, dst, *args, **kwargs)
        if moment == "appear" and Path(src).name.startswith(".creating-"):
            os.kill(os.getpid(), signal.SIGKILL)

    def replace(src, dst, *args, **kwargs):
        real_replace(src, dst, *args, **kwargs)
        if moment == "first-part":
            if "/parts/" in str(dst):
                part_written[0] = True
            elif part_written[0] and Path(dst).name == "run.json":
                os.kill(os.getpid(), signal.SIGKILL)

    os.rename, os.replace = rename, replace
    store = RunStore(root)
    if experiment == "train":
        from circuitnn.experiments.config import load_config
        from circuitnn.experiments.reproduction import run_reproduction
        run_reproduction(store, [load_config(medium_name="Cr")], "train", progress=False, backend="surrogate")
    elif experiment == "mismatch":
        from circuitnn.experiments.config import load_config
        from circuitnn.experiments.mismatch import MismatchStudy, run_mismatch
        run_mismatch(store, load_config(medium_name="Cr", trainer_kind="dgc"), MismatchStudy(levels=(0.0,), chips=1),
                     progress=False)
    elif experiment == "drift":
        from circuitnn.experiments.drift import quick_config, run_drift
        run_drift(store, quick_config(steps=("networks",), max_examples=400, draws=1), progress=False)
    elif experiment == "networks":
        from circuitnn.experiments.networks import run_networks
        run_networks(store, None, epochs=1, max_examples=100, repeats=1, kinds=("mlp",), progress=False,
                     line_resistances_ohm=())
    elif experiment == "learn-networks":
        from circuitnn.experiments.network_learning import default_plan, run_learning_study
        run_learning_study(store, default_plan(max_examples=100), progress=False)
    elif experiment == "crosscheck":
        from circuitnn.experiments.config import load_config
        from circuitnn.experiments.crosscheck import run_crosscheck
        run_crosscheck(store, [load_config(medium_name="Cr")], seeds=1, reset_modes=(False,), progress=False)
""")


def _killed(root, experiment: str, moment: str) -> str:
    """Run ``experiment`` into ``root`` until the kill; the id of the run it left."""
    done = subprocess.run([sys.executable, "-c", DRIVER, str(root), experiment, moment],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    ids = [p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(ids) == 1, ids
    return ids[0]


@pytest.mark.parametrize("experiment", ["train", "mismatch", "drift", "networks", "learn-networks", "crosscheck"])
def test_a_run_killed_the_instant_it_appears_has_its_plan_and_resumes(tmp_path, experiment):
    run_id = _killed(tmp_path, experiment, "appear")
    store = RunStore(tmp_path)
    assert store.open(run_id).status == "running"
    run = store.resume(run_id)
    try:
        assert isinstance(run.read_json("plan.json"), dict)  # what every experiment's resume reads first
    finally:
        run.close()


def test_the_killed_train_run_resumes_to_the_uninterrupted_one(tmp_path):
    run_id = _killed(tmp_path / "killed", "train", "appear")
    config = load_config(medium_name="Cr")
    resumed = reproduction.run_reproduction(RunStore(tmp_path / "killed"), [config], "train", resume=run_id,
                                            progress=False)
    reference = reproduction.run_reproduction(RunStore(tmp_path / "reference"), [config], "train", progress=False,
                                              backend="surrogate")
    assert resumed.status == "complete"
    parts = sorted(rel for rel in reference.files if rel.startswith("parts/"))
    assert sorted(rel for rel in resumed.files if rel.startswith("parts/")) == parts
    for rel in parts:
        assert resumed.read_bytes(rel) == reference.read_bytes(rel), rel


def test_a_drift_network_killed_between_its_files_is_whole_after_resume(tmp_path):
    run_id = _killed(tmp_path / "killed", "drift", "first-part")
    store = RunStore(tmp_path / "killed")
    assert any(rel.startswith("parts/") for rel in store.open(run_id).files)  # killed with a part half-written
    config = drift.quick_config(steps=("networks",), max_examples=400, draws=1)
    resumed = drift.run_drift(store, config, resume=run_id, progress=False)
    reference = drift.run_drift(RunStore(tmp_path / "reference"), config, progress=False)
    parts = sorted(rel for rel in reference.files if rel.startswith("parts/"))
    assert sorted(rel for rel in resumed.files if rel.startswith("parts/")) == parts
    for rel in parts:
        if rel.endswith("history.json"):  # its epoch times are wall-clock measurements
            ours, theirs = json.loads(resumed.read_bytes(rel)), json.loads(reference.read_bytes(rel))
            assert {k: v for k, v in ours.items() if k != "epoch_time_s"} == \
                   {k: v for k, v in theirs.items() if k != "epoch_time_s"}
        elif rel.endswith(".npz"):
            ours, theirs = resumed.read_npz(rel), reference.read_npz(rel)
            assert ours.keys() == theirs.keys() and all(np.array_equal(ours[k], theirs[k]) for k in ours), rel
        else:
            assert resumed.read_bytes(rel) == reference.read_bytes(rel), rel


def test_ctrl_c_while_a_run_completes_names_the_complete_run(tmp_path, capsys, monkeypatch):
    """Ctrl-C held while run.json records the completion arrives just after it: exit 130, and the line
    says the run is complete (not that something could be resumed)."""
    import io

    from circuitnn.cli import main
    from circuitnn.store import runs

    monkeypatch.setattr(runs, "collect_versions", lambda: {"circuitnn": "test"})
    real = runs.write_atomic

    def write_atomic(path, write):
        size = real(path, write)
        written = io.BytesIO()
        write(written)
        if path.name == "run.json" and json.loads(written.getvalue())["status"] == "complete":
            signal.raise_signal(signal.SIGINT)  # held by the store until the record is written
        return size

    monkeypatch.setattr(runs, "write_atomic", write_atomic)
    config = tmp_path / "small.toml"
    config.write_text('preset = "Cr"\n[onchip]\nn_test_per_class = 8\nconductance_errors = [0.0]\nerror_draws = 1\n')
    assert main(["train", "--config", str(config), "--backend", "surrogate", "--quiet",
                 "--store", str(tmp_path / "runs")]) == 130
    (info,) = RunStore(tmp_path / "runs").list()
    err = capsys.readouterr().err
    assert info.status == "complete"
    assert err.count("\n") == 1 and f"after run {info.id} completed" in err and "nothing to resume" in err, err


def test_the_main_job_resumed_writes_the_artifacts_of_its_own_run(tmp_path, capsys, monkeypatch):
    """`circuitnn reproduce --resume RUN_ID --out DIR` (the line an interrupt prints) rebuilds the device
    curves, netlists and operating points beside the run from the run's own media and configs, as
    the uninterrupted job wrote them, not from the defaults of options it was not given."""
    from circuitnn.cli import main
    from circuitnn.store import runs
    from stop_after import interrupted_after

    monkeypatch.setattr(runs, "collect_versions", lambda: {"circuitnn": "test"})
    config = tmp_path / "small.toml"
    config.write_text('preset = "Cr"\n[onchip]\nn_test_per_class = 8\nconductance_errors = [0.0]\nerror_draws = 1\n'
                      'noise_levels = [0.0, 0.1]\n')
    with interrupted_after(2, monkeypatch), pytest.raises(KeyboardInterrupt):
        reproduction.run_reproduction(RunStore(tmp_path / "out" / "runs"), [load_config(config)], "compare-media",
                                      heatmap_medium="Cr", progress=False, backend="surrogate")
    (info,) = RunStore(tmp_path / "out" / "runs").list()
    assert main(["reproduce", "--resume", info.id, "--out", str(tmp_path / "out"), "--quiet"]) == 0
    curves = sorted(path.name for path in (tmp_path / "out" / "device-curves").glob("*.png"))
    assert curves == ["Cr_curves.png"]
    assert sorted(json.loads((tmp_path / "out" / "operating_points.json").read_text())["media"]) == ["Cr"]
    # Stopped after the run completed (while out/report was written): --resume finishes the job, no new run.
    report = (tmp_path / "out" / "report" / "report.md").read_text()
    (tmp_path / "out" / "report" / "report.md").unlink()
    capsys.readouterr()
    assert main(["reproduce", "--resume", info.id, "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert "is complete: its report and the files beside it are rebuilt" in capsys.readouterr().err
    assert (tmp_path / "out" / "report" / "report.md").read_text() == report
    assert [i.id for i in RunStore(tmp_path / "out" / "runs").list()] == [info.id]


def test_a_run_stopped_by_sigterm_is_named_with_its_resume_command(tmp_path, capsys, monkeypatch):
    """SIGTERM (or SIGHUP) stops a run as failed and resumable; the one line names it and the exact
    command that continues it, as Ctrl-C's does."""
    from circuitnn.cli import main
    from circuitnn.store import runs

    monkeypatch.setattr(runs, "collect_versions", lambda: {"circuitnn": "test"})
    original = reproduction.onchip.train_with

    def stopped(config, chip, task, trainer, variant, resume=None, checkpoint=None, **kwargs):
        def stop(state):
            checkpoint(state)
            signal.raise_signal(signal.SIGTERM)  # `kill PID`, handled by the CLI where the program is
        return original(config, chip, task, trainer, variant, resume, stop, **kwargs)

    monkeypatch.setattr(reproduction.onchip, "train_with", stopped)
    config = tmp_path / "small.toml"
    config.write_text('preset = "Cr"\n[onchip]\nn_test_per_class = 8\nconductance_errors = [0.0]\nerror_draws = 1\n')
    store = tmp_path / "runs"
    assert main(["train", "--config", str(config), "--backend", "surrogate", "--quiet", "--store", str(store)]) == 143
    (info,) = RunStore(store).list()
    err = capsys.readouterr().err
    assert info.status == "failed" and err.count("\n") == 1
    assert f"stopped by SIGTERM; run {info.id} is stored as failed" in err
    assert f"continue with: circuitnn train --resume {info.id} --store {store}" in err
    monkeypatch.setattr(reproduction.onchip, "train_with", original)
    assert main(["train", "--resume", info.id, "--quiet", "--store", str(store)]) == 0
