"""The store of runs: every experiment run kept on disk, so reports regenerate without simulating.

A run is a directory ``<root>/<run_id>/`` (runs.py): ``run.json`` (kind, config, seed, versions,
labels, status, summary), the netlists it simulated, CSV/NPZ results, PNG figures and resumable
checkpoints, every file written atomically. ``<root>/index.sqlite`` (index.py) makes listing and
filtering fast; it is rebuilt from the directories whenever it is missing or damaged.

    store = RunStore(Path("runs"))
    with store.create("train", config.as_dict(), seed=config.seed, labels={"medium": "Cr"},
                      files={"plan.json": plan}) as run:
        run.write_netlists(chip.netlists())
        run.checkpoint("epoch-0001", {"epoch": 1}, {"states": chip.states})
        run.write_csv("loss.csv", {"epoch": epochs, "loss": losses})
        run.complete({"accuracy": 0.93})
    print(format_run_table(listing := store.list(labels={"medium": "Cr"}), listing.skipped))

An exception leaving the ``with`` block marks the run failed (Ctrl-C: interrupted, raising
``RunInterrupted``); ``store.resume(run_id)`` reopens it and ``run.load_checkpoint()`` returns the
latest (state, arrays) to continue from. A run is locked while one process writes it
(``RunLockedError`` for a second writer); every file is checked against the SHA-256 run.json
records; a kill at any point leaves a run that opens, reports and resumes. What a resume reads first
(the plan) is given to ``create(files=...)``, so a run never exists without it. Runs of the same
kind, config, seed, labels and plan share a ``fingerprint``; ``RunStore(root, on_repeat=...)`` hears
when a new run repeats stored ones.
"""

from .runs import (
    CorruptRunError,
    Run,
    RunInfo,
    RunListing,
    RunExistsError,
    RunInterrupted,
    RunLock,
    RunLockedError,
    RunStore,
    StoreError,
    format_run_table,
    write_atomic,
)

__all__ = ["CorruptRunError", "Run", "RunInfo", "RunExistsError", "RunInterrupted", "RunListing", "RunLock", "RunLockedError",
           "RunStore", "StoreError", "format_run_table", "write_atomic"]
