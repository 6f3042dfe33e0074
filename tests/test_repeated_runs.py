"""The same command run again into the same store: a new run, never a change to the stored one, and one
line naming the run it repeats (complete: its report; unfinished: the command that resumes it)."""

from __future__ import annotations

from circuitnn.cli import main
from circuitnn.store import RunStore
from circuitnn.store import runs as store_runs

from stop_after import interrupted_after


SMALL = '[onchip]\nn_test_per_class = 8\nconductance_errors = [0.0, 0.1]\nerror_draws = 1\n'


def _train(store, seed: int = 0) -> list[str]:
    config = store / f"seed{seed}.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'preset = "Cr"\nseed = {seed}\n{SMALL}')
    return ["train", "--config", str(config), "--backend", "surrogate", "--store", str(store / "runs"), "--quiet"]


def test_the_same_command_again_names_the_complete_run_it_repeats(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(store_runs, "collect_versions", lambda: {"circuitnn": "test"})
    assert main(_train(tmp_path)) == 0
    first = RunStore(tmp_path / "runs").open(RunStore(tmp_path / "runs").list()[0].id)
    stored = {rel: first.read_bytes(rel) for rel in first.files}
    capsys.readouterr()

    assert main(_train(tmp_path)) == 0
    err = capsys.readouterr().err
    second = next(info for info in RunStore(tmp_path / "runs").list() if info.id != first.id)
    assert err.count("\n") == 1, err
    assert f"run {second.id} repeats {first.id}" in err and f"circuitnn report {first.id}" in err
    again = RunStore(tmp_path / "runs").open(first.id)  # checked against its hashes: untouched
    assert again.status == "complete" and {rel: again.read_bytes(rel) for rel in again.files} == stored
    assert second.summary == first.info.summary  # same seed, same numbers (another seed: the last test)


def test_the_same_command_after_an_interrupt_says_how_to_resume(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(store_runs, "collect_versions", lambda: {"circuitnn": "test"})
    with interrupted_after(3, monkeypatch):
        assert main(_train(tmp_path)) == 130
    interrupted = RunStore(tmp_path / "runs").list()[0]
    assert interrupted.status == "interrupted"
    capsys.readouterr()
    assert main(_train(tmp_path)) == 0
    err = capsys.readouterr().err
    assert f"repeats {interrupted.id}" in err and f"circuitnn train --resume {interrupted.id} --store {tmp_path / 'runs'}" in err


def test_runs_repeat_only_with_the_same_kind_config_seed_labels_and_plan(tmp_path):
    seen = []
    store = RunStore(tmp_path, on_repeat=lambda run, earlier: seen.append((run.id, [e.id for e in earlier])))

    def make(kind="train", config=None, seed=0, labels=None, plan=None):
        run = store.create(kind, config or {"a": 1}, seed=seed, labels=labels or {"m": "Cr"},
                           files={"plan.json": plan or {"parts": ["x"]}})
        run.complete({})
        return run.id

    base = make()
    for changed in (make(kind="other"), make(config={"a": 2}), make(seed=1), make(labels={"m": "W"}),
                    make(plan={"parts": ["y"]})):
        assert changed not in [new for new, _ in seen]
    repeat = make()
    assert seen == [(repeat, [base])]
    assert RunStore(tmp_path).open(repeat).read_json("plan.json") == {"parts": ["x"]}
