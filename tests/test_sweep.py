"""Sweeps on a real dask.distributed cluster on loopback: spec expansion and its errors, runs stored
once under ids derived from their configs, a worker killed mid-run, a sweep SIGKILLed and restarted,
and the comparison report rebuilt from the store alone."""

from __future__ import annotations

import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import distributed
import pytest

from circuitnn.cli import main
from circuitnn.experiments.config import Config, from_dict, load_config
from circuitnn.experiments.reproduction import run_reproduction
from circuitnn.experiments.sweep import expand_sweep, load_sweep, run_sweep, task_key
from circuitnn.store import RunStore
from figure_checks import assert_legends_cover_no_data, assert_no_marker_hidden


DASK = Path(sys.executable).parent / "dask"
CIRCUITNN = Path(sys.executable).parent / "circuitnn"
# Small runs: one layer of 9 devices, a short software training, a small test set, no
# conductance-error draws.
SMALL = """
[base]
preset = "Cr"
circuit.layers = [9, 1]
onchip.n_test_per_class = 10
onchip.conductance_errors = [0.0]
onchip.error_draws = 1
training.epochs = 40
training.n_restarts = 1
training.n_train_per_class = 30
"""


def _spec(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _record(store: Path, run_id: str) -> dict:
    return json.loads((store / run_id / "run.json").read_text())


def _run_dirs(store: Path) -> list[str]:
    return sorted(p.name for p in store.iterdir() if p.is_dir() and not p.name.startswith("."))


def _part_summaries(store: Path, run_id: str) -> dict:
    run = RunStore(store).open(run_id)
    return {rel: run.read_json(rel) for rel in sorted(run.files) if rel.endswith("summary.json")}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A dask scheduler and two single-threaded worker processes (under a nanny), started with
    Dask's own commands on 127.0.0.1, as a user's existing cluster would be."""
    folder = tmp_path_factory.mktemp("dask")
    scheduler_file = folder / "scheduler.json"
    log = open(folder / "dask.log", "w")
    common = dict(stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=folder)
    started = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                 "--scheduler-file", str(scheduler_file)], **common)]
    try:
        deadline = time.monotonic() + 120
        while not scheduler_file.exists():
            assert time.monotonic() < deadline, (folder / "dask.log").read_text()
            time.sleep(0.2)
        started.append(subprocess.Popen([str(DASK), "worker", "--scheduler-file", str(scheduler_file),
                                         "--nworkers", "2", "--nthreads", "1", "--no-dashboard",
                                         "--host", "127.0.0.1"], **common))
        client = distributed.Client(scheduler_file=str(scheduler_file), timeout="60s")
        client.wait_for_workers(2, timeout=120)
        yield client
        client.close()
    finally:
        for process in reversed(started):
            with_pid = process.pid
            try:
                os.killpg(with_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(with_pid, signal.SIGKILL)
                process.wait()
        log.close()


# -- the specification ---------------------------------------------------------------------------------
def test_points_get_ids_from_their_resolved_config():
    grid = expand_sweep({"base": "Cr", "grid": {"seed": [0, 1], "tuning": {"tolerance": [0.05, 0.1]}}})
    assert grid.axes == ("seed", "tuning.tolerance")
    assert len(grid.points) == 4 and len({p.run_id for p in grid.points}) == 4
    again = expand_sweep({"base": {"preset": "Cr"}, "grid": {"tuning.tolerance": [0.1, 0.05]},
                          "list": [{"seed": 1}, {"seed": 0}, {"seed": 0}]})
    # Written otherwise (a preset table, a quoted dotted key, list × grid, a point twice): the same runs.
    assert {p.run_id for p in again.points} == {p.run_id for p in grid.points}
    # The same value as the preset's default is the same run as not sweeping it at all.
    default = expand_sweep({"list": [{"tuning.tolerance": 0.05, "seed": 0}]})
    plain = expand_sweep({"list": [{"seed": 0}]})
    assert default.points[0].run_id == plain.points[0].run_id
    point = next(p for p in grid.points if p.values == {"seed": 1, "tuning.tolerance": 0.1})
    config = from_dict(Config, point.config, "test")
    assert config.seed == 1 and config.tuning.tolerance == 0.1 and config.device.medium == "Cr"


def test_a_swept_medium_is_its_whole_preset_and_backend_is_a_run_option():
    sweep = expand_sweep({"base": {"tuning": {"tolerance": 0.08}, "backend": "surrogate"},
                          "grid": {"device": {"medium": ["W", "PCM"]}}})
    for point in sweep.points:
        config = from_dict(Config, point.config, "test")
        preset = load_config(medium_name=point.medium)
        assert config.device.medium == point.medium and point.backend == "surrogate"
        assert config.tuning.tolerance == 0.08
        assert config.timing == preset.timing and config.programming == preset.programming
        assert point.run_id.startswith(f"train-{point.medium.lower()}-surrogate-")


BAD_SPECS = [
    ('[grid]\ntuning.tolerance = [0.05, -0.1]', "grid.tuning.tolerance[1] = -0.1 is invalid: allowed (0, 0.5]"),
    ('[grid]\ntuning.tolerence = [0.05]', "grid.tuning.tolerence[0] = 0.05 is invalid: allowed a known field"),
    ('[grid]\ntrainer.kind = ["dgc", "nope"]', "grid.trainer.kind[1] = 'nope' is invalid: allowed one of"),
    ('[grid]\nseed = 3', "grid.seed = 3 is invalid: allowed a list of 1 to 10000 values"),
    ('[grid]\nbackend = ["spice", "gpu"]', "grid.backend[1] = 'gpu' is invalid: allowed one of spice, surrogate"),
    ('[grid]\ndevice.medium = ["W", "Unobtainium"]', "grid.device.medium[1] = 'Unobtainium' is invalid"),
    ('[[list]]\nseed = -1', "list[0].seed = -1 is invalid"),
    ('[base]\nonchip.n_test_per_class = 0\n[grid]\nseed = [0]', "base.onchip.n_test_per_class = 0 is invalid"),
    ('[grid]\nseed = [0]\n[[list]]\nseed = 1', "list[0].seed = 1 is invalid: allowed a value not also swept"),
    ('base = "Nope"\n[grid]\nseed = [0]', "base = 'Nope' is invalid"),
    ('workers = 3\n[grid]\nseed = [0]', "workers = 3 is invalid: allowed a sweep key"),
    ('name = "x"', "grid = {} is invalid: allowed at least one dotted config value"),
    ('[grid\nseed = [0]', "valid TOML"),
    # A list or table where a name belongs cannot be looked up among the names: was a TypeError traceback.
    ('experiment = [1]\n[grid]\nseed = [0]', "experiment = [1] is invalid: allowed one of train"),
    ('[experiment]\nkind = "train"\n[grid]\nseed = [0]', "experiment = {'kind': 'train'} is invalid"),
]


@pytest.mark.parametrize("text, expected", BAD_SPECS, ids=[e.split(" ")[0] for _, e in BAD_SPECS])
def test_bad_specs_fail_in_one_line_naming_the_path(tmp_path, capsys, text, expected):
    spec = _spec(tmp_path, text)
    assert main(["sweep", str(spec), "--store", str(tmp_path / "runs"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "runs").exists()  # nothing was stored, no cluster was started


def test_bad_options_fail_in_one_line(tmp_path, capsys):
    spec = _spec(tmp_path, SMALL + "[grid]\nseed = [0]\n")
    for argv, expected in (([str(spec), "--workers", "0"], "--workers = 0 is invalid"),
                           # a typo of a thousand would start a thousand interpreters first
                           ([str(spec), "--workers", "1000"], "--workers = 1000 is invalid: allowed an integer in"),
                           ([str(tmp_path / "missing.toml")], "missing.toml"),
                           ([str(spec), "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "--workers = 2")):
        assert main(["sweep", *argv, "--store", str(tmp_path / "runs"), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, err


# -- on a cluster --------------------------------------------------------------------------------------
def test_sweep_on_an_existing_scheduler_stores_each_run_once_and_reports(cluster, tmp_path, capsys):
    spec = _spec(tmp_path, 'name = "tol"\n' + SMALL.replace('preset = "Cr"', 'preset = "Cr"\nbackend = "surrogate"')
                 + "[grid]\ntuning.tolerance = [0.02, 0.1]\nseed = [0, 1]\n")
    store = tmp_path / "runs"
    address = cluster.scheduler.address
    assert main(["sweep", str(spec), "--scheduler", address, "--store", str(store), "--quiet"]) == 0
    sweep = load_sweep(spec)
    assert f"sweep {sweep.id}: 4 runs (0 already stored, 4 run now)" in capsys.readouterr().out
    ids = [p.run_id for p in sweep.points]
    assert _run_dirs(store) == sorted([*ids, sweep.id])
    for point in sweep.points:
        record = _record(store, point.run_id)
        assert record["status"] == "complete" and record["labels"]["backend"] == "surrogate"
        assert record["config"]["media"]["Cr"]["tuning"]["tolerance"] == point.values["tuning.tolerance"]
    # What a worker stored is what this process computes for the same config.
    point = sweep.points[-1]
    direct = run_reproduction(RunStore(tmp_path / "direct"), [from_dict(Config, point.config, "t")], "train",
                              progress=False, backend="surrogate")
    assert _part_summaries(store, point.run_id) == _part_summaries(tmp_path / "direct", direct.id)

    # Again: nothing is run, nothing is added.
    assert main(["sweep", str(spec), "--scheduler", address, "--store", str(store), "--quiet"]) == 0
    assert "(4 already stored, 0 run now)" in capsys.readouterr().out
    assert _run_dirs(store) == sorted([*ids, sweep.id])

    # The report, from the store alone: mean and sample std over seeds of what the runs stored.
    out = tmp_path / "reports"
    assert main(["report", "--sweep", sweep.id, "--store", str(store), "--out", str(out)]) == 0
    folder = out / sweep.id
    assert (folder / "report.html").exists() and (folder / "figures" / "by_tuning_tolerance.png").stat().st_size > 10_000
    with open(folder / "tables" / "over_seeds.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4  # 2 tolerances × 2 reset modes
    for row in rows:
        mode = "reset" if row["reset"] == "with reset" else "noreset"
        members = [p.run_id for p in sweep.points if p.values["tuning.tolerance"] == float(row["tuning.tolerance"])]
        pulses = [_part_summaries(store, m)[f"parts/Cr-{mode}/summary.json"]["pulses"] for m in members]
        assert row["seeds"] == "0 1"
        assert float(row["pulses mean"]) == pytest.approx(statistics.mean(pulses), rel=1e-3)
        assert float(row["pulses std"]) == pytest.approx(statistics.stdev(pulses), rel=1e-3, abs=1e-9)
    # A tighter tolerance takes more pulses: the swept value reached the runs.
    by_tolerance = {(r["tuning.tolerance"], r["reset"]): float(r["pulses mean"]) for r in rows}
    assert by_tolerance[("0.02", "without reset")] > by_tolerance[("0.1", "without reset")]
    with open(folder / "tables" / "by_tuning_tolerance.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 4


def test_a_worker_killed_mid_run_has_its_run_retried_and_stored_once(cluster, tmp_path):
    spec = _spec(tmp_path, 'name = "kill"\n[base]\npreset = "W"\nbackend = "surrogate"\n'
                 "onchip.n_test_per_class = 20\nonchip.conductance_errors = [0.0]\nonchip.error_draws = 1\n"
                 "[grid]\nseed = [0, 1, 2, 3]\n")
    sweep, store = load_sweep(spec), tmp_path / "runs"
    key_of = {task_key(p.run_id): p.run_id for p in sweep.points}
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(
        result=run_sweep(RunStore(store), sweep, client=cluster, progress=False)))
    thread.start()
    try:
        # A worker writing a run: its run directory exists and is still running.
        victim = None
        deadline = time.monotonic() + 120
        while victim is None:
            assert time.monotonic() < deadline and thread.is_alive(), "no run was seen in progress"
            for worker, keys in cluster.processing().items():
                for key in keys:
                    run_id = key_of.get(key)
                    if run_id and (store / run_id / "run.json").exists() and \
                            _record(store, run_id)["status"] == "running":
                        victim = worker, run_id
            time.sleep(0.02)
        worker, killed_run = victim
        pid = cluster.run(os.getpid, workers=[worker])[worker]
        assert pid != os.getpid()
        os.kill(pid, signal.SIGKILL)
    finally:
        thread.join(timeout=300)
    result = outcome["result"]
    assert result.complete and not result.failed
    assert _run_dirs(store) == sorted([*(p.run_id for p in sweep.points), sweep.id])
    assert {result.finished[r]["pid"] for r in result.finished} - {pid}, "runs were done by other workers"
    record = _record(store, killed_run)
    assert record["status"] == "complete"
    # The killed run was taken up again from what it had stored, not started over in a second directory.
    assert record.get("resumed") and record["resumed"][0]["status"] == "running"
    assert result.finished[killed_run]["outcome"] in ("resumed", "found")
    cluster.wait_for_workers(2, timeout=120)  # the nanny restarted the killed one


def _sweep_command(spec: Path, store: Path, *extra: str) -> list[str]:
    return [str(CIRCUITNN), "sweep", str(spec), "--store", str(store), "--quiet", *extra]


def test_a_sigkilled_sweep_restarted_gives_the_results_of_an_uninterrupted_one(cluster, tmp_path):
    # SPICE runs: the kill lands mid-simulation, and the restart continues from the stored checkpoints.
    spec = _spec(tmp_path, 'name = "sigkill"\n' + SMALL + "[grid]\nseed = [0, 1]\n")
    sweep = load_sweep(spec)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    process = subprocess.Popen(_sweep_command(spec, killed, "--workers", "2"), start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint was written"
            records = [_record(killed, p.run_id) for p in sweep.points if (killed / p.run_id / "run.json").exists()]
            if any(r["status"] == "running" and r.get("latest_checkpoint") for r in records):
                break
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the client, its scheduler, workers and their ngspice
        process.wait()
    assert _record(killed, sweep.id)["status"] == "running"
    restarted = subprocess.run(_sweep_command(spec, killed), capture_output=True, text=True, timeout=600)
    assert restarted.returncode == 0, restarted.stderr
    assert main(["sweep", str(spec), "--store", str(clean), "--quiet", "--scheduler",
                 cluster.scheduler.address]) == 0
    assert _run_dirs(killed) == _run_dirs(clean) == sorted([*(p.run_id for p in sweep.points), sweep.id])
    assert any(_record(killed, p.run_id).get("resumed") for p in sweep.points)
    for point in sweep.points:
        assert _record(killed, point.run_id)["status"] == "complete"
        assert _part_summaries(killed, point.run_id) == _part_summaries(clean, point.run_id)
        for part in ("Cr-reset", "Cr-noreset"):
            rel = f"parts/{part}/devices.csv"
            assert (killed / point.run_id / rel).read_bytes() == (clean / point.run_id / rel).read_bytes()
    for table in ("runs", "over_seeds", "by_seed"):
        rel = f"{sweep.id}/tables/{table}.csv"
        assert (killed / rel).read_text() == (clean / rel).read_text()


def test_a_run_created_under_a_given_id_exists_once(tmp_path):
    from circuitnn.store import RunExistsError, StoreError

    store = RunStore(tmp_path)
    with store.create("train", {"a": 1}, seed=0, run_id="train-cr-0123456789abcdef") as run:
        run.complete({})
    with pytest.raises(RunExistsError, match="train-cr-0123456789abcdef exists already"):
        store.create("train", {"a": 2}, seed=0, run_id="train-cr-0123456789abcdef")
    for bad in ("../x", ".hidden", "a/b", ""):
        with pytest.raises(StoreError, match="run id"):
            store.create("train", {}, seed=0, run_id=bad)
    assert _run_dirs(tmp_path) == ["train-cr-0123456789abcdef"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".creating")] == []


def test_a_sweep_without_its_plan_is_reported_in_one_line(tmp_path, capsys):
    store = RunStore(tmp_path / "runs")
    with store.create("sweep", {}, seed=0, run_id="sweep-x-0123456789ab") as run:
        run.complete({})
    assert main(["report", "--sweep", run.id, "--store", str(store.root), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no plan yet" in err
    assert main(["report", "--sweep", "nope", "--store", str(store.root)]) == 2
    assert "no run 'nope'" in capsys.readouterr().err


# -- the report's figures, from synthetic rows shaped like run_rows' -----------------------------------
def _sweep_rows(axis: str, values: list, media=("Cr",), seeds=(0, 1)) -> list[dict]:
    """Rows of every medium, reset mode and seed at each value; accuracy 100 % everywhere, as small
    runs reach it on every mode, so equal values of the series are the rule, not the exception."""
    rows = []
    for value in values:
        for seed in seeds:
            point = {axis: value} if axis == "seed" else {axis: value, "seed": seed}
            for medium in media:
                for k, mode in enumerate(("without reset", "with reset")):
                    rows.append({"run_id": f"train-{medium}-{value}-{seed}", "values": point, "medium": medium,
                                 "seed": value if axis == "seed" else seed, "backend": "surrogate", "mode": mode,
                                 "chip_accuracy": 100.0, "training_time_s": 0.11 + 0.07 * k,
                                 "training_energy_total_J": 5e-8 * (1 + 5 * k), "pulses": 50.0 + 30 * k})
    return rows


def test_sweep_figure_by_seed_hides_no_series_and_ticks_whole_seeds():
    from circuitnn.reports.sweep_report import _against

    _, figure = _against(_sweep_rows("seed", [0, 1], media=("Cr", "W")), "seed")
    for ax in figure.axes:
        assert_no_marker_hidden(ax)
        xmin, xmax = ax.get_xlim()
        shown = [t for t in ax.get_xticks() if xmin <= t <= xmax]
        assert shown and all(float(t).is_integer() for t in shown), shown
        # Each series is told apart by its marker and colour, not only by where it sits.
        styles = [(c.lines[0].get_marker(), c.lines[0].get_color()) for c in ax.containers]
        assert len(styles) == len(set(styles)) == 4
    assert_legends_cover_no_data(figure)


@pytest.mark.parametrize("axis,values,words", [
    ("tuning.tolerance", [0.02, 0.1], ("tolerance", "relative")),
    ("circuit.neuron.activation_gain_per_V", [2.0, 4.0], ("activation gain", "1/V")),
])
def test_sweep_figure_names_the_swept_value_readably(axis, values, words):
    from circuitnn.reports.sweep_report import _against

    _, figure = _against(_sweep_rows(axis, values), axis)
    for ax in figure.axes:
        label = ax.get_xlabel()
        # Readable, with its unit, and still the config key a user can find in the spec.
        assert label != axis and axis in label and all(w in label for w in words), label
        assert_no_marker_hidden(ax)
    assert_legends_cover_no_data(figure)


def test_a_damaged_run_in_a_sweep_is_one_line_that_says_what_to_do(tmp_path, capfd):
    """A point whose stored run is damaged (the store never repairs one) fails the sweep in one line
    naming it and what to do; the workers' own logs of the failure do not follow it."""
    spec = _spec(tmp_path, 'name = "damaged"\n' + SMALL.replace('preset = "Cr"', 'preset = "Cr"\nbackend = "surrogate"')
                 + "[grid]\nseed = [0]\n")
    store = tmp_path / "runs"
    (point,) = load_sweep(spec).points
    (store / point.run_id).mkdir(parents=True)
    (store / point.run_id / "run.json").write_text("{")
    assert main(["sweep", str(spec), "--workers", "1", "--store", str(store), "--quiet"]) == 1
    err = capfd.readouterr().err
    assert err.count("\n") == 1, err
    assert f"damaged in the store ({point.run_id})" in err and "move their folders away" in err
