"""circuitnn: analog neural-network circuits in ngspice, on-chip training from Python,
and a calibrated NumPy surrogate for large networks.

The things a user scripts with are importable from here (``from circuitnn import SpiceChip``); each
is loaded on first use, so ``import circuitnn`` stays cheap and the package's layers keep importing
one way down (``tests/test_layering.py``). ``PUBLIC_API`` lists them with where they live.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name → module that defines it ("module:attribute" where the public name differs)
PUBLIC_API = {
    # devices
    "DeviceModel": "circuitnn.devices.base", "TwoRateModel": "circuitnn.devices.base",
    "LinearConductance": "circuitnn.devices.base",
    "SpiceSubcircuit": "circuitnn.devices.base", "Retention": "circuitnn.devices.base",
    "PulseResponse": "circuitnn.devices.base", "preset": "circuitnn.devices.base",
    "device_presets": "circuitnn.devices.base:presets", "register": "circuitnn.devices.base",
    "MsdcParams": "circuitnn.devices.msdc", "PcmModel": "circuitnn.devices.pcm",
    "VteamParams": "circuitnn.devices.vteam",
    # circuits
    "Crossbar": "circuitnn.circuits.crossbar", "CrossbarSpec": "circuitnn.circuits.crossbar",
    "LayerSpec": "circuitnn.circuits.crossbar", "NeuronSpec": "circuitnn.circuits.crossbar",
    "default_spec": "circuitnn.circuits.default", "ProgrammingPath": "circuitnn.circuits.program",
    "ProgrammingCircuit": "circuitnn.circuits.program", "PulseSpec": "circuitnn.circuits.program",
    # simulation
    "SpiceEngine": "circuitnn.spice.engine",
    "Chip": "circuitnn.chip.protocol", "ChipTiming": "circuitnn.chip.protocol",
    "SpiceChip": "circuitnn.chip.spice_chip", "SurrogateChip": "circuitnn.chip.surrogate_chip",
    "DeviceEffects": "circuitnn.surrogate.effects", "SurrogateCalibration": "circuitnn.surrogate.calibration_params",
    # training
    "TuningConfig": "circuitnn.training.tuning", "program_to_target": "circuitnn.training.tuning",
    "tune_all": "circuitnn.training.tuning", "circuit_conductances": "circuitnn.training.mapping",
    "circuit_weights": "circuitnn.training.mapping", "fidelity": "circuitnn.training.mapping",
    "train_default": "circuitnn.training.software",
    "Trainer": "circuitnn.training.trainer", "ChipTask": "circuitnn.training.trainer",
    "trainers": "circuitnn.training.trainer", "register_trainer": "circuitnn.training.trainer:register",
    "NeuronMismatch": "circuitnn.circuits.crossbar",
    # experiments, runs, reports
    "Config": "circuitnn.experiments.config", "load_config": "circuitnn.experiments.config",
    "run_reproduction": "circuitnn.experiments.reproduction", "RunStore": "circuitnn.store",
    "train_with": "circuitnn.experiments.onchip", "make_task": "circuitnn.experiments.onchip",
    "run_mismatch": "circuitnn.experiments.mismatch",
    "load_sweep": "circuitnn.experiments.sweep", "expand_sweep": "circuitnn.experiments.sweep",
    "run_sweep": "circuitnn.experiments.sweep",
    "write_report_to": "circuitnn.reports.onchip_report",
}

__all__ = ["__version__", *PUBLIC_API]


def __getattr__(name: str):
    where = PUBLIC_API.get(name)
    if where is None:
        raise AttributeError(f"module 'circuitnn' has no attribute {name!r}")
    module, _, attribute = where.partition(":")
    value = getattr(importlib.import_module(module), attribute or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
