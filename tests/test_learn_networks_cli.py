"""``circuitnn learn-networks``: a stored, resumable study of on-chip learning methods against variation."""

import pytest

from circuitnn.cli import main
from circuitnn.experiments import network_learning as experiment
from circuitnn.reports import write_report
from circuitnn.store import RunStore
from figure_checks import assert_legends_cover_no_data, assert_no_marker_hidden
from report_checks import assert_report_folder

SMALL = ["--epochs", "1", "--cnn-epochs", "1", "--hidden", "8", "--max-examples", "200",
         "--conductance-levels", "0,0.2", "--neuron-levels", "0.2", "--extra-methods", "spsa",
         "--cnn-methods", "bp,hybrid-conv-bp", "--quiet"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    store = tmp_path_factory.mktemp("learn")
    assert main(["learn-networks", "--store", str(store), *SMALL]) == 0
    (info,) = RunStore(store).list(kind="learn-networks")
    return RunStore(store).open(info.id)


def test_study_stores_every_part_with_counts_and_a_report(study, tmp_path):
    stored = [study.read_json(rel) for rel in study.files if rel.startswith("parts/")]
    parts = [p for p in stored if p["method"] != "alignment"]
    alignment = {(p["axis"], p["level"]): p for p in stored if p["method"] == "alignment"}
    # 3 variation levels × 4 sweep methods, 1 extra, 2 CNN methods; a gradient alignment per level
    assert len(parts) == 3 * 4 + 1 + 2 and set(alignment) == {("conductance", 0.0), ("conductance", 0.2),
                                                              ("neuron", 0.2)}
    # without variation BP is the chip's gradient; with neuron-circuit variation it is not
    assert alignment[("conductance", 0.0)]["cosine_all"] > 0.9999
    assert alignment[("neuron", 0.2)]["cosine_all"] < 0.999
    for part in parts:
        assert part["forward_evaluations"] > 0 and 0.0 <= part["accuracy"] <= 1.0
        assert part["backward_evaluations"] > 0 if "bp" in part["methods"] else part["backward_evaluations"] == 0
    by = {(p["network"], p["method"], p["axis"], p["level"]): p for p in parts}
    dgc, parallel = by[("mlp", "dgc", "conductance", 0.0)], by[("mlp", "parallel", "conductance", 0.0)]
    assert parallel["forward_evaluations"] * 10 < dgc["forward_evaluations"]
    assert by[("mlp", "bp", "neuron", 0.2)]["variation"]["backward_gain_sigma"] == 0.2
    assert {"figures/variation.png", "figures/evaluations.png", "tables/acceptance.csv"} <= set(study.files)
    assert main(["report", study.id, "--store", str(study.path.parent), "--out", str(tmp_path)]) == 0
    markdown = assert_report_folder(tmp_path / study.id, min_tables=3)
    assert "DGC within 1.5 points of BP" in markdown and "chip evaluations" in markdown
    assert "Gradient alignment" in markdown


def test_bad_level_and_method_exit_2_before_training(tmp_path, capsys):
    assert main(["learn-networks", "--store", str(tmp_path), "--conductance-levels", "0,2", "--quiet"]) == 2
    assert "variation.conductance_sigma" in capsys.readouterr().err
    assert main(["learn-networks", "--store", str(tmp_path), "--sweep-methods", "magic", "--quiet"]) == 2
    assert "learn_networks.sweep_methods" in capsys.readouterr().err
    assert not RunStore(tmp_path).list(kind="learn-networks")


def test_an_interrupted_study_resumes_without_retraining(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    trained, interruptions = [], []
    original = experiment.train_part

    def interrupted(part, plan, data, progress=None):
        trained.append(part["method"])
        if len(trained) == 2 and not interruptions:
            interruptions.append(part["method"])
            raise KeyboardInterrupt
        return original(part, plan, data, progress)

    monkeypatch.setattr(experiment, "train_part", interrupted)
    plan = experiment.default_plan(epochs=1, hidden=4, max_examples=100, conductance_levels=[0.0],
                                   neuron_levels=[], sweep_methods=["bp", "parallel"], extra_methods=[],
                                   cnn_methods=[])
    with pytest.raises(KeyboardInterrupt):
        experiment.run_learning_study(store, plan, progress=False, write_report=write_report)
    (info,) = store.list(kind="learn-networks")
    trained.clear()
    run = experiment.run_learning_study(store, resume=info.id, progress=False, write_report=write_report)
    assert trained == ["parallel", "alignment"] and run.status == "complete"


def test_variation_figure_shows_every_method_and_its_legend_covers_no_data():
    # Small studies often give several methods the same accuracy (every method at 10 % on the clean
    # chip, pairs equal under variation): each must still be seen, and the legend must not sit on the
    # σ = 0 points low on the left.
    from circuitnn.reports.network_learning_report import variation_figure

    methods = ["bp", "dgc", "hybrid-bp-dgc", "parallel"]
    accuracy = {("conductance", 0.0): [0.10, 0.10, 0.10, 0.10],
                ("conductance", 0.1): [0.125, 0.10, 0.125, 0.125],
                ("conductance", 0.2): [0.125, 0.10, 0.125, 0.125],
                ("neuron", 0.1): [0.15, 0.15, 0.125, 0.15],
                ("neuron", 0.2): [0.15, 0.15, 0.125, 0.15]}
    swept = sorted((("mlp", method, axis, level), {"accuracy": value, "std": 0.0 if value == 0.1 else 0.01})
                   for (axis, level), values in accuracy.items() for method, value in zip(methods, values))
    figure = variation_figure(swept, {"sweep_methods": methods}, "digits-8x8")
    for ax in figure.axes:
        assert_no_marker_hidden(ax)
        assert ax.get_xlabel() and ax.xaxis.label.get_fontsize() >= 8
    assert_legends_cover_no_data(figure)
