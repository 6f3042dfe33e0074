"""The surrogate cross-check on the real ngspice: agreement, divergence at the tolerance edge, resume."""

import numpy as np
import pytest

from circuitnn.reports import write_report

from circuitnn.experiments.config import load_config
from circuitnn.experiments import crosscheck
from circuitnn.experiments.crosscheck import first_divergence, run_crosscheck
from circuitnn.store import RunStore
from figure_checks import assert_legends_cover_no_data
from report_checks import assert_report_folder

TARGETS = np.array([1e-4, 2e-4])


def test_identical_read_logs_do_not_diverge():
    reads = [(0, 0.5e-4), (0, 0.98e-4), (1, 2.0e-4)]
    assert first_divergence(reads, list(reads), TARGETS, 0.05, 200) is None


def test_divergence_is_the_first_read_decided_differently():
    spice = [(0, 0.5e-4), (0, 1.0501e-4), (0, 1.01e-4), (1, 2e-4)]
    surrogate = [(0, 0.5e-4), (0, 1.0499e-4), (1, 2e-4)]
    d = first_divergence(spice, surrogate, TARGETS, 0.05, 200)
    assert (d["read"], d["device"], d["read_of_device"]) == (1, 0, 1)
    assert d["error_spice"] == pytest.approx(0.0501) and d["error_surrogate"] == pytest.approx(0.0499)
    assert d["distance_to_edge"] == pytest.approx(1e-4)


def test_a_read_after_the_pulse_budget_cannot_diverge():
    # max_pulses = 1: the device's second read ends it on both backends, whatever it says.
    spice = [(0, 0.5e-4), (0, 0.5e-4), (1, 2e-4)]
    surrogate = [(0, 0.5e-4), (0, 1.5e-4), (1, 2e-4)]
    assert first_divergence(spice, surrogate, TARGETS, 0.05, max_pulses=1) is None


@pytest.mark.parametrize("backend", ["spice", "surrogate"])
def test_the_verify_log_sees_every_read_the_controller_takes(backend):
    """A chip's in-worker write-verify would bypass the log: tuning through it logs one entry per
    verify read, with the conductances the controller decided on."""
    from circuitnn.chip.spice_chip import SpiceChip
    from circuitnn.chip.surrogate_chip import SurrogateChip
    from circuitnn.circuits.crossbar import Crossbar
    from circuitnn.experiments import onchip
    from circuitnn.training.tuning import tune_all

    config = load_config(None, "Cr")
    crossbar = Crossbar(config.crossbar_spec())
    targets = onchip.make_task(config, crossbar).targets_S[:3]
    make = SpiceChip if backend == "spice" else SurrogateChip
    with make(crossbar, onchip.initial_states(config, crossbar.n_devices)) as chip:
        log = crosscheck.VerifyLog(chip)
        tunings = tune_all(log, targets, config.tuning)
    assert len(log.reads) == sum(t.reads for t in tunings) > 3
    assert [g for device, g in log.reads if device == 2][-1] == tunings[2].final_S


@pytest.fixture(scope="module")
def crosscheck_run(tmp_path_factory):
    """Cr and C (binary), seed 0, no reset."""
    store = RunStore(tmp_path_factory.mktemp("crosscheck"))
    return run_crosscheck(store, [load_config(None, "Cr"), load_config(None, "C")], seeds=1,
                          reset_modes=(False,), progress=False, write_report=write_report)


def test_runs_agree_or_diverge_only_at_a_tolerance_edge(crosscheck_run):
    """The claim the cross-check report makes: every run is within the targets, or its controllers
    part at one verify read that lies within 0.01 points of the 5 % edge on both backends, on opposite
    sides, after every earlier read agreed. At the time of writing C seed 0 is such an edge case
    (SPICE +5.006 %, surrogate +4.935 %)."""
    run = crosscheck_run
    rows = run.read_json("summary.json")["runs"]
    for row in rows:
        assert abs(row["accuracy_surrogate"] - row["accuracy_spice"]) <= 0.02
        if not row["within_target"]:
            d = row["divergence"]
            assert d is not None, row["medium"]
            assert d["distance_to_edge"] < 1e-4
            assert (abs(d["error_spice"]) - 0.05) * (abs(d["error_surrogate"]) - 0.05) < 0  # opposite sides
            assert f"device {d['device']}" in run.read_text("report.md")
    cr = next(r for r in rows if r["medium"] == "Cr")
    assert cr["within_target"] and abs(cr["training_time_s_relative_difference"]) < 0.01
    assert "figures/agreement.png" in run.files and "crosscheck.csv" in run.files


def test_cli_report_of_a_crosscheck_run(crosscheck_run, tmp_path):
    from circuitnn.cli import main

    assert main(["report", crosscheck_run.id, "--store", str(crosscheck_run.path.parent), "--out", str(tmp_path)]) == 0
    markdown = assert_report_folder(tmp_path / crosscheck_run.id, min_tables=2)
    assert "mean Δtime (%)" in markdown and "Surrogate calibration: `identity`" in markdown
    assert markdown == crosscheck_run.read_text("report.md")


def test_an_interrupted_crosscheck_resumes_without_repeating_parts(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    calls = []
    original = crosscheck._one

    def interrupted(config, initial_reset, calibration):
        calls.append((config.seed, initial_reset))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(config, initial_reset, calibration)

    monkeypatch.setattr(crosscheck, "_one", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_crosscheck(store, [load_config(None, "Cr")], seeds=2, reset_modes=(False,), progress=False, write_report=write_report)
    (interrupted_run,) = store.list(kind="crosscheck")
    calls.clear()
    run = run_crosscheck(store, [], resume=interrupted_run.id, progress=False, write_report=write_report)
    assert calls == [(1, False)]  # seed 0 was stored before the interruption
    assert run.status == "complete" and len(run.read_json("summary.json")["runs"]) == 2


def test_cli_refuses_a_bad_seed_count(tmp_path, capsys):
    from circuitnn.cli import main

    assert main(["crosscheck", "--medium", "Cr", "--seeds", "0", "--store", str(tmp_path)]) == 2
    assert "crosscheck.seeds" in capsys.readouterr().err


def test_agreement_figure_explains_its_band_in_readable_text():
    from circuitnn.experiments.crosscheck import TARGET_RELATIVE
    from circuitnn.reports.crosscheck_report import agreement_figure

    # Shaped like stored rows: most runs inside the target band, one divergent outside it.
    rows = [{"medium": medium, "seed": seed, "initial_reset": reset, "divergent": medium == "C" and seed == 1,
             "training_time_s_relative_difference": 0.07 if medium == "C" and seed == 1 else 0.001 * seed,
             "training_energy_total_J_relative_difference": -0.002 * seed}
            for medium in ("Cr", "C") for seed in (0, 1, 2) for reset in (False, True)]
    figure = agreement_figure(rows)
    legends = [ax.get_legend() for ax in figure.axes if ax.get_legend() is not None] + list(figure.legends)
    assert legends
    texts = [text for legend in legends for text in (*legend.get_texts(), legend.get_title()) if text.get_text()]
    band = f"±{100 * TARGET_RELATIVE:g} %"
    assert any("target" in t.get_text() and band in t.get_text() for t in texts), [t.get_text() for t in texts]
    assert all(t.get_fontsize() >= 8 for t in texts), [(t.get_text(), t.get_fontsize()) for t in texts]
    assert_legends_cover_no_data(figure)
