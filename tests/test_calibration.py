"""Surrogate calibration against SPICE, and the reproduction cross-checked on both backends."""

import pytest

from circuitnn.chip.surrogate_chip import SurrogateChip
from circuitnn.circuits.crossbar import Crossbar
from circuitnn.cli import main
from circuitnn.experiments import calibration_fit as cal
from circuitnn.experiments import reproduction
from circuitnn.experiments.calibration import load_calibration, run_calibration
from circuitnn.experiments.config import load_config
from circuitnn.reports.onchip_report import write_report
from circuitnn.store import RunStore


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return RunStore(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def calibration_run(store):
    return run_calibration(store, load_config(None, "Cr"), progress=False)


def test_held_out_errors_meet_the_targets(calibration_run):
    rows = calibration_run.read_csv("errors.csv")
    errors = dict(zip(rows["measure"], rows["calibrated"]))
    assert errors["current_rms_relative"] <= cal.TARGETS["current_rms_relative"]
    assert errors["state_max_abs"] <= cal.TARGETS["state_max_abs"]
    assert errors["energy_max_relative"] <= cal.TARGETS["energy_max_relative"]
    assert "parity.png" in calibration_run.files and "experiments.npz" in calibration_run.files


def test_surrogate_results_name_their_calibration(store, calibration_run):
    calibration = load_calibration(store, calibration_run.id)
    assert calibration.name == calibration_run.id and "SPICE experiments" in calibration.source
    config = load_config(None, "Cr")
    chip = SurrogateChip(Crossbar(config.crossbar_spec()), [0.5] * 30, calibration=calibration)
    assert chip.describe()["calibration"] == calibration_run.id


def test_reproduction_on_the_surrogate_matches_spice(store, calibration_run, small_config):
    config = small_config
    calibration = load_calibration(store, calibration_run.id)
    spice = reproduction.run_reproduction(store, [config], "train", progress=False, write_report=write_report)
    surrogate = reproduction.run_reproduction(store, [config], "train", progress=False, write_report=write_report,
                                              backend="surrogate", calibration=calibration)
    assert surrogate.info.labels["calibration"] == calibration_run.id
    assert calibration_run.id in surrogate.read_text("report.md")
    for part in ("Cr-reset", "Cr-noreset"):
        a, b = spice.read_json(f"parts/{part}/summary.json"), surrogate.read_json(f"parts/{part}/summary.json")
        assert abs(a["chip_accuracy"] - b["chip_accuracy"]) <= 0.02
        for key in ("training_time_s", "training_energy_total_J", "training_energy_device_J"):
            assert b[key] == pytest.approx(a[key], rel=0.05), key


def test_cli_calibrate_and_unknown_calibration(store, capsys):
    assert main(["train", "--medium", "Cr", "--store", str(store.root), "--backend", "surrogate",
                 "--calibration", "no-such-run"]) == 2
    assert "no-such-run" in capsys.readouterr().err
