"""Stored reproduction runs: reports rebuild identically from disk, interrupted runs resume, and bad
input loses nothing."""

import shutil

import numpy as np
import pytest

from circuitnn.cli import main
from circuitnn.experiments import reproduction
from circuitnn.reports.onchip_report import build_report, table_csv, write_report, write_report_to
from circuitnn.store import CorruptRunError, RunStore
from figure_checks import assert_bars_visible, assert_legends_cover_no_data, assert_no_marker_hidden
from report_checks import assert_report_folder, assert_valid_markdown
from stop_after import interrupted_after


@pytest.fixture(scope="module")
def stored(tmp_path_factory, small_config):
    store = RunStore(tmp_path_factory.mktemp("runs"))
    run = reproduction.run_reproduction(store, [small_config], "compare-media", heatmap_medium="Cr",
                                        progress=False, write_report=write_report)
    return store, run.id


def test_run_holds_config_versions_netlists_results_and_report(stored):
    store, run_id = stored
    run = store.open(run_id)
    assert run.status == "complete"
    assert run.info.versions["ngspice"] == "39" and "numpy" in run.info.versions
    assert run.info.config["media"]["Cr"]["onchip"]["n_test_per_class"] == 15
    files = run.files
    for name in ("parts/Cr-reset/devices.csv", "parts/Cr-noreset/ledger.npz", "parts/Cr-errors/sweep.csv",
                 "parts/heatmap/grid.csv", "report.md", "report.html", "figures/tuning_cost.png",
                 "tables/tuning.csv", "netlists/Cr-noreset_default_cr.cir"):
        assert name in files, name
    devices = run.read_csv("parts/Cr-noreset/devices.csv")
    assert len(devices["final_state"]) == 30
    assert run.info.summary["Cr_noreset_accuracy"] >= 0.9


def test_every_stored_netlist_runs_unchanged_in_plain_ngspice_batch(stored):
    from test_netlists import run_plain_batch

    store, run_id = stored
    run = store.open(run_id)
    netlists = sorted(rel for rel in run.files if rel.startswith("netlists/"))
    assert any("program" in rel for rel in netlists) and len(netlists) >= 4
    for rel in netlists:
        run_plain_batch(run.path / rel)


def test_report_rebuilds_identically_from_the_stored_run(stored, tmp_path):
    store, run_id = stored
    run = store.open(run_id)
    first, second = build_report(run), build_report(run)
    assert first.tables.keys() == second.tables.keys()
    for name in first.tables:
        assert table_csv(first.tables[name]) == table_csv(second.tables[name])
        # ...and equal to the tables written when the run finished.
        assert run.read_text(f"tables/{name}.csv") == table_csv(first.tables[name])
    written = write_report_to(run, tmp_path / "report")
    assert (tmp_path / "report" / "report.md") in written
    assert "Eslami et al. 2024" in (tmp_path / "report" / "report.md").read_text()


def test_cli_report_of_a_reproduction_run_is_valid_markdown_with_units(stored, tmp_path, capsys):
    store, run_id = stored
    assert main(["report", run_id, "--store", str(store.root), "--out", str(tmp_path)]) == 0
    markdown = assert_report_folder(tmp_path / run_id, min_tables=5)
    assert markdown == store.open(run_id).read_text("report.md")  # the same report the run wrote
    tables = assert_valid_markdown(markdown)
    headers = [cell for table in tables for cell in table[0]]
    assert "max relative conductance error (%)" in headers and "chip accuracy (%)" in headers
    assert not any("e-16" in cell or "e-17" in cell for table in tables for row in table for cell in row)
    # The training time is shown split, controller overhead included.
    split = next(t for t in tables if "controller overhead (s)" in t[0])
    columns = split[0]
    for row in split[2:]:
        if row[columns.index("source")] == "":
            parts = sum(float(row[columns.index(c)]) for c in ("pulses (s)", "verify reads (s)", "controller overhead (s)"))
            assert parts == pytest.approx(float(row[columns.index("training time (s)")]), rel=2e-3)
    assert "controller overhead" in markdown.split("## Notes")[1]


def test_interrupted_run_resumes_where_it_stopped(tmp_path, small_config, stored, monkeypatch, capsys):
    store = RunStore(tmp_path / "runs")
    with interrupted_after(10, monkeypatch), pytest.raises(KeyboardInterrupt):
        reproduction.run_reproduction(store, [small_config], "train", progress=False, write_report=write_report)
    (info,) = store.list()
    assert info.status == "interrupted" and info.latest_checkpoint == "Cr-reset"
    # Nothing finished yet: the report says so in one line, and how to continue.
    assert main(["report", info.id, "--store", str(store.root), "--out", str(tmp_path / "r")]) == 2
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and "no finished training part" in message and f"--resume {info.id}" in message
    run = reproduction.run_reproduction(store, [small_config], "train", resume=info.id, progress=False,
                                        write_report=write_report)
    assert run.status == "complete"
    # The resumed run equals the uninterrupted one exactly: every stored number of both parts,
    # completion times, retention and inference energy included.
    reference = stored[0].open(stored[1])
    for part in ("Cr-reset", "Cr-noreset"):
        for name in ("devices.csv", "phases.csv", "summary.json"):
            assert run.read_text(f"parts/{part}/{name}") == reference.read_text(f"parts/{part}/{name}"), (part, name)
        assert np.array_equal(run.read_npz(f"parts/{part}/outputs.npz")["chip_outputs"],
                              reference.read_npz(f"parts/{part}/outputs.npz")["chip_outputs"])
    with pytest.raises(Exception, match="complete"):
        store.resume(run.id)


def test_corrupt_run_directory_is_reported_and_nothing_is_lost(stored, tmp_path, capsys):
    store, run_id = stored
    copy = tmp_path / "runs"
    shutil.copytree(store.root, copy)
    broken = copy / run_id / "run.json"
    broken.write_text("{ not json")
    with pytest.raises(CorruptRunError, match=run_id):
        RunStore(copy).open(run_id)
    assert main(["report", run_id, "--store", str(copy), "--out", str(tmp_path / "r")]) == 2
    assert "corrupt run directory" in capsys.readouterr().err
    assert (copy / run_id / "parts" / "Cr-reset" / "devices.csv").exists()


def test_cli_lists_and_filters_runs(stored, capsys):
    store, run_id = stored
    assert main(["runs", "--store", str(store.root), "--label", "media=Cr"]) == 0
    assert run_id in capsys.readouterr().out
    assert main(["runs", "--store", str(store.root), "--kind", "train"]) == 0
    out = capsys.readouterr().out
    assert run_id not in out and out.strip() == f"no runs in {store.root} matching kind=train"


def test_cli_report_of_an_unknown_kind_exits_2_in_one_line(tmp_path, capsys):
    store = RunStore(tmp_path / "runs")
    with store.create("notebook", {}, seed=0) as run:
        run.complete({})
    assert main(["report", run.id, "--store", str(store.root), "--out", str(tmp_path / "r")]) == 2
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and "'notebook'" in message and "calibration" in message
    assert not (tmp_path / "r").exists()


def test_cli_unknown_medium_exits_2(tmp_path, capsys):
    assert main(["train", "--medium", "Ag", "--store", str(tmp_path)]) == 2
    assert "device.medium" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing was created


@pytest.mark.parametrize("backend", ["surrogate", "spice"])
def test_an_ageing_model_resumes_exactly(tmp_path, monkeypatch, backend):
    """PCM: a resume must restore the chip's clock, each cell's drift exponent and programming time,
    and the read-noise stream, or every later read differs. Interrupted after 7 devices."""
    from circuitnn.experiments.config import load_config

    path = tmp_path / "pcm.toml"
    path.write_text('preset = "PCM"\n[onchip]\nn_test_per_class = 10\nconductance_errors = [0.0]\nerror_draws = 1\n')
    config = load_config(path)
    reference = reproduction.run_reproduction(RunStore(tmp_path / "a"), [config], "train", progress=False,
                                              backend=backend)
    store = RunStore(tmp_path / "b")
    with interrupted_after(7, monkeypatch), pytest.raises(KeyboardInterrupt):
        reproduction.run_reproduction(store, [config], "train", progress=False, backend=backend,
                                      checkpoint_every_s=0)
    (info,) = store.list()
    assert store.open(info.id).load_checkpoint()[0]["count"] == 7
    resumed = reproduction.run_reproduction(store, [config], "train", resume=info.id, progress=False)
    for part in ("PCM-reset", "PCM-noreset"):
        for name in ("devices.csv", "summary.json"):
            assert resumed.read_text(f"parts/{part}/{name}") == reference.read_text(f"parts/{part}/{name}")


def test_checkpoints_are_saved_at_most_once_per_interval_and_a_resume_is_still_exact(tmp_path, monkeypatch):
    """With a long interval only the first checkpoint a part offers is saved; interrupted later,
    the run resumes from it and repeats the devices after it to the same result."""
    from circuitnn.experiments.config import load_config
    from circuitnn.store import Run

    path = tmp_path / "pcm.toml"
    path.write_text('preset = "PCM"\n[onchip]\nn_test_per_class = 10\nconductance_errors = [0.0]\nerror_draws = 1\n')
    config = load_config(path)
    reference = reproduction.run_reproduction(RunStore(tmp_path / "a"), [config], "train", progress=False,
                                              backend="surrogate", checkpoint_every_s=0)
    saves = []
    real = Run.checkpoint
    monkeypatch.setattr(Run, "checkpoint", lambda self, *a, **k: saves.append(a[0]) or real(self, *a, **k))
    store = RunStore(tmp_path / "b")
    with interrupted_after(12, monkeypatch), pytest.raises(KeyboardInterrupt):
        reproduction.run_reproduction(store, [config], "train", progress=False, backend="surrogate",
                                      checkpoint_every_s=1e6)
    assert saves == ["PCM-reset"]
    (info,) = store.list()
    assert store.open(info.id).load_checkpoint()[0]["count"] == 1
    resumed = reproduction.run_reproduction(store, [config], "train", resume=info.id, progress=False)
    for part in ("PCM-reset", "PCM-noreset"):
        for name in ("devices.csv", "summary.json", "phases.csv"):
            assert resumed.read_text(f"parts/{part}/{name}") == reference.read_text(f"parts/{part}/{name}")


@pytest.mark.parametrize("media", [("Cr",), ("W", "Cr", "C")])
def test_tuning_figure_shows_every_series_and_its_legends_cover_no_data(media):
    # The time split spans three decades (pulses ~0.1 % of the time) and the energies one (with and
    # without reset): every bar must still have a visible height, and no legend may sit on a bar or
    # on the paper's line.
    from circuitnn.reports.onchip_report import _tuning_figure

    summaries, split = {}, []
    for k, medium in enumerate(media):
        for mode, reset in (("reset", True), ("noreset", False)):
            scale = (k + 1) * (4.4 if reset else 1.0)
            summaries[f"{medium}-{mode}"] = {"medium": medium, "pulses": 300 * scale,
                                             "training_time_s": 0.5 * scale,
                                             "training_energy_total_J": 2e-7 * scale}
            split.append({"medium": medium, "initial reset": reset, "pulses (s)": 2e-3 * scale,
                          "verify reads (s)": 3e-2 * scale, "controller overhead (s)": 0.45 * scale})
    figure = _tuning_figure(summaries, split)
    assert len(figure.axes[3].patches) == 3 * len(media)
    for ax in figure.axes:
        assert_bars_visible(ax, 0.08 if ax.get_yscale() == "log" else 0.03)
    assert_legends_cover_no_data(figure)


def test_errors_figure_hides_no_medium_where_media_agree():
    # Media often reach the same accuracy (99.5 % at σ = 0 for all three): each must stay visible.
    from circuitnn.reports.onchip_report import _errors_figure

    sigma = np.array([0.0, 0.025, 0.05, 0.1, 0.2])
    sweeps = {medium: {"sigma": sigma, "accuracy_mean": np.array([0.995, 0.995, 0.99, 0.98, 0.9 + 0.02 * k]),
                       "accuracy_std": np.array([0.0, 0.003, 0.004, 0.01, 0.02])}
              for k, medium in enumerate(("W", "Cr", "C"))}
    figure = _errors_figure(sweeps)
    assert_no_marker_hidden(figure.axes[0])
    assert_legends_cover_no_data(figure)
