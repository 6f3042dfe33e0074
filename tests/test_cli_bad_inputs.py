"""Every bad input gets exit 2 and exactly one line on stderr naming it; signals stop a command with
one line and leave its run resumable; a missing libngspice is one line too."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from circuitnn.cli import main
from circuitnn.store import RunStore

BIG = "9" * 400  # an integer no float can hold


def _one_line(capfd, code, *names, expected_code=2):
    out, err = capfd.readouterr()
    assert code == expected_code, err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for name in names:
        assert str(name) in err, (name, err)
    return err


CONFIGS = {
    "v_read zero": ("[circuit]\nv_read_V = 0\n", "circuit.v_read_V"),
    "v_read huge integer": (f"[circuit]\nv_read_V = {BIG}\n", "circuit.v_read_V"),
    "seed huge integer": (f"seed = {BIG}\n", "seed"),
    "r_line huge integer": (f"[circuit]\nr_line_ohm = {BIG}\n", "circuit.r_line_ohm"),
    "max_pulses huge integer": (f"[tuning]\nmax_pulses = {BIG}\n", "tuning.max_pulses"),
    "error_draws huge integer": (f"[onchip]\nerror_draws = {BIG}\n", "onchip.error_draws"),
    "layers huge integer": (f"[circuit]\nlayers = [9, {BIG}, 1]\n", "circuit.layers[0].n_outputs"),
    "override huge integer": (f"[device.overrides]\nr_on_ohm = {BIG}\n", "device.overrides.r_on_ohm"),
    "digits past Python's limit": ("seed = " + "9" * 5000 + "\n", "config.toml"),
    "device not a table": ("device = 1\n", "device"),
    "circuit not a table": ("circuit = 1\n", "circuit"),
    "empty conductance errors": ("[onchip]\nconductance_errors = []\n", "onchip.conductance_errors"),
    "empty noise levels": ("[onchip]\nnoise_levels = []\n", "onchip.noise_levels"),
    "invalid preset": ('preset = "Au"\n', "preset"),
    "preset not text": ("preset = 3\n", "preset"),
    "invalid medium": ('[device]\nmedium = "Au"\n', "device.medium"),
    "medium with a line break": ('[device]\nmedium = "Cr\\n.control"\n', "device.medium"),
    "feedback zero": ("[circuit.neuron]\nr_feedback_ohm = 0\n", "r_feedback_ohm"),
    "nan": ("[circuit]\nr_sense_ohm = nan\n", "circuit.r_sense_ohm"),
    "inf": ("[timing]\ncontroller_overhead_s = inf\n", "timing.controller_overhead_s"),
    "text for a number": ('[tuning]\ntolerance = "0.05"\n', "tuning.tolerance"),
    "list for a number": ("[tuning]\ntolerance = [0.05]\n", "tuning.tolerance"),
    "unknown key": ("[tuning]\ntolerence = 0.05\n", "tuning.tolerence"),
    "sweep too slow to simulate": ("[curves]\nsweep_frequency_Hz = 1e-9\n", "curves.sweep_frequency_Hz"),
    "not TOML": ("[circuit\n", "config.toml"),
    # Subnormal numbers pass "(0, high]" but divide to inf or multiply to 0 inside a run.
    "subnormal activation gain": ("[circuit.neuron]\nactivation_gain_per_V = 1e-320\n",
                                  "circuit.neuron.activation_gain_per_V"),
    "subnormal switch resistance": ("[circuit]\nr_switch_on_ohm = 1e-320\n", "circuit.r_switch_on_ohm"),
    "subnormal device override": ("[device.overrides]\nr_on_ohm = 1e-320\n", "device.overrides.r_on_ohm"),
    "smallest subnormal": ("[circuit.neuron]\nw_full_scale = 5e-324\n", "circuit.neuron.w_full_scale"),
    "design rule underflows": ("[circuit]\nv_read_V = 1e-300\n[circuit.neuron]\nactivation_gain_per_V = 1e-300\n",
                               "circuit.neuron.r_feedback_ohm"),
}


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_bad_config_values_fail_in_one_line_even_with_all_media(case, tmp_path, capfd):
    text, name = CONFIGS[case]
    config = tmp_path / "config.toml"
    config.write_text(text)
    code = main(["netlist", "--config", str(config), "--medium", "all", "--out", str(tmp_path / "out")])
    _one_line(capfd, code, name)
    assert not (tmp_path / "out").exists()  # nothing written before the input was checked


def test_non_utf8_config_and_trace_name_the_file(tmp_path, capfd):
    bad = tmp_path / "latin1.toml"
    bad.write_bytes("medium = 'Cr'  # r\xe9sistance\n".encode("latin-1"))
    _one_line(capfd, main(["netlist", "--config", str(bad), "--out", str(tmp_path)]), bad, "UTF-8")
    trace = tmp_path / "trace.csv"
    trace.write_bytes(b"time_s,voltage_V,current_A\n0,0,0\n\xff\xfe,1,2\n")
    _one_line(capfd, main(["fit", str(trace), "--medium", "W", "--out", str(tmp_path / "fit")]), trace, "UTF-8")


def test_os_errors_name_the_path(tmp_path, capfd):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    (tmp_path / "a_folder").mkdir()
    _one_line(capfd, main(["netlist", "--out", str(a_file)]), a_file)
    _one_line(capfd, main(["simulate", "--medium", "Cr", "--out", str(tmp_path / "a_folder")]), "--out", "a_folder")
    _one_line(capfd, main(["device-curves", "--medium", "C", "--out", str(a_file)]), a_file)
    _one_line(capfd, main(["train", "--backend", "surrogate", "--store", "/proc/version/runs", "--quiet"]),
              "/proc/version")
    _one_line(capfd, main(["netlist", "--config", str(tmp_path / "a_folder")]), "a_folder")
    _one_line(capfd, main(["fit", str(tmp_path / "missing.csv"), "--medium", "Cr"]), "missing.csv")


def test_bad_arguments_name_the_option(tmp_path, capfd):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    _one_line(capfd, main(["runs", "--label", "foo", "--store", str(tmp_path)]), "--label", "foo")
    _one_line(capfd, main(["runs", "--store", str(a_file)]), a_file)
    _one_line(capfd, main(["compare-media", "--heatmap-medium", "Au", "--backend", "surrogate",
                           "--store", str(tmp_path / "s"), "--quiet"]), "--heatmap-medium", "Au")
    _one_line(capfd, main(["compare-media", "--medium", "W", "--heatmap-medium", "Cr", "--backend", "surrogate",
                           "--store", str(tmp_path / "s"), "--quiet"]), "--heatmap-medium")
    _one_line(capfd, main(["simulate", "--states", "abc"]), "--states")
    _one_line(capfd, main(["simulate", "--states", ",".join(["1e400"] * 30)]), "states[0]")
    _one_line(capfd, main(["networks", "--seed", "-5", "--store", str(tmp_path / "n"), "--quiet"]), "--seed")
    _one_line(capfd, main(["crosscheck", "--seeds", "0", "--store", str(tmp_path / "c"), "--quiet"]), "seeds")
    _one_line(capfd, main(["report", "../etc", "--store", str(tmp_path)]), "../etc")
    assert not (tmp_path / "s").exists() or RunStore(tmp_path / "s").list() == []


def test_bad_options_are_one_line_too(capfd):
    _one_line(capfd, _exit_code(["crosscheck", "--seeds", "abc"]), "--seeds", "abc")
    _one_line(capfd, _exit_code(["no-such-command"]), "no-such-command")
    _one_line(capfd, _exit_code([]), "command")


STORE = ["--store", "{store}", "--quiet"]


@pytest.mark.parametrize("argv, option", [
    (["train", "--backend", "surrogate", "--resume", "", *STORE], "--resume"),   # would start a new run
    (["train", "--backend", "surrogate", "--medium", " ", *STORE], "--medium"),  # would train Cr
    (["train", "--backend", "surrogate", "--trainer", "", *STORE], "--trainer"),
    (["compare-media", "--backend", "surrogate", "--medium", "W", "--heatmap-medium", "", *STORE],
     "--heatmap-medium"),                                                       # would skip the heat-map
    (["networks", "--mnist", "", *STORE], "--mnist"),
    (["sweep", "", *STORE], "SPEC.toml"),
    (["report", "", "--store", "{store}"], "RUN_ID"),
    (["runs", "--store", ""], "--store"),                                       # would list the current folder
    (["fit", "", "--medium", "W"], "trace"),
])
def test_empty_option_values_are_refused_not_taken_for_the_default(argv, option, tmp_path, capfd):
    """An unset shell variable (``--resume "$RUN"``) gives an empty value: never the default."""
    argv = [a.format(store=tmp_path / "s") for a in argv]
    _one_line(capfd, _exit_code(argv), f"argument {option}: an empty value")
    assert not (tmp_path / "s").exists()


def test_a_medium_list_naming_no_medium_is_refused(tmp_path, capfd):
    """`--medium ,` wrote the model libraries and nothing else, exit 0; compare-media blamed the heat-map."""
    _one_line(capfd, main(["netlist", "--medium", ",", "--out", str(tmp_path / "n")]), "--medium = ','")
    _one_line(capfd, main(["compare-media", "--medium", " , ", "--backend", "surrogate", "--store",
                           str(tmp_path / "s"), "--quiet"]), "--medium")
    assert not (tmp_path / "n").exists() and not (tmp_path / "s").exists()
    assert main(["netlist", "--medium", "W,w", "--out", str(tmp_path / "n")]) == 0  # each medium once
    assert capfd.readouterr().out.count("default_w.cir") == 1


def test_options_where_empty_means_none_keep_it():
    from circuitnn.cli import build_parser

    args = build_parser().parse_args(["learn-networks", "--extra-methods", "", "--cnn-methods", ""])
    args.parser.refuse_empty(args)  # documented in their help: the empty list
    assert args.extra_methods == args.cnn_methods == ""


def test_unknown_run_kind_is_named(tmp_path, capfd):
    """`--kind calibrate` (the command's name, not the kind's) must not look like an empty store."""
    _one_line(capfd, main(["runs", "--kind", "calibrate", "--store", str(tmp_path)]), "--kind", "calibration")
    RunStore(tmp_path).create("my-study", {}, 0).fail("done")  # a kind made through the Python API
    assert main(["runs", "--kind", "my-study", "--store", str(tmp_path)]) == 0
    assert "my-study" in capfd.readouterr().out


@pytest.mark.parametrize("address", ["foo", "tcp://h:x", "tcp://127.0.0.1:1\n.control", "bogus://h:1",
                                     "tcp://127.0.0.1:99999", "tcp://:8786"])
def test_bad_scheduler_address_is_named(address, tmp_path, capfd):
    spec = tmp_path / "spec.toml"
    spec.write_text("[grid]\nseed = [1]\n")
    _one_line(capfd, main(["sweep", str(spec), "--scheduler", address, "--store", str(tmp_path / "s"), "--quiet"]),
              "--scheduler", "HOST:PORT")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("name", ["a" * 81, "tolerance\u2028sweep", "tolerance\nsweep", "\x1b[2Jx"])
def test_sweep_name_is_one_short_line(name, tmp_path, capfd):
    spec = tmp_path / "spec.toml"
    spec.write_text(f"name = {json.dumps(name)}\n[grid]\nseed = [1]\n")
    _one_line(capfd, main(["sweep", str(spec), "--store", str(tmp_path / "s"), "--quiet"]), "name = ", "80 characters")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("argv, name", [
    (["networks", "--weight-noise", "nan"], "training.weight_noise"),
    (["networks", "--epochs", "0"], "training.epochs"),
    (["networks", "--repeats", "0"], "evaluation.repeats"),
    (["drift", "--mnist", "{empty}"], "no MNIST"),
    (["learn-networks", "--hidden", "99999"], "network.hidden"),
    (["learn-networks", "--neuron-levels", "0.1,2"], "variation.neuron_gain_sigma = 2.0"),
])
def test_bad_study_settings_leave_no_failed_run(argv, name, tmp_path, capfd):
    """Refused before the run is made: a failed run holding the bad value (NaN in its plan) would
    clutter `circuitnn runs` and fail again on every --resume."""
    (tmp_path / "empty").mkdir()
    argv = [a.format(empty=tmp_path / "empty") for a in argv]
    _one_line(capfd, main([*argv, "--store", str(tmp_path / "s"), "--quiet"]), name)
    assert RunStore(tmp_path / "s").list() == []


def test_a_defect_behind_the_named_errors_is_still_one_line(monkeypatch, tmp_path, capfd):
    """The net behind every named error: an unexpected exception (a bug, not bad input) is one line
    and exit 1; -v adds the traceback."""
    import circuitnn.cli as cli

    def broken(args):
        raise TypeError("unhashable type: 'list'")

    monkeypatch.setattr(cli, "cmd_runs", broken)
    _one_line(capfd, main(["runs", "--store", str(tmp_path)]), "internal error: TypeError", "-v",
              expected_code=1)
    assert main(["-v", "runs", "--store", str(tmp_path)]) == 1
    assert "Traceback" in capfd.readouterr().err


def _exit_code(argv) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


def test_runs_of_another_kind_are_named(tmp_path, capfd):
    store = RunStore(tmp_path)
    other = store.create("networks", {}, 0)
    other.fail("stopped")
    for argv in (["train", "--resume", other.id], ["crosscheck", "--resume", other.id],
                 ["compare-media", "--resume", other.id]):
        _one_line(capfd, main([*argv, "--store", str(tmp_path)]), other.id, "'networks' run")
    # A networks run has a report of its own kind; this one wrote nothing to report from.
    _one_line(capfd, main(["report", other.id, "--store", str(tmp_path), "--out", str(tmp_path / "r")]), other.id)
    assert store.open(other.id).status == "failed"  # refused before anything was reopened


def test_missing_libngspice_is_one_line(monkeypatch, capfd):
    monkeypatch.setenv("CIRCUITNN_NGSPICE_LIBRARY", "/nonexistent/libngspice.so.0")
    _one_line(capfd, main(["simulate", "--medium", "Cr"]), "libngspice.so.0 not found",
              "install libngspice0 (scripts/setup.sh does)", expected_code=1)


# -- reports on damaged runs ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stored_run(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    assert main(["compare-media", "--backend", "surrogate", "--medium", "Cr", "--store", str(store),
                 "--quiet"]) == 0
    (info,) = RunStore(store).list()
    return info.path


def _copy(stored_run, tmp_path) -> tuple[Path, Path]:
    run_dir = tmp_path / "runs" / stored_run.name
    shutil.copytree(stored_run, run_dir)
    return tmp_path / "runs", run_dir


def _rewrite(run_dir, rel, change, keep_record_consistent: bool) -> None:
    path = run_dir / rel
    path.write_text(change(path.read_text()))
    if keep_record_consistent:  # as a run written before hashes were recorded would read
        record = json.loads((run_dir / "run.json").read_text())
        record["files"][rel] = path.stat().st_size
        (run_dir / "run.json").write_text(json.dumps(record))


@pytest.mark.parametrize("damage, names", [
    (lambda t: t.replace("sigma", "sigmaX", 1), ["sweep.csv", "'sigma'"]),
    (lambda t: t.replace("\n0.0,", "\nabc,", 1), ["sweep.csv", "'sigma'", "row 2"]),
])
@pytest.mark.parametrize("consistent", [False, True])
def test_report_on_an_edited_csv_names_file_and_column(stored_run, tmp_path, capfd, damage, names, consistent):
    store, run_dir = _copy(stored_run, tmp_path)
    _rewrite(run_dir, "parts/Cr-errors/sweep.csv", damage, consistent)
    code = main(["report", run_dir.name, "--store", str(store), "--out", str(tmp_path / "reports")])
    # With the record untouched the store itself notices (size or SHA-256); with a record that agrees
    # (a run from before hashes), the report names the column it needs.
    _one_line(capfd, code, *(names if consistent else ["corrupt run directory", "sweep.csv"]))


def test_report_on_an_edited_summary_names_file_and_field(stored_run, tmp_path, capfd):
    store, run_dir = _copy(stored_run, tmp_path)
    _rewrite(run_dir, "parts/Cr-noreset/summary.json",
             lambda t: json.dumps({**json.loads(t), "training_time_s": "fast"}), True)
    _one_line(capfd, main(["report", run_dir.name, "--store", str(store), "--out", str(tmp_path / "r")]),
              "summary.json", "training_time_s")
    _rewrite(run_dir, "run.json", lambda t: t.replace('"status": "complete"', '"status": "done"'), False)
    code = main(["runs", "--store", str(store)])
    out, err = capfd.readouterr()
    assert code == 0 and out.count("skipped") == 1 and "status 'done'" in out


def test_output_never_goes_into_a_stored_run(stored_run, tmp_path, capfd):
    """`report --out <the store>` would write <store>/<RUN_ID>/report.md etc. over the run's own
    recorded files; any command's --out inside a run's folder would too."""
    store, run_dir = _copy(stored_run, tmp_path)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    _one_line(capfd, main(["report", run_dir.name, "--store", str(store), "--out", str(store)]), "--out", run_dir.name)
    _one_line(capfd, main(["netlist", "--medium", "W", "--out", str(run_dir)]), "--out", "stored run")
    _one_line(capfd, main(["simulate", "--medium", "W", "--out", str(run_dir / "parts" / "x.json")]), "--out")
    # A store inside a run: new runs would hide among its files, and go with it.
    _one_line(capfd, main(["train", "--backend", "surrogate", "--store", str(run_dir), "--quiet"]), "--store",
              "not a run's own folder")
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
    assert main(["report", run_dir.name, "--store", str(store), "--out", str(tmp_path / "reports")]) == 0
    RunStore(store).open(run_dir.name)  # every recorded file still matches its hash
    # Any other file called run.json is not a run: a project folder holding one is no obstacle.
    (tmp_path / "project" / "run.json").parent.mkdir()
    (tmp_path / "project" / "run.json").write_text('{"steps": 3}')
    assert main(["netlist", "--medium", "W", "--out", str(tmp_path / "project" / "netlists")]) == 0


def test_fit_names_a_medium_it_cannot_fit(tmp_path, capfd):
    trace = tmp_path / "trace.csv"
    trace.write_text("time_s,voltage_V,current_A\n" + "".join(f"{k * 1e-3},{k % 5 / 10},{k % 5 / 1e4}\n"
                                                               for k in range(20)))
    for medium in ("PCM", "VTEAM"):  # no M-SDC parameters to fit: was an AttributeError traceback
        _one_line(capfd, main(["fit", str(trace), "--medium", medium, "--out", str(tmp_path / "fit")]),
                  "device.medium", medium, "M-SDC")
    _one_line(capfd, main(["fit", str(trace), "--medium", "W", "--r-series-ohm", "1e300", "--out",
                           str(tmp_path / "fit")]), "fit.r_series_ohm", "1e+09")
    assert not (tmp_path / "fit").exists()


def test_an_endless_trace_is_refused_without_reading_it_all(monkeypatch, tmp_path, capfd):
    """`fit /dev/zero` read until the memory ran out (a MemoryError, or the machine swapping)."""
    from circuitnn.devices import fit

    monkeypatch.setattr(fit, "MAX_TRACE_BYTES", 2**16)  # the same check, at a size a test can afford
    _one_line(capfd, main(["fit", "/dev/zero", "--medium", "W", "--out", str(tmp_path / "fit")]),
              "/dev/zero", "larger than")


# -- signals ----------------------------------------------------------------------------------------------
def _has_checkpoint(store: Path) -> bool:
    """True once a run under ``store`` has recorded a checkpoint (its workers are then busy)."""
    for record in store.glob("*/run.json"):
        try:
            if json.loads(record.read_text()).get("latest_checkpoint"):
                return True
        except (OSError, ValueError):
            pass
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_signal_to_the_process_group_stops_in_one_line_and_leaves_the_run_resumable(tmp_path, signum):
    store = tmp_path / "runs"
    process = subprocess.Popen([sys.executable, "-m", "circuitnn.cli", "train", "--medium", "C", "--store",
                                str(store), "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not _has_checkpoint(store) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(process.pid, signum)  # what a closed terminal or `kill -TERM -PGID` does: workers too
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum
    assert err.count("\n") == 1 and signal.Signals(signum).name in err and "Traceback" not in err, err
    (info,) = RunStore(store).list()
    assert info.status == "failed"
    run = RunStore(store).resume(info.id)  # opens (every file checked), locks, continues
    assert run.load_checkpoint() is not None
    run.close()
