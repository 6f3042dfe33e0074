"""The store of runs: create, list and filter; atomic writes; resume; damaged runs and index."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from circuitnn.spice import batch
from circuitnn.store import CorruptRunError, RunStore, StoreError, format_run_table
from circuitnn.store import runs as runs_module

CONFIG = {"device": {"medium": "Cr", "r_on_ohm": 1e3}, "training": {"epochs": 3}}


@pytest.fixture(autouse=True)
def fixed_ngspice_version(monkeypatch):
    """No ngspice process per created run: the tests stay fast and do not need ngspice."""
    monkeypatch.setattr(batch, "ngspice_version", lambda: "test")


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


def visible_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_create_writes_record_with_provenance(store):
    run = store.create("train", CONFIG, seed=7, labels={"medium": "Cr"})
    assert re.fullmatch(r"\d{8}-\d{6}-train-cr-[0-9a-f]{4}", run.id)
    record = json.loads((run.path / "run.json").read_text())
    assert record["status"] == "running" and record["seed"] == 7 and record["config"] == CONFIG
    assert record["labels"] == {"medium": "Cr"}
    assert datetime.fromisoformat(record["created"]).utcoffset().total_seconds() == 0
    assert set(record["versions"]) == {"circuitnn", "ngspice", "python", "numpy", "scipy", "matplotlib"}
    assert record["versions"]["ngspice"] == "test"
    assert run.path.parent == store.root and not [p for p in store.root.iterdir() if p.name.startswith(".")]


def test_ngspice_failure_is_recorded_as_unavailable(store, monkeypatch):
    def broken():
        raise batch.NgspiceNotFoundError("no ngspice here")

    monkeypatch.setattr(batch, "ngspice_version", broken)
    assert store.create("train", CONFIG, seed=1).info.versions["ngspice"] == "unavailable"


def test_list_filters_by_kind_status_and_label_newest_first(store):
    cr = store.create("train", CONFIG, 1, {"medium": "Cr"})
    w = store.create("train", CONFIG, 2, {"medium": "W"})
    media = store.create("compare-media", CONFIG, 3, {"medium": "all"}, name="three media")
    cr.complete({"accuracy": 0.91})
    w.fail("did not converge")

    assert [info.id for info in store.list()] == [media.id, w.id, cr.id]
    assert [info.id for info in store.list(kind="train")] == [w.id, cr.id]
    assert [info.id for info in store.list(status="complete")] == [cr.id]
    assert [info.id for info in store.list(labels={"medium": "Cr"})] == [cr.id]
    assert store.list(kind="train", labels={"medium": "all"}) == []
    assert store.list(kind="train", status="failed")[0].error == "did not converge"
    assert store.list(kind="compare-media")[0].name == "three media"
    with pytest.raises(StoreError, match="one of running, complete, failed"):
        store.list(status="done")

    table = format_run_table(store.list())
    assert cr.id in table and "medium=Cr" in table and "accuracy=0.91" in table
    assert "error: did not converge" in table


def test_files_round_trip_and_are_recorded(store):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = store.create("train", CONFIG, 1)
    run.write_json("summary/extra.json", {"energy_J": np.float64(1.5e-9), "states": np.arange(3)})
    run.write_csv("loss.csv", {"epoch": np.arange(3), "loss": [0.5, 0.25, 0.125]})
    run.write_csv("rows.csv", [{"medium": "Cr", "accuracy": np.float64(0.9)}, {"medium": "W"}])
    run.write_npz("states.npz", states=np.linspace(0, 1, 6).reshape(2, 3))
    run.write_netlists({"crossbar_9x3.cir": "* crossbar\n.end\n"})
    figure, axes = plt.subplots()
    axes.plot([0, 1], [1, 0])
    run.save_figure("figures/loss.png", figure)
    plt.close(figure)

    again = store.open(run.id)
    assert again.read_json("summary/extra.json") == {"energy_J": 1.5e-9, "states": [0, 1, 2]}
    loss = again.read_csv("loss.csv")
    np.testing.assert_array_equal(loss["loss"], [0.5, 0.25, 0.125])
    rows = again.read_csv("rows.csv")
    assert list(rows["medium"]) == ["Cr", "W"]
    assert rows["accuracy"][0] == 0.9 and np.isnan(rows["accuracy"][1])  # the missing cell
    np.testing.assert_array_equal(again.read_npz("states.npz")["states"], np.linspace(0, 1, 6).reshape(2, 3))
    assert again.read_text("netlists/crossbar_9x3.cir").startswith("* crossbar")
    assert again.read_bytes("figures/loss.png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(again.files) == {"summary/extra.json", "loss.csv", "rows.csv", "states.npz",
                                "netlists/crossbar_9x3.cir", "figures/loss.png"}
    with pytest.raises(StoreError, match="columns must be 1-D and equally long"):
        run.write_csv("bad.csv", {"a": [1, 2], "b": [1]})


def test_interrupted_write_leaves_old_file_and_no_partial_file(store, monkeypatch):
    run = store.create("train", CONFIG, 1)
    run.write_text("results/log.txt", "old\n")
    before = visible_files(run.path)

    class CrashingFigure:  # writes half a PNG, then the process "dies"
        def savefig(self, handle, **options):
            handle.write(b"\x89PNG half")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run.save_figure("results/plot.png", CrashingFigure())

    def crash_before_replace(fd):  # the bytes are written, the rename never happens
        raise OSError("disk went away")

    monkeypatch.setattr(runs_module.os, "fsync", crash_before_replace)
    with pytest.raises(OSError, match="disk went away"):
        run.write_text("results/log.txt", "new, never visible\n")
    with pytest.raises(OSError, match="disk went away"):
        run.complete({"accuracy": 1.0})  # the run.json rewrite is interrupted the same way
    monkeypatch.undo()

    assert visible_files(run.path) == before  # no partial file, no temporary left behind
    assert (run.path / "results/log.txt").read_text() == "old\n"
    again = store.open(run.id)  # run.json intact and still consistent with the files
    assert again.status == "running" and set(again.files) == {"results/log.txt"}


def test_resume_continues_from_latest_checkpoint(store):
    run = store.create("train", CONFIG, 1, {"medium": "W"})
    run.checkpoint("epoch-0001", {"epoch": 1, "loss": 0.5}, {"states": np.full((3, 2), 0.1)})
    run.checkpoint("epoch-0002", {"epoch": 2, "loss": 0.25}, {"states": np.full((3, 2), 0.2)})
    assert run.load_checkpoint("missing") is None
    del run  # the process is killed: the run stays "running"

    resumed = store.resume(store.list()[0].id)
    assert resumed.status == "running" and resumed.latest_checkpoint == "epoch-0002"
    state, arrays = resumed.load_checkpoint()
    assert state == {"epoch": 2, "loss": 0.25}
    np.testing.assert_array_equal(arrays["states"], np.full((3, 2), 0.2))
    assert resumed.load_checkpoint("epoch-0001")[0]["epoch"] == 1

    with pytest.raises(RuntimeError), resumed:  # a failure inside the block marks the run failed
        raise RuntimeError("engine crashed")
    assert store.open(resumed.id).info.error == "RuntimeError: engine crashed"
    again = store.resume(resumed.id)
    assert again.status == "running" and again.info.error is None
    assert again.load_checkpoint()[0]["epoch"] == 2
    again.checkpoint("epoch-0003", {"epoch": 3})
    assert store.open(again.id).load_checkpoint() == ({"epoch": 3}, {})


def test_complete_run_cannot_be_resumed_or_written(store):
    run = store.create("train", CONFIG, 1)
    run.complete({"accuracy": 0.9})
    with pytest.raises(StoreError, match=f"run {run.id} is complete and cannot be resumed"):
        store.resume(run.id)
    with pytest.raises(StoreError, match="is complete"):
        run.write_text("late.txt", "x")
    with pytest.raises(StoreError, match="no run 'nope'"):
        store.open("nope")


@pytest.mark.parametrize("bad", ["../escape.txt", "a/../../escape.txt", "/tmp/escape.txt", "run.json",
                                 ".hidden", "checkpoints/fake.npz", ""])
def test_paths_outside_the_run_are_refused(store, bad):
    run = store.create("train", CONFIG, 1)
    with pytest.raises(StoreError, match="relative to the run directory"):
        run.write_text(bad, "x")
    assert not (store.root / "escape.txt").exists() and not Path("/tmp/escape.txt").exists()


def test_symlink_out_of_the_run_is_refused(store, tmp_path):
    run = store.create("train", CONFIG, 1)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, run.path / "link")
    with pytest.raises(StoreError, match="symbolic link"):
        run.write_text("link/escape.txt", "x")
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("damage, problem", [
    (lambda path: path.write_text('{"id": "x", "kind": '), "cannot be read"),
    (lambda path: path.write_text(json.dumps({"kind": "train"})), "incomplete: it lacks id, created"),
    (lambda path: path.unlink(), "run.json is missing"),
])
def test_corrupt_run_is_named_and_listing_skips_it(store, damage, problem):
    good = store.create("train", CONFIG, 1)
    bad = store.create("train", CONFIG, 2)
    store.list()  # indexed while still fine: the damage must be noticed anyway
    damage(bad.path / "run.json")

    with pytest.raises(CorruptRunError, match=problem) as caught:
        store.open(bad.id)
    assert isinstance(caught.value, StoreError) and str(bad.path) in str(caught.value)
    listing = store.list()
    assert [info.id for info in listing] == [good.id]
    assert [error.run_dir for error in listing.skipped] == [bad.path]
    assert f"skipped {bad.id}" in format_run_table(listing, listing.skipped)
    assert bad.path.is_dir()  # reported, never removed


def test_missing_result_file_makes_run_corrupt(store):
    run = store.create("train", CONFIG, 1)
    run.write_csv("loss.csv", {"loss": [1.0]})
    (run.path / "loss.csv").unlink()
    with pytest.raises(CorruptRunError, match="loss.csv is missing"):
        store.open(run.id)
    with pytest.raises(CorruptRunError, match="loss.csv is missing"):
        run.read_csv("loss.csv")


@pytest.mark.parametrize("damage", ["delete", "garbage"])
def test_missing_or_corrupt_index_is_rebuilt(store, damage):
    runs = [store.create("train", CONFIG, seed, {"medium": medium})
            for seed, medium in enumerate(["W", "Cr", "C"])]
    runs[1].complete({"accuracy": 0.8})
    expected = [info.id for info in store.list()]
    index = store.root / "index.sqlite"
    assert index.exists()

    if damage == "delete":
        index.unlink()
    else:
        index.write_bytes(os.urandom(4096))
    # The same store (its connection now points at garbage or at nothing) and a fresh one both recover.
    assert [info.id for info in store.list()] == expected
    assert index.exists()
    assert [info.id for info in RunStore(store.root).list(labels={"medium": "Cr"})] == [runs[1].id]
    assert [info.id for info in store.reindex()] == expected
    if damage == "garbage":
        assert (store.root / "index.sqlite.corrupt").exists()  # set aside for inspection


def test_index_follows_edits_to_run_directories(store):
    run = store.create("train", CONFIG, 1, {"medium": "Cr"})
    assert store.list(labels={"medium": "Cr"})
    record = json.loads((run.path / "run.json").read_text())
    record["labels"] = {"medium": "PCM"}  # a person relabels the run by hand
    (run.path / "run.json").write_text(json.dumps(record))
    assert store.list(labels={"medium": "Cr"}) == []
    assert [info.id for info in store.list(labels={"medium": "PCM"})] == [run.id]


@pytest.mark.parametrize("kind", ["", "a\nb", "../x", "Train", "x" * 21, "train\u2028", 3])
def test_a_run_kind_is_one_plain_word(store, kind):
    """The kind is what `circuitnn runs --kind` matches and what picks the report builder."""
    with pytest.raises(StoreError, match="run kind"):
        store.create(kind, {}, seed=0)
    assert not store.root.exists()  # refused before anything was made
