"""Ctrl-C on a real SPICE run: one line saying what was saved and how to continue, a resumable run,
and --resume finishing it."""

import json
import os
import re
import signal
import subprocess
import sys
import time

from circuitnn.cli import main
from circuitnn.store import RunStore
from conftest import SMALL_REPRODUCTION_TOML


def _without_progress_bars(stderr: str) -> list[str]:
    """The lines of ``stderr`` that are not tqdm's: a bar redraws itself after carriage returns."""
    lines = []
    for line in stderr.split("\n"):
        text = line.rsplit("\r", 1)[-1].strip()
        if text and not re.search(r"\d+/\d+ \[", text):
            lines.append(text)
    return lines


def _first_checkpoint(store, process, timeout_s: float = 120.0) -> None:
    """Wait until the run has saved a checkpoint (so there is something to resume from)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run finished before it could be interrupted"
        for record in store.glob("*/run.json"):
            try:
                if json.loads(record.read_text()).get("latest_checkpoint"):
                    return
            except (OSError, ValueError):
                pass  # being replaced right now
        time.sleep(0.05)
    raise AssertionError("no checkpoint within the timeout")


def test_sigint_stops_a_spice_run_in_one_line_and_resume_completes_it(tmp_path):
    config = tmp_path / "small.toml"
    config.write_text(SMALL_REPRODUCTION_TOML)
    store = tmp_path / "runs"
    command = [sys.executable, "-m", "circuitnn.cli", "train", "--config", str(config), "--store", str(store)]
    # Its own process group, as a terminal's Ctrl-C reaches the command and its ngspice workers; SIGINT
    # restored in case this test runs where it is ignored (a shell's background job).
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        _first_checkpoint(store, process)
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, stderr
    (info,) = RunStore(store).list()
    lines = _without_progress_bars(stderr)
    assert len(lines) == 1, stderr
    assert lines[0] == (f"circuitnn: interrupted; run {info.id} saved "
                        + lines[0].split(" saved ", 1)[1].split(" in ", 1)[0]
                        + f" in {store / info.id} (status interrupted); continue with: "
                        f"circuitnn train --resume {info.id} --store {store}")
    assert "checkpoint" in lines[0]
    assert info.status == "interrupted" and info.latest_checkpoint is not None
    # ...and the exact command it printed finishes the run.
    resume = lines[0].split("continue with: circuitnn ", 1)[1].split()
    assert main([*resume, "--quiet"]) == 0
    run = RunStore(store).open(info.id)
    assert run.status == "complete" and run.info.summary["Cr_noreset_accuracy"] >= 0.9
    assert [r["status"] for r in run._record["resumed"]] == ["interrupted"]


def test_ctrl_c_between_a_file_and_its_record_leaves_a_run_that_resumes(tmp_path, monkeypatch):
    """The checkpoint is replaced, then Ctrl-C arrives before run.json records its new size: the
    interrupt waits until the record is written, so the run opens and resumes from that checkpoint."""
    import numpy as np
    import pytest

    from circuitnn.store import RunInterrupted, runs

    written = []
    original = runs._replace

    def replace_then_interrupt(temporary, path):
        original(temporary, path)
        written.append(path.name)
        if path.name == "a.npz" and written.count("a.npz") == 2:
            os.kill(os.getpid(), signal.SIGINT)  # as a terminal's Ctrl-C, between the file and its record
    monkeypatch.setattr(runs, "_replace", replace_then_interrupt)
    store = RunStore(tmp_path)
    with pytest.raises(RunInterrupted):
        with store.create("train", {}, seed=0) as run:
            run.checkpoint("a", {"step": 1}, {"x": np.zeros(3)})
            run.checkpoint("a", {"step": 2}, {"x": np.zeros(300)})
            run.write_text("never.txt", "not reached")
    reopened = store.resume(run.id)  # a size mismatch would raise CorruptRunError here
    state, arrays = reopened.load_checkpoint()
    assert state == {"step": 2} and arrays["x"].shape == (300,)
    assert "never.txt" not in reopened.files
