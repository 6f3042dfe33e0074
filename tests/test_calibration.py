"""Surrogate calibration against SPICE, and the reproduction cross-checked on both backends."""

import contextlib
import io

import pytest

from circuitnn.chip.surrogate_chip import SurrogateChip
from circuitnn.circuits.crossbar import Crossbar
from circuitnn.cli import main
from circuitnn.experiments import calibration_fit as cal
from circuitnn.experiments import reproduction
from circuitnn.experiments.calibration import load_calibration
from circuitnn.experiments.config import load_config
from circuitnn.reports.calibration_report import MEASURES, held_out_errors, worse_after_fit
from circuitnn.reports.onchip_report import write_report
from circuitnn.store import RunStore
from report_checks import assert_report_folder


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return RunStore(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def calibrate_command(store):
    """`circuitnn calibrate --medium Cr`: (its run, what it printed, what it warned)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert main(["calibrate", "--medium", "Cr", "--store", str(store.root), "--quiet"]) == 0
    (info,) = store.list(kind="calibration")
    return store.open(info.id), out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def calibration_run(calibrate_command):
    return calibrate_command[0]


def test_the_command_warns_of_every_held_out_error_the_fit_made_worse(calibrate_command):
    run, out, err = calibrate_command
    expected = [f"circuitnn: warning: {sentence}" for sentence in worse_after_fit(held_out_errors(run))]
    assert err.splitlines() == expected
    assert "| measure |" in out and f"--calibration {run.id}" in out


def test_held_out_errors_meet_the_targets(calibration_run):
    rows = calibration_run.read_csv("errors.csv")
    errors = dict(zip(rows["measure"], rows["calibrated"]))
    assert errors["current_rms_relative"] <= cal.TARGETS["current_rms_relative"]
    assert errors["state_max_abs"] <= cal.TARGETS["state_max_abs"]
    assert errors["energy_max_relative"] <= cal.TARGETS["energy_max_relative"]
    assert "figures/parity.png" in calibration_run.files and "experiments.npz" in calibration_run.files


def test_cli_report_of_a_calibration_run_says_where_the_fit_made_errors_worse(store, calibration_run, tmp_path):
    assert main(["report", calibration_run.id, "--store", str(store.root), "--out", str(tmp_path)]) == 0
    markdown = assert_report_folder(tmp_path / calibration_run.id, min_tables=2)
    rows = calibration_run.read_csv("errors.csv")
    worse = [m for m, before, after in zip(rows["measure"], rows["uncalibrated"], rows["calibrated"])
             if after > 1.05 * before]
    assert calibration_run.info.summary["worse_after_fit"] == worse
    for measure in worse:
        what = MEASURES[measure][0]
        assert f"made the held-out {what} worse" in markdown


def test_worse_held_out_errors_are_named_with_both_values():
    errors = [{"measure": "state_max_abs", "target": 0.01, "uncalibrated": 6.7e-4, "calibrated": 9.6e-4},
              {"measure": "energy_max_relative", "target": 0.05, "uncalibrated": 0.0026, "calibrated": 0.0018}]
    (sentence,) = worse_after_fit(errors)
    assert "state after a pulse" in sentence and "0.00067 → 0.00096" in sentence and "still met" in sentence
    noise = {"measure": "current_rms_relative", "target": 0.01, "uncalibrated": 2.6e-13, "calibrated": 2.7e-13}
    assert worse_after_fit([noise]) == []  # floating-point noise, not the fit's doing


def test_calibration_without_the_surrogate_backend_is_refused(store, calibration_run, capsys, tmp_path):
    assert main(["train", "--medium", "Cr", "--store", str(tmp_path), "--calibration", calibration_run.id]) == 2
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and "--backend surrogate" in message
    assert not list(tmp_path.iterdir())  # no run was started


def test_a_calibration_of_another_medium_is_applied_with_a_warning(store, calibration_run, capsys):
    from conftest import SMALL_REPRODUCTION_TOML

    config = store.root / "small.toml"
    config.write_text(SMALL_REPRODUCTION_TOML)
    assert main(["train", "--medium", "W", "--config", str(config), "--store", str(store.root), "--quiet",
                 "--backend", "surrogate", "--calibration", calibration_run.id]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "fitted to medium Cr" in warnings[0] and "W" in warnings[0]


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


def test_only_a_complete_calibration_run_calibrates(tmp_path, capsys):
    """A calibration killed before it completed (or another kind of run) is refused in one line, exit 2:
    a result would otherwise rest on a run with no report that cannot be resumed."""
    from circuitnn.surrogate.calibration_params import SurrogateCalibration

    runs = RunStore(tmp_path)
    unfinished = runs.create("calibration", {"medium": {}}, seed=0, labels={"medium": "Cr"})
    unfinished.write_json("calibration.json", SurrogateCalibration().as_dict())
    unfinished.close()  # as a SIGKILL leaves it: "running", its fit stored, nothing after it
    other = runs.create("train", {}, seed=0)
    other.complete({})
    for run_id, says in ((unfinished.id, "is running, not complete"), (other.id, "is a 'train' run")):
        assert main(["train", "--medium", "Cr", "--backend", "surrogate", "--quiet", "--store", str(tmp_path),
                     "--calibration", run_id]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err, err
    assert len(runs.list(kind="train")) == 1  # refused before any run was made
    runs.resume(unfinished.id).complete({})
    assert load_calibration(runs, unfinished.id) == SurrogateCalibration(**unfinished.read_json("calibration.json"))
