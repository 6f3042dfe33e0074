"""Calibrating the surrogate against SPICE, and measuring its error on held-out SPICE runs.

The designed experiments (all on the real ngspice through ``SpiceChip``):

* **array reads**: random device states and random inputs on the medium's default 9-3-1 circuit,
  at several line resistances (0, 1, 5, 20 Ω per crosspoint), reading every neuron's TIA output
  (the column current times R_f) and the inference energy;
* **pulse trains**: random start states and random sequences of SET and RESET pulses of several
  widths, reading the state after every pulse and each pulse's device and source energy.

Each experiment is split into a calibration half and a held-out half (seeded). The surrogate's free
parameters (``SurrogateCalibration``) are fitted on the first with ``scipy.optimize.least_squares``
and the errors reported on the second: column currents (RMS relative), states after pulse trains
(max absolute), energy per pulse (max relative). Targets: 1 %, 0.01 and 5 %.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..chip.spice_chip import SpiceChip
from ..circuits.crossbar import Crossbar
from ..circuits.program import PulseSpec
from .config import Config

LINE_RESISTANCES_OHM = (0.0, 1.0, 5.0, 20.0)
PULSE_WIDTHS_S = (0.5e-6, 2e-6, 10e-6, 40e-6)
TARGETS = {"current_rms_relative": 0.01, "state_max_abs": 0.01, "energy_max_relative": 0.05}


@dataclass
class ArrayExperiment:
    line_resistance_ohm: float
    states: np.ndarray        # (n_devices,)
    inputs: np.ndarray        # (n, 9)
    currents_A: np.ndarray    # (n, n_neurons) current through each column's sense resistor
    energy_J: float


@dataclass
class PulseExperiment:
    x0: float
    pulses: list[PulseSpec]
    states: np.ndarray        # (n_pulses,) state after each pulse
    energy_device_J: np.ndarray
    energy_source_J: np.ndarray


def _column_currents(chip, inputs) -> tuple[np.ndarray, float]:
    """Every neuron's column current (A) for each input, and the inference energy."""
    result = chip.infer(inputs)
    return np.concatenate(result.column_currents_A, axis=1), result.energy_total_J


def spice_experiments(config: Config, n_states: int = 4, n_inputs: int = 24, n_trains: int = 8,
                      pulses_per_train: int = 20, seed: int = 0) -> tuple[list[ArrayExperiment], list[PulseExperiment]]:
    """Run the designed SPICE experiments for one medium."""
    rng = np.random.default_rng([seed, 11])
    arrays = []
    for r_line in LINE_RESISTANCES_OHM:
        spec = dataclasses.replace(config.crossbar_spec(), r_line_ohm=r_line)
        crossbar = Crossbar(spec)
        for _ in range(n_states):
            states = rng.uniform(0, 1, crossbar.n_devices)
            inputs = rng.integers(0, 2, (n_inputs, crossbar.n_inputs)).astype(float)
            with SpiceChip(crossbar, states, config.programming, config.timing) as chip:
                currents, energy = _column_currents(chip, inputs)
            arrays.append(ArrayExperiment(r_line, states, inputs, currents, energy))
    trains = []
    crossbar = Crossbar(config.crossbar_spec())
    tuning = config.tuning
    with SpiceChip(crossbar, np.zeros(crossbar.n_devices), config.programming, config.timing) as chip:
        for _ in range(n_trains):
            x0 = float(rng.uniform(0, 1))
            pulses = [PulseSpec(tuning.set_amplitude_V if rng.random() < 0.5 else tuning.reset_amplitude_V,
                                float(rng.choice(PULSE_WIDTHS_S)), tuning.edge_s)
                      for _ in range(pulses_per_train)]
            chip.load_states(np.full(crossbar.n_devices, x0))
            events = [chip.pulse_device(0, pulse) for pulse in pulses]
            trains.append(PulseExperiment(x0, pulses, np.array([e.x_after for e in events]),
                                          np.array([e.energy_device_J for e in events]),
                                          np.array([e.energy_total_J for e in events])))
    return arrays, trains


# -- the surrogate on the same experiments -------------------------------------------------------------
def surrogate_predictions(config: Config, calibration, arrays: list[ArrayExperiment],
                          trains: list[PulseExperiment]) -> dict[str, np.ndarray]:
    """What the surrogate (with ``calibration``) says for every SPICE experiment, flattened."""
    from ..chip.surrogate_chip import SurrogateChip

    currents, energies = [], []
    for experiment in arrays:
        spec = dataclasses.replace(config.crossbar_spec(), r_line_ohm=experiment.line_resistance_ohm)
        chip = SurrogateChip(Crossbar(spec), experiment.states, config.programming, config.timing,
                             calibration=calibration)
        result = chip.infer(experiment.inputs)
        currents.append(np.concatenate(chip.array_response(experiment.inputs).column_currents_A, axis=1))
        energies.append(result.energy_total_J)
    states, e_device, e_source = [], [], []
    crossbar = Crossbar(config.crossbar_spec())
    chip = SurrogateChip(crossbar, np.zeros(crossbar.n_devices), config.programming, config.timing,
                         calibration=calibration)
    for train in trains:
        chip.load_states(np.full(crossbar.n_devices, train.x0))
        events = [chip.pulse_device(0, pulse) for pulse in train.pulses]
        states.append([e.x_after for e in events])
        e_device.append([e.energy_device_J for e in events])
        e_source.append([e.energy_total_J for e in events])
    return {"currents_A": np.concatenate([c.ravel() for c in currents]), "inference_energy_J": np.array(energies),
            "states": np.ravel(states), "energy_device_J": np.ravel(e_device), "energy_source_J": np.ravel(e_source)}


def spice_values(arrays: list[ArrayExperiment], trains: list[PulseExperiment]) -> dict[str, np.ndarray]:
    return {"currents_A": np.concatenate([a.currents_A.ravel() for a in arrays]),
            "inference_energy_J": np.array([a.energy_J for a in arrays]),
            "states": np.concatenate([t.states for t in trains]),
            "energy_device_J": np.concatenate([t.energy_device_J for t in trains]),
            "energy_source_J": np.concatenate([t.energy_source_J for t in trains])}


def errors(predicted: dict[str, np.ndarray], spice: dict[str, np.ndarray]) -> dict[str, float]:
    """The issue's error measures, surrogate against SPICE."""
    scale = np.sqrt(np.mean(spice["currents_A"] ** 2))
    rel_energy = [np.max(np.abs(predicted[k] - spice[k]) / np.abs(spice[k]))
                  for k in ("energy_device_J", "energy_source_J")]
    return {
        "current_rms_relative": float(np.sqrt(np.mean((predicted["currents_A"] - spice["currents_A"]) ** 2)) / scale),
        "state_max_abs": float(np.max(np.abs(predicted["states"] - spice["states"]))),
        "energy_max_relative": float(max(rel_energy)),
        "inference_energy_max_relative": float(np.max(np.abs(predicted["inference_energy_J"] - spice["inference_energy_J"])
                                                      / spice["inference_energy_J"])),
    }


FREE = ("pulse_width_scale_set", "pulse_width_scale_reset", "series_resistance_offset_ohm", "gain_scale")


def fit(config: Config, arrays: list[ArrayExperiment], trains: list[PulseExperiment], name: str):
    """Least-squares fit of the free parameters to the calibration experiments."""
    from scipy.optimize import least_squares

    from ..surrogate.calibration_params import SurrogateCalibration

    spice = spice_values(arrays, trains)
    current_scale = np.sqrt(np.mean(spice["currents_A"] ** 2))

    def make(p) -> SurrogateCalibration:
        return SurrogateCalibration(name=name, source="fitting", pulse_width_scale_set=p[0],
                                    pulse_width_scale_reset=p[1], series_resistance_offset_ohm=p[2],
                                    gain_scale=p[3])

    def residuals(p):
        predicted = surrogate_predictions(config, make(p), arrays, trains)
        return np.concatenate([
            (predicted["currents_A"] - spice["currents_A"]) / current_scale,
            (predicted["states"] - spice["states"]) / 0.01,
            np.log(predicted["energy_source_J"] / spice["energy_source_J"]) / 0.05,
        ])

    solution = least_squares(residuals, x0=[1.0, 1.0, 0.0, 1.0], x_scale=[0.01, 0.01, 1.0, 0.001],
                             bounds=([0.5, 0.5, -50.0, 0.9], [2.0, 2.0, 50.0, 1.1]), diff_step=1e-3, max_nfev=60)
    return make(solution.x), solution
