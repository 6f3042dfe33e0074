"""No run is lost or silently changed: kills at every filesystem step leave runs that open, report
and resume; a changed byte is noticed; nothing outside the run is read; one writer at a time."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from circuitnn.spice import batch
from circuitnn.store import CorruptRunError, RunLockedError, RunStore, StoreError, format_run_table

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fixed_ngspice_version(monkeypatch):
    monkeypatch.setattr(batch, "ngspice_version", lambda: "test")


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


def _edit_record(run_dir: Path, change) -> None:
    record = json.loads((run_dir / "run.json").read_text())
    change(record)
    (run_dir / "run.json").write_text(json.dumps(record))


# -- paths from run.json stay inside the run ---------------------------------------------------------
@pytest.mark.parametrize("rel", ["../../../etc/passwd", "/etc/passwd", "a/../../x", ".lock", "sub\\..\\x"])
def test_recorded_paths_outside_the_run_make_it_corrupt(store, rel):
    run = store.create("train", {}, 1)
    run.complete({})
    _edit_record(run.path, lambda r: r["files"].update({rel: 1}))
    with pytest.raises(CorruptRunError, match="files entry"):
        store.open(run.id)
    listing = store.list()
    assert listing == [] and len(listing.skipped) == 1


def test_symlink_leading_out_of_the_run_is_not_followed(store, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for reports")
    run = store.create("train", {}, 1)
    run.write_text("notes.txt", "x" * len(secret.read_text()))
    run.complete({})
    (run.path / "notes.txt").unlink()
    os.symlink(secret, run.path / "notes.txt")
    with pytest.raises(CorruptRunError, match="notes.txt leads outside the run"):
        store.open(run.id)


# -- integrity -------------------------------------------------------------------------------------
def test_same_size_change_is_detected_at_open_and_read(store):
    run = store.create("train", {}, 1)
    run.write_json("summary.json", {"accuracy": 0.91})
    reader = store.open(run.id)
    run.complete({"accuracy": 0.91})
    path = run.path / "summary.json"
    path.write_text(path.read_text().replace("0.91", "0.99"))  # same size, different claim
    with pytest.raises(CorruptRunError, match="summary.json has changed since it was written"):
        store.open(run.id)
    with pytest.raises(CorruptRunError, match="summary.json has changed"):
        reader.read_json("summary.json")


def test_runs_without_hashes_stay_readable_by_size(store):
    run = store.create("train", {}, 1)
    run.write_text("log.txt", "abc")
    run.complete({})
    _edit_record(run.path, lambda r: r["files"].update({"log.txt": 3}))  # as written before hashes
    assert store.open(run.id).read_text("log.txt") == "abc"
    (run.path / "log.txt").write_text("abcd")
    with pytest.raises(CorruptRunError, match="log.txt has 4 bytes, 3 were written"):
        store.open(run.id)


def test_unrecorded_files_are_not_read(store):
    run = store.create("train", {}, 1)
    (run.path / "stray.txt").write_text("left by someone")
    with pytest.raises(StoreError, match="has no file 'stray.txt'"):
        run.read_text("stray.txt")


def test_overwrites_keep_the_record_exact(store):
    run = store.create("train", {}, 1)
    for i in range(3):
        run.write_json("summary.json", {"i": i})
        run.checkpoint("part", {"i": i}, {"x": np.full(2, i)})
    record = json.loads((run.path / "run.json").read_text())
    assert set(record["files"]["summary.json"]) == {"size", "sha256"}  # no "previous" left behind
    assert store.open(run.id).read_json("summary.json") == {"i": 2}
    assert run.files["summary.json"] == (run.path / "summary.json").stat().st_size


# -- one writer at a time ------------------------------------------------------------------------------
def test_a_run_being_written_is_locked(store):
    run = store.create("train", {}, 1)
    with pytest.raises(RunLockedError, match=rf"run {run.id} is being written by process {os.getpid()}"):
        store.resume(run.id)
    reader = store.open(run.id)  # reading is fine
    with pytest.raises(StoreError, match="not open for writing"):
        reader.write_text("x.txt", "x")
    run.close()
    again = store.resume(run.id)
    with pytest.raises(RunLockedError):
        store.resume(run.id)
    again.fail("stopped")
    store.resume(run.id).complete({})


HOLDER = """
import sys, time
from circuitnn.store import RunStore
run = RunStore(sys.argv[1]).resume(sys.argv[2])
print("holding", flush=True)
time.sleep(120)
"""


def test_second_writer_gets_one_line_naming_run_and_holder(store):
    run = store.create("train", {}, 1)
    run.close()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store.root), run.id], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        done = subprocess.run([sys.executable, "-m", "circuitnn.cli", "train", "--resume", run.id,
                               "--store", str(store.root), "--quiet"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1 and run.id in done.stderr and f"process {holder.pid}" in done.stderr
    finally:
        holder.kill()
        holder.wait()
    store.resume(run.id).close()  # the OS dropped the killed holder's lock


# -- listing survives bad records and index rows ----------------------------------------------------------
@pytest.mark.parametrize("damage", [
    lambda r: r.update(labels={"medium": 3}), lambda r: r.update(summary=[1, 2]),
    lambda r: r.update(created="yesterday"), lambda r: r.update(name={"a": 1}),
    lambda r: r.update(latest_checkpoint="nope"), lambda r: r.update(seed=True),
    lambda r: r.update(error="two\nlines"),
])
def test_one_malformed_record_is_skipped_in_one_line(store, damage):
    good = store.create("train", {}, 1, {"medium": "Cr"})
    bad = store.create("train", {}, 2)
    for run in (good, bad):
        run.complete({"accuracy": 0.5})
    _edit_record(bad.path, damage)
    listing = store.list()
    table = format_run_table(listing, listing.skipped)
    if listing.skipped:
        assert [i.id for i in listing] == [good.id]
        assert [line for line in table.splitlines() if line.startswith("skipped")] == [
            line for line in table.splitlines() if bad.id in line]
    else:  # a text field with a line break is valid: it is shown on one line
        assert table.count(bad.id) == 1 and len(table.splitlines()) == 3


def test_malformed_index_rows_are_read_again_from_the_runs(store):
    runs = [store.create("train", {}, seed, {"medium": m}) for seed, m in enumerate(["W", "Cr"])]
    expected = [info.id for info in store.list()]
    db = sqlite3.connect(store.root / "index.sqlite")
    with db:
        db.execute("UPDATE runs SET record = '{not json' WHERE id = ?", (runs[0].id,))
        db.execute("UPDATE runs SET record = '[1, 2]' WHERE id = ?", (runs[1].id,))
    db.close()
    listing = RunStore(store.root).list()
    assert [info.id for info in listing] == expected and listing.skipped == []


def test_a_file_as_the_store_is_an_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="not a folder of runs"):
        RunStore(tmp_path / "file").list()
    assert RunStore(tmp_path / "missing").list() == []


# -- kills at every filesystem step ------------------------------------------------------------------------
ZYGOTE = textwrap.dedent("""
    import json, os, signal, sys
    import numpy as np
    from circuitnn.store import RunStore, runs

    runs.collect_versions = lambda: {"circuitnn": "test"}  # no ngspice process per run

    def workload(root):
        run = RunStore(root).create("train", {"a": 1}, seed=0)
        run.write_json("plan.json", {"parts": ["tuning"]})
        for i in (1, 2, 3):
            run.checkpoint("tuning", {"i": i}, {"x": np.full(3, float(i))})
            run.write_json("summary.json", {"i": i})  # the same size each time
        run.write_csv("result.csv", {"i": [1, 2, 3]})
        run.complete({"i": 3})

    def main(base):
        killed_at = []
        for k in range(1, 1000):
            pid = os.fork()
            if pid == 0:
                steps = [0]
                def counted(function):
                    def wrapper(*args, **kwargs):
                        result = function(*args, **kwargs)
                        steps[0] += 1
                        if steps[0] == k:
                            os.kill(os.getpid(), signal.SIGKILL)
                        return result
                    return wrapper
                for name in ("fsync", "replace", "rename", "unlink"):
                    setattr(os, name, counted(getattr(os, name)))
                workload(os.path.join(base, f"k{k:03d}"))
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
                break
            killed_at.append(k)
        print(json.dumps(killed_at))

    main(sys.argv[1])
""")


def _finish(run) -> None:
    """What the workload does after its last checkpoint, as a resumed writer would."""
    checkpoint = run.load_checkpoint()
    done = 0 if checkpoint is None else checkpoint[0]["i"]
    if "plan.json" not in run.files:
        run.write_json("plan.json", {"parts": ["tuning"]})
    for i in range(done + 1, 4):
        run.checkpoint("tuning", {"i": i}, {"x": np.full(3, float(i))})
        run.write_json("summary.json", {"i": i})
    if done == 3 and run.read_json("summary.json") != {"i": 3}:
        run.write_json("summary.json", {"i": 3})
    run.write_csv("result.csv", {"i": [1, 2, 3]})
    run.complete({"i": 3})


def test_sigkill_at_every_filesystem_step_leaves_a_run_that_reports_and_resumes(tmp_path):
    done = subprocess.run([sys.executable, "-c", ZYGOTE, str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    killed_at = json.loads(done.stdout)
    assert len(killed_at) > 40  # every step of create, write, overwrite, checkpoint and complete
    overwrites_seen = 0
    for k in [*killed_at, killed_at[-1] + 1]:
        store = RunStore(tmp_path / f"k{k:03d}")
        listing = store.list()
        assert listing.skipped == [], (k, listing.skipped)
        if not listing:
            continue  # killed before the run appeared: nothing to lose
        (info,) = listing
        record = json.loads((info.path / "run.json").read_text())
        overwrites_seen += any("previous" in e for e in record["files"].values() if isinstance(e, dict))
        reader = store.open(info.id)  # what `report` does
        for rel in reader.files:
            reader.read_bytes(rel)
        if info.status == "running":
            state = reader.load_checkpoint()
            if state is not None:  # state and arrays always from the same save
                np.testing.assert_array_equal(state[1]["x"], np.full(3, float(state[0]["i"])))
            run = store.resume(info.id)
            assert not [p for p in info.path.rglob(".*.tmp")]
            _finish(run)
        final = store.open(info.id)
        assert final.status == "complete" and final.read_json("summary.json") == {"i": 3}
        assert final.load_checkpoint()[0] == {"i": 3}
        np.testing.assert_array_equal(final.read_csv("result.csv")["i"], [1, 2, 3])
    assert overwrites_seen >= 4  # kills landed inside overwrites, not only between them


def test_cli_run_killed_mid_part_resumes(tmp_path):
    """The reported case: a real run killed between checkpoint overwrites resumes and reports."""
    store = tmp_path / "runs"
    command = [sys.executable, "-m", "circuitnn.cli", "train", "--backend", "surrogate", "--medium", "Cr",
               "--store", str(store), "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(store.glob("*/checkpoints/*.npz")) and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    (info,) = RunStore(store).list()
    assert info.status == "running"
    resumed = subprocess.run([*command[:4], "--resume", info.id, "--store", str(store), "--quiet"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    report = subprocess.run([sys.executable, "-m", "circuitnn.cli", "report", info.id, "--store", str(store),
                             "--out", str(tmp_path / "reports")], capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    assert RunStore(store).open(info.id).status == "complete"


def test_a_reader_of_a_run_being_written_sees_no_damage_that_is_not_there(tmp_path, monkeypatch):
    """A process reading a run (a report, a sweep looking at its points) while another overwrites a
    file in it holds a record older than the file: it reads run.json again instead of calling the
    run corrupt. A file run.json does not accept stays damage."""
    from circuitnn.store import runs

    store = RunStore(tmp_path)
    writer = store.create("train", {}, seed=0)
    writer.write_json("summary.json", {"k": 0})
    real, overwrite = runs.read_record, [True]

    def read_record(run_dir):  # the writer overwrites summary.json just after the reader read run.json
        record = real(run_dir)
        if overwrite[0]:
            overwrite[0] = False
            writer.write_json("summary.json", {"k": 1})
        return record

    monkeypatch.setattr(runs, "read_record", read_record)
    reader = store.open(writer.id)
    assert reader.read_json("summary.json") == {"k": 1}
    writer.write_json("summary.json", {"k": 2})  # after the reader's record
    assert reader.read_json("summary.json") == {"k": 2}
    writer.complete({})
    (tmp_path / writer.id / "summary.json").write_text(json.dumps({"k": 3}, indent=2))  # same size: the hash tells
    with pytest.raises(CorruptRunError, match="summary.json has changed"):
        store.open(writer.id)
    with pytest.raises(CorruptRunError, match="summary.json has changed"):
        reader.read_json("summary.json")


def test_the_run_table_tells_a_killed_running_run_from_one_being_written(tmp_path):
    store = RunStore(tmp_path)
    killed = store.create("train", {}, seed=0)
    killed.close()  # what a SIGKILL leaves: status "running", nobody holding the lock
    alive = store.create("train", {}, seed=1)
    try:
        table = format_run_table(store.list())
        row = {line.split()[0]: line for line in table.splitlines()[1:]}
        assert "stopped: no process writes it" in row[killed.id] and "--resume" in row[killed.id]
        assert f"being written by process {os.getpid()}" in row[alive.id]
        assert store.resume(killed.id).writable  # the listing held no lock
    finally:
        alive.close()


def test_ctrl_c_while_a_run_is_created_leaves_nothing(tmp_path, monkeypatch):
    """Stopped before the run appears (its folder is still hidden), creation leaves no folder behind."""
    from circuitnn.store import runs

    real = runs.write_atomic

    def write_atomic(path, write):
        if path.parent.name.startswith(".creating-") and path.name == "run.json":
            raise KeyboardInterrupt
        return real(path, write)

    monkeypatch.setattr(runs, "write_atomic", write_atomic)
    with pytest.raises(KeyboardInterrupt):
        RunStore(tmp_path).create("train", {}, seed=0, files={"plan.json": {"parts": []}})
    assert list(tmp_path.iterdir()) == []
