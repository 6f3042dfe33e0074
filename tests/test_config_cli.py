"""Configuration files and the command line: presets, dotted-path errors, exit status 2."""

import json

import pytest

from circuitnn.cli import main
from circuitnn.experiments.config import load_config, preset_names
from circuitnn.errors import ConfigError
from circuitnn.spice.batch import ngspice_version


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads_and_builds(name):
    config = load_config(None, name)
    assert config.device.params().medium == name
    spec = config.crossbar_spec()
    assert [spec.layers[0].n_inputs] + [layer.n_outputs for layer in spec.layers] == [9, 3, 1]


def _write(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_user_file_overrides_a_named_preset(tmp_path):
    path = _write(tmp_path, 'preset = "W"\n[device.overrides]\nr_on_ohm = 2500.0\n[circuit]\nr_line_ohm = 2.0\n')
    config = load_config(path)
    assert config.device.medium == "W"
    assert config.device.params().r_on_ohm == 2500.0
    assert "overridden" in config.device.params().provenance
    assert config.crossbar_spec().r_line_ohm == 2.0


@pytest.mark.parametrize("text,path,fragment", [
    ("[circuit]\nv_read_V = 5.0\n", "circuit.v_read_V", "(0, 0.3]"),
    ("[circuit.neuron]\nactivation = 'relu'\n", "circuit.neuron.activation", "sigmoid"),
    ("[tuning]\npulse_width_s = 'long'\n", "tuning.pulse_width_s", "a number"),
    ("[tuning]\nmin_pulse_width_s = 1e-6\nedge_s = 1e-5\n", "tuning.edge_s", "(1e-12, 1e-06]"),
    ("[tuning]\ninitial_reset = 1\n", "tuning.initial_reset", "true or false"),
    ("[programming]\nr_sense_ohm = 0.0\n", "programming.r_sense_ohm", "(0, 1e+06]"),
    ("[onchip]\nnoise_levels = [0.1, 0.9]\n", "onchip.noise_levels[1]", "[0, 0.5]"),
    ("[training]\noptimizer = 'sgd'\n", "training.optimizer", "adam"),
    ("[device.overrides]\ntau_s = -1.0\n", "device.overrides.tau_s", "(1e-12, 1000]"),
    ("[device.overrides]\ncolour = 1.0\n", "device.overrides.colour", "a model field"),
    ("[device]\nmedium = 'Ag'\n", "device.medium", "W, Cr, C"),
    ("[circuit]\nlayers = [9, 0, 1]\n", "circuit.layers[0].n_outputs", "[1, 1024]"),
    ("[circut]\nx = 1\n", "circut", "a known field"),
])
def test_bad_values_name_path_value_and_range(tmp_path, text, path, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    assert info.value.path == path
    assert fragment in str(info.value)


def test_cli_bad_config_exits_2_with_the_dotted_path(tmp_path, capsys):
    code = main(["simulate", "--config", str(_write(tmp_path, "[circuit]\nv_read_V = 5.0\n"))])
    assert code == 2
    assert "circuit.v_read_V = 5.0" in capsys.readouterr().err


def test_cli_bad_states_exit_2(capsys):
    assert main(["simulate", "--medium", "Cr", "--states", "0.5,abc"]) == 2
    assert main(["simulate", "--medium", "Cr", "--states", ",".join(["0.5"] * 29)]) == 2
    assert "states" in capsys.readouterr().err


def test_cli_simulate_reads_the_operating_point(tmp_path, capsys):
    out = tmp_path / "op.json"
    states = ",".join(["0.25"] * 30)
    assert main(["simulate", "--medium", "W", "--states", states, "--inputs", "1,0,1,0,1,0,1,0,1",
                 "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["medium"] == "W" and len(report["conductances_S"]) == 30
    # All devices equal and below G_ref: every weight negative, so every hidden TIA output is
    # positive (inverting stage, negative net current) and equal across the three neurons.
    tia = [report["neuron_nodes_V"][f"l1o{j}"] for j in range(3)]
    assert tia[0] > 0 and tia[0] == pytest.approx(tia[1]) == pytest.approx(tia[2])


def test_demo_writes_netlists_curves_and_operating_points(tmp_path):
    assert main(["demo", "--out", str(tmp_path), "--medium", "C"]) == 0
    for name in ("netlists/default_c.cir", "models/msdc.lib", "operating_points.json",
                 "device-curves/C_hysteresis.csv", "device-curves/C_pulses.csv",
                 "device-curves/C_curves.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    summary = json.loads((tmp_path / "operating_points.json").read_text())
    assert summary["media"]["C"]["max_state_read_back_error"] < 1e-9
    assert summary["ngspice"] == ngspice_version()


def test_cli_fit_recovers_parameters_from_a_spice_trace(tmp_path, engine, capsys):
    from circuitnn.circuits import characterize
    from circuitnn.devices.base import preset

    true = preset("Cr").replace(r_on_ohm=6000.0, tau_s=130e-6)
    t, v = characterize.concatenate_waveforms(
        characterize.sine_sweep(0.8, 1 / (3 * true.tau_s), 2, 200),
        characterize.sine_sweep(1.2, 1 / (3 * true.tau_s), 2, 200))
    trace = characterize.simulate_trace(true, t, v, engine, x0=0.2)
    csv = tmp_path / "trace.csv"
    rows = "\n".join(f"{a:.12g},{b:.12g},{c:.12g}" for a, b, c in zip(trace.t_s, trace.v_device_V, trace.i_device_A))
    csv.write_text("time_s,voltage_V,current_A\n" + rows + "\n")
    assert main(["fit", str(csv), "--medium", "Cr", "--out", str(tmp_path / "fit")]) == 0
    fitted = load_config(tmp_path / "fit" / "fit_cr.toml").device.params()
    assert fitted.r_on_ohm == pytest.approx(6000.0, rel=0.05)
    assert fitted.tau_s == pytest.approx(130e-6, rel=0.05)
    assert "trace.csv" in (tmp_path / "fit" / "fit_cr.json").read_text()  # provenance names the file
    assert (tmp_path / "fit" / "fit_cr_iv.png").stat().st_size > 0


def test_cli_fit_bad_trace_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("time_s,voltage_V\n0,0\n")
    assert main(["fit", str(bad), "--medium", "Cr"]) == 2
    assert "bad.csv" in capsys.readouterr().err


def _number_fields():
    """(dotted path, trainer kind) of every real-valued config field: the preset's, the optional
    ones, neuron mismatch, device overrides and each trainer's settings."""
    import dataclasses
    import tomllib

    from circuitnn.experiments.config import preset_text
    from circuitnn.training.trainer import trainer as trainer_class

    def leaves(table, prefix=""):
        for key, value in table.items():
            if isinstance(value, dict) and value:
                yield from leaves(value, f"{prefix}{key}.")
            elif isinstance(value, float):
                yield f"{prefix}{key}"

    fields = [(path, None) for path in leaves(tomllib.loads(preset_text("Cr")))]
    fields += [("circuit.g_ref_S", None), ("circuit.neuron.r_feedback_ohm", None)]
    fields += [(f"circuit.mismatch.{name}", None) for name in
               ("feedback_sigma", "offset_sigma_V", "gain_sigma", "threshold_sigma_V", "reference_sigma")]
    fields += [(f"device.overrides.{name}", None) for name in ("r_on_ohm", "r_off_ohm", "v_on_V", "tau_s", "i_max_A")]
    for kind in ("dgc", "drift-regularized"):
        fields += [(f"trainer.settings.{f.name}", kind) for f in dataclasses.fields(trainer_class(kind).settings_type)
                   if f.type in (float, "float")]
    return fields


@pytest.mark.parametrize("value", [1e-320, -5e-324])
def test_every_number_field_refuses_subnormal_values_by_its_path(value):
    """A subnormal passes "(0, high]" but turns into 0 or inf in the first product or reciprocal (a
    division by zero, a netlist number ngspice cannot hold, a run that fails half-way): every field
    refuses it at load time, naming itself."""
    from circuitnn.experiments.config import config_from_table

    fields = _number_fields()
    assert len(fields) > 50
    for path, kind in fields:
        table = {}
        *parents, leaf = path.split(".")
        node = table
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
        with pytest.raises(ConfigError) as info:
            config_from_table(table, None, kind)
        assert info.value.path == path


def test_a_byte_order_mark_is_not_part_of_the_config(tmp_path):
    """Windows editors start UTF-8 files with a byte-order mark; TOML would read it as a bad key."""
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + b"seed = 7\n[circuit]\nv_read_V = 0.05\n")
    config = load_config(path)
    assert config.seed == 7 and config.circuit.v_read_V == 0.05
