"""A reproduction run killed with SIGKILL anywhere — between two devices, inside a checkpoint overwrite,
between a checkpoint and the run.json that records it — resumes to exactly the uninterrupted run:
every stored file of every part byte for byte, on the surrogate and in SPICE, for a model that ages
(PCM: drift exponents, the chip clock and the read-noise stream must all be restored) and for an
M-SDC medium."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from circuitnn.experiments import reproduction
from circuitnn.experiments.config import load_config
from circuitnn.store import RunStore

SMALL = '[onchip]\nn_test_per_class = 8\nconductance_errors = [0.0, 0.1]\nerror_draws = 1\n'

# Runs the reproduction and SIGKILLs itself at a chosen point: after the k-th filesystem replace
# ("step"), or right after the k-th checkpoint file is in place, before run.json records it
# ("checkpoint").
DRIVER = textwrap.dedent("""
    import os, signal, sys
    from circuitnn.experiments import reproduction
    from circuitnn.experiments.config import load_config
    from circuitnn.store import RunStore, runs

    runs.collect_versions = lambda: {"circuitnn": "test"}
    store, config_path, backend, mode, k = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    seen = [0]
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        real_replace(src, dst, *args, **kwargs)
        if mode == "step" or (mode == "checkpoint" and "checkpoints" in str(dst)):
            seen[0] += 1
            if seen[0] == k:
                os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace
    reproduction.run_reproduction(RunStore(store), [load_config(config_path)], "train", progress=False,
                                  backend=backend, checkpoint_every_s=0)
""")


def _files(run) -> dict[str, bytes]:
    return {rel: run.read_bytes(rel) for rel in sorted(run.files) if rel.startswith("parts/")}


@pytest.fixture(scope="module")
def config_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("configs")
    paths = {}
    for medium in ("PCM", "Cr"):
        paths[medium] = folder / f"{medium}.toml"
        paths[medium].write_text(f'preset = "{medium}"\n{SMALL}')
    return paths


@pytest.mark.parametrize("medium, backend, kills", [
    ("PCM", "surrogate", [("step", 3), ("step", 20), ("checkpoint", 1), ("checkpoint", 7), ("step", 61),
                          ("checkpoint", 30), ("checkpoint", 31), ("step", 140), ("checkpoint", 59)]),
    ("Cr", "surrogate", [("checkpoint", 12), ("step", 97)]),
    ("PCM", "spice", [("checkpoint", 4), ("step", 75), ("checkpoint", 45)]),
])
def test_a_killed_run_resumes_to_the_uninterrupted_run(tmp_path, config_files, medium, backend, kills):
    config = load_config(config_files[medium])
    reference = reproduction.run_reproduction(RunStore(tmp_path / "reference"), [config], "train",
                                              progress=False, backend=backend)
    expected = _files(reference)
    assert len(expected) >= 10
    for mode, k in kills:
        store = tmp_path / f"{mode}-{k}"
        done = subprocess.run([sys.executable, "-c", DRIVER, str(store), str(config_files[medium]), backend, mode,
                               str(k)], capture_output=True, text=True, timeout=600)
        assert done.returncode == -signal.SIGKILL, (mode, k, done.returncode, done.stderr[-2000:])
        (info,) = RunStore(store).list()
        assert info.status == "running"
        record = json.loads((info.path / "run.json").read_text())
        resumed = reproduction.run_reproduction(RunStore(store), [], "train", resume=info.id, progress=False)
        assert resumed.status == "complete"
        got = _files(resumed)
        assert got.keys() == expected.keys(), (mode, k)
        for rel in expected:
            assert got[rel] == expected[rel], (mode, k, rel, record.get("latest_checkpoint"))
        assert not any(name.endswith(".tmp") for _, _, names in os.walk(info.path) for name in names)
