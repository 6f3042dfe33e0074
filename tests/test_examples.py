"""Every script in examples/ runs, as a user would run it, and prints what it promises."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))
# A line each example must print: the claim it demonstrates.
PROMISES = {
    "add_a_device_model.py": "-1.0 V: SPICE x =",
    "circuit_aware_mapping.py": "W   through the circuit  max activation error 0.0000 of full scale, 0 of 512",
    "pulse_trains_on_both_chips.py": "VTEAM",
    "write_verify_pcm.py": "SpiceChip: 30/30 devices within tolerance",
    "dgc_with_neuron_mismatch.py": "after DGC fine-tuning: 99.7% over all binary inputs",
}


def test_every_example_is_checked():
    assert {path.name for path in EXAMPLES} == set(PROMISES)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path, tmp_path):
    result = subprocess.run([sys.executable, str(path)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert PROMISES[path.name] in result.stdout
    assert "Warning" not in result.stderr and "Traceback" not in result.stderr
