"""``circuitnn networks``: a stored run with accuracy with and without device effects."""

from circuitnn.cli import main
from circuitnn.store import RunStore


def test_networks_run_reports_float_and_device_accuracy(tmp_path, capsys):
    assert main(["networks", "--store", str(tmp_path), "--network", "mlp", "--epochs", "2",
                 "--repeats", "2", "--quiet"]) == 0
    (info,) = RunStore(tmp_path).list(kind="networks")
    run = RunStore(tmp_path).open(info.id)
    rows = run.read_json("results.json")
    assert {(r["training"], r["device"]) for r in rows} == {
        ("plain", "msdc"), ("plain", "pcm"), ("noise injection", "msdc"), ("noise injection", "pcm")}
    for row in rows:
        assert row["accuracy_float"] > 0.85  # the 8x8 digits default
        assert 0.5 < row["accuracy_device"] <= 1.0
    assert "accuracy.png" in run.files and "with device effects" in run.read_text("report.md")
    assert info.labels["dataset"] == "digits-8x8"


def test_networks_bad_mnist_folder_exits_2(tmp_path, capsys):
    assert main(["networks", "--store", str(tmp_path), "--mnist", str(tmp_path / "missing"), "--quiet"]) == 2
    assert "missing" in capsys.readouterr().err
