"""``circuitnn networks``: a stored run with accuracy with and without device effects."""

import pytest

from circuitnn.reports import write_report

from circuitnn.cli import main
from circuitnn.store import RunStore
from figure_checks import assert_bars_visible, assert_legends_cover_no_data, assert_no_marker_hidden
from report_checks import assert_report_folder


@pytest.fixture(scope="module")
def networks_run(tmp_path_factory):
    store = tmp_path_factory.mktemp("networks")
    assert main(["networks", "--store", str(store), "--network", "mlp", "--epochs", "2",
                 "--repeats", "2", "--quiet"]) == 0
    (info,) = RunStore(store).list(kind="networks")
    return RunStore(store).open(info.id)


def test_networks_run_reports_float_and_device_accuracy(networks_run):
    run, info = networks_run, networks_run.info
    rows = run.read_json("results.json")
    assert {(r["training"], r["device"]) for r in rows} == {
        ("plain", "msdc"), ("plain", "pcm"), ("noise injection", "msdc"), ("noise injection", "pcm")}
    for row in rows:
        assert row["accuracy_float"] > 0.85  # the 8x8 digits default
        assert 0.5 < row["accuracy_device"] <= 1.0
    assert "figures/accuracy.png" in run.files and "with device effects" in run.read_text("report.md")
    assert info.labels["dataset"] == "digits-8x8"
    wires = run.read_csv("wires.csv")
    assert sorted(set(zip(wires["tile"].tolist(), wires["r_line_ohm"].tolist()))) == [
        (64, 0.0), (64, 1.0), (64, 2.0), (256, 0.0), (256, 1.0), (256, 2.0)]
    assert "figures/wires.png" in run.files and "Reading through the wires" in run.read_text("report.md")


def test_cli_report_of_a_networks_run(networks_run, tmp_path):
    assert main(["report", networks_run.id, "--store", str(networks_run.path.parent), "--out", str(tmp_path)]) == 0
    markdown = assert_report_folder(tmp_path / networks_run.id, min_tables=2)
    assert "accuracy with device effects (%)" in markdown and "line resistance per segment (Ω)" in markdown


def test_networks_bad_line_resistance_exits_2_before_training(tmp_path, capsys):
    assert main(["networks", "--store", str(tmp_path), "--line-resistances", "-1", "--quiet"]) == 2
    assert "tile.r_line_ohm" in capsys.readouterr().err
    assert not RunStore(tmp_path).list(kind="networks")


def test_networks_bad_mnist_folder_exits_2(tmp_path, capsys):
    assert main(["networks", "--store", str(tmp_path), "--mnist", str(tmp_path / "missing"), "--quiet"]) == 2
    assert "missing" in capsys.readouterr().err


def test_an_interrupted_networks_run_resumes_without_retraining(tmp_path, monkeypatch):
    from circuitnn.experiments import networks as experiment

    store = RunStore(tmp_path)
    trained = []
    original = experiment.train

    def interrupted(network, X, y, config, **options):
        trained.append(config.weight_noise)
        if len(trained) == 2:
            raise KeyboardInterrupt
        return original(network, X, y, config, **options)

    monkeypatch.setattr(experiment, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        experiment.run_networks(store, None, epochs=1, repeats=1, kinds=("mlp",), progress=False, write_report=write_report,
                                line_resistances_ohm=())
    (info,) = store.list(kind="networks")
    first = store.open(info.id).read_json("parts/mlp-noise0/msdc.json")
    trained.clear()
    run = experiment.run_networks(store, None, resume=info.id, progress=False, write_report=write_report)
    assert trained == [0.1]  # only the network the interruption stopped is trained again
    rows = run.read_json("results.json")
    assert len(rows) == 4 and rows[0] == first and run.status == "complete"


def _texts_at_least(figure, points: float) -> None:
    from matplotlib.text import Text

    figure.canvas.draw()
    for text in figure.findobj(Text):
        if text.get_visible() and text.get_text().strip():
            assert text.get_fontsize() >= points, f"{text.get_text()!r} is {text.get_fontsize()} pt"


def test_accuracy_figure_names_its_tick_lines_in_readable_text():
    from circuitnn.reports.networks_report import accuracy_figure

    rows = [{"network": "mlp", "training": training, "device": device, "accuracy_float": fl,
             "accuracy_device": dev, "accuracy_device_std": std}
            for training, fl in (("plain", 0.911), ("noise injection", 0.894))
            for device, dev, std in (("msdc", fl - 0.02, 0.004), ("pcm", fl - 0.02, 0.021))]
    figure = accuracy_figure(rows, "digits-8x8")
    (ax,) = figure.axes
    # Each tick label is network, training and device on three lines: the axis label says which is which.
    label = ax.get_xlabel()
    assert all(word in label for word in ("network", "training", "device"))
    assert label.index("network") < label.index("training") < label.index("device")
    _texts_at_least(figure, 8)
    assert_bars_visible(ax)
    assert_legends_cover_no_data(figure)


def test_wire_figure_fits_the_data_and_hides_no_marker():
    from circuitnn.reports.networks_report import wire_figure

    # Shaped like the digits run: both tile sizes equal at 0 Ω, the 64×64 tiles within a point of float.
    accuracy = {(64, 0.0): 0.8886, (64, 1.0): 0.8858, (64, 2.0): 0.8774,
                (256, 0.0): 0.8886, (256, 1.0): 0.8635, (256, 2.0): 0.7911}
    rows = [{"network": "mlp", "tile": tile, "r_line_ohm": r, "accuracy_float": 0.8942, "accuracy_device": a,
             "n_tiles": 8 if tile == 64 else 2} for (tile, r), a in accuracy.items()]
    figure = wire_figure(rows, "digits-8x8")
    (ax,) = figure.axes
    low, high = ax.get_ylim()
    values = [100 * a for a in accuracy.values()] + [89.42]
    assert low < min(values) and max(values) < high
    # The 79-89 % spread fills most of the axis instead of a tenth of a 0-100 % one.
    assert (max(values) - min(values)) / (high - low) > 0.6
    assert_no_marker_hidden(ax)
    # The float reference runs beneath the markers, never over one.
    markers = [line for line in ax.lines if line.get_marker() not in (None, "", "None", " ")]
    references = [line for line in ax.lines if line not in markers]
    assert markers and references
    assert max(r.get_zorder() for r in references) < min(m.get_zorder() for m in markers)
    assert "(Ω" in ax.get_xlabel() and "%" in ax.get_ylabel()
    _texts_at_least(figure, 8)
    assert_legends_cover_no_data(figure)
