"""The demo part of the main job: each medium's default circuit at an operating point in SPICE, and its
device curves (hysteresis loop, pulse response). Computes only; ``reports/artifacts.py`` writes files."""

from __future__ import annotations

import numpy as np

from .. import __version__
from ..circuits.crossbar import Crossbar
from ..circuits.default import EXAMPLE_INPUT, example_states
from ..spice.batch import ngspice_version
from ..spice.engine import SpiceEngine
from .config import Config
from .device_curves import DeviceCurves, device_curves
from .operating_point import read_operating_point


def operating_points(configs: list[Config], engine: SpiceEngine) -> dict:
    """Per medium: the example netlist's operating point and how well ``.op`` reads the states back."""
    summary = {"circuitnn": __version__, "ngspice": ngspice_version(), "media": {}}
    for config in configs:
        crossbar = Crossbar(config.crossbar_spec())
        states = example_states(crossbar.n_devices, config.seed)
        point = read_operating_point(crossbar, states, EXAMPLE_INPUT, engine)
        summary["media"][config.device.medium] = {
            "seed": config.seed,
            "states": states.tolist(),
            "inputs": list(EXAMPLE_INPUT),
            "neuron_nodes_V": point.neuron_nodes,
            "max_state_read_back_error": float(np.max(np.abs(point.states_read_back - states))),
            "config": config.as_dict(),
        }
    return summary


def all_device_curves(configs: list[Config], engine: SpiceEngine | None = None) -> list[DeviceCurves]:
    """The device curves of every config's medium (a private engine unless one is given)."""
    if engine is not None:
        return [device_curves(config, engine) for config in configs]
    with SpiceEngine() as own:
        return [device_curves(config, own) for config in configs]


def run_demo(configs: list[Config]) -> tuple[dict, list[DeviceCurves]]:
    """Operating points and device curves of every medium, in one engine."""
    with SpiceEngine() as engine:
        return operating_points(configs, engine), all_device_curves(configs, engine)
