"""The command line itself: help text on every option, a version, one default store, and one-line
answers to input it cannot use."""

import argparse

import pytest

from circuitnn import __version__
from circuitnn.cli import DEFAULT_STORE, build_parser, main


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_option_of_every_command_has_help_text():
    parser = build_parser()
    commands = _subparsers(parser)
    assert len(commands) >= 13
    missing = [f"circuitnn {name} {action.option_strings or action.dest}"
               for name, sub in [("", parser), *commands.items()]
               for action in sub._actions
               if not isinstance(action, argparse._SubParsersAction) and not (action.help or "").strip()]
    assert missing == []


def test_the_description_is_plain_text_and_there_is_a_version(capsys):
    parser = build_parser()
    assert "``" not in parser.description and "circuitnn" not in parser.description.split()[0]
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"circuitnn {__version__}"


def test_one_default_store_for_every_command_that_stores_or_reads_runs():
    parser = build_parser()
    stores = {name: sub.get_default("store") for name, sub in _subparsers(parser).items()
              if sub.get_default("store") is not None}
    assert set(stores) >= {"train", "compare-media", "calibrate", "crosscheck", "networks", "report", "runs"}
    assert set(stores.values()) == {DEFAULT_STORE}
    # The main job stores its run there too (<--out>/runs with the default --out).
    assert f"{_subparsers(parser)['reproduce'].get_default('out')}/runs" == DEFAULT_STORE


def test_runs_names_the_folder_it_looked_in(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["runs", "--store", str(missing)]) == 0
    assert capsys.readouterr().out.strip() == (f"no runs in {missing} (the folder does not exist; "
                                               "give another with --store)")
    assert main(["runs", "--store", str(tmp_path), "--label", "media"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_fit_needs_the_medium_of_the_trace(tmp_path, capsys):
    trace = tmp_path / "trace.csv"
    trace.write_text("time_s,voltage_V,current_A\n0,0,0\n")
    assert main(["fit", str(trace), "--out", str(tmp_path / "fit")]) == 2
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and "--medium" in message
    assert not (tmp_path / "fit").exists()


def test_fit_names_its_files_after_the_medium_given(tmp_path):
    from circuitnn.circuits import characterize
    from circuitnn.experiments.config import load_config
    from circuitnn.devices import msdc
    from circuitnn.devices.base import preset as medium

    true = medium("W")
    t, v = characterize.sine_sweep(1.0, 1 / (3 * true.tau_s), 2, 100)
    _, _, i = msdc.simulate_waveform(true, 0.2, t, v)
    trace = tmp_path / "w_trace.csv"
    trace.write_text("time_s,voltage_V,current_A\n" + "\n".join(
        f"{a:.12g},{b:.12g},{c:.12g}" for a, b, c in zip(t, v, i)) + "\n")
    assert main(["fit", str(trace), "--medium", "W", "--out", str(tmp_path / "fit")]) == 0
    assert sorted(p.name for p in (tmp_path / "fit").iterdir()) == [
        "fit_w.csv", "fit_w.json", "fit_w.toml", "fit_w_iv.png"]
    assert load_config(tmp_path / "fit" / "fit_w.toml").device.medium == "W"
