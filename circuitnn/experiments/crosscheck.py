"""The surrogate cross-check: the on-chip reproduction on SpiceChip and SurrogateChip, over seeds.

The criterion: on the same task, from the same device states, the surrogate's run matches
the SPICE run within 2 points of accuracy and 5 % in training time and energy. For each medium, seed
(the seed draws the as-found device states and trains the software network) and reset mode, the
same write-verify tuning and test-set inference run on both backends, and every verify read the
controller sees is recorded on both.

Why several seeds: write-verify is a chain of decisions. Where a verify read lands within numerical
error of the tolerance edge (|G/G_t − 1| = 5 %), ngspice's time-step error (~1e-4 of a state) and the
surrogate's closed form can fall on different sides, and from there the two controllers pulse
differently. For a binary medium (C: every pulse is a large step) a device that flips branches may
then take all 200 pulses on one backend and 4 on the other, moving the run's totals by several
percent although every pulse before agreed. Such a run is reported as *divergent*, with the read,
the two relative errors and their distance to the edge, rather than hidden in an average; the mean
over seeds shows whether the backends agree where no edge is hit.

Stored as a run (``crosscheck``): one part per medium/seed/mode written as it finishes (``--resume``
skips them), ``crosscheck.csv``, ``summary.json`` and the report (``reports/crosscheck_report.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from ..chip.spice_chip import SpiceChip
from ..chip.surrogate_chip import SurrogateChip
from ..circuits.crossbar import Crossbar
from .config import Config, from_dict
from ..errors import ConfigError
from ..store import Run, RunStore
from ..surrogate.calibration_params import SurrogateCalibration
from . import onchip

TARGET_ACCURACY_POINTS = 0.02
TARGET_RELATIVE = 0.05
COMPARED = ("training_time_s", "training_energy_total_J", "training_energy_device_J", "inference_energy_J")


class VerifyLog:
    """A chip whose verify reads are recorded: (device, conductance the controller saw), in order."""

    def __init__(self, chip):
        self.chip, self.reads = chip, []

    def read_device(self, index, *args, **kwargs):
        result = self.chip.read_device(index, *args, **kwargs)
        self.reads.append((int(index), float(result.conductance_S)))
        return result

    # A chip's whole write-verify loops (SpiceChip runs them inside its worker) would bypass
    # read_device: hidden, so tune_all drives the controller read by read through this log.
    _BYPASSING = frozenset({"write_verify", "write_verify_many", "run_sequence"})

    def __getattr__(self, name):
        if name in self._BYPASSING:
            raise AttributeError(name)
        return getattr(self.chip, name)


def _decision(g: float, target: float, tolerance: float) -> int:
    """What the controller does after reading ``g``: 0 stop, +1 SET, −1 RESET."""
    error = g / target - 1.0
    return 0 if abs(error) <= tolerance else (1 if error < 0 else -1)


def first_divergence(reads_a, reads_b, targets_S, tolerance: float, max_pulses: int) -> dict | None:
    """The first verify read after which the two controllers act differently, or None.

    Reads are (device, G) in order. A read after which both have spent the pulse budget ends that
    device whatever it says, so it cannot diverge.
    """
    count: dict[int, int] = {}
    for k, ((dev_a, g_a), (dev_b, g_b)) in enumerate(zip(reads_a, reads_b)):
        if dev_a != dev_b:  # only after a differing decision, which is reported below
            raise AssertionError("reads of different devices before any differing decision")
        number = count.get(dev_a, 0)
        count[dev_a] = number + 1
        target = float(targets_S[dev_a])
        if number >= max_pulses:
            continue
        if _decision(g_a, target, tolerance) != _decision(g_b, target, tolerance):
            e_a, e_b = g_a / target - 1.0, g_b / target - 1.0
            return {"read": k, "device": dev_a, "read_of_device": number,
                    "error_spice": e_a, "error_surrogate": e_b, "tolerance": tolerance,
                    "distance_to_edge": min(abs(abs(e_a) - tolerance), abs(abs(e_b) - tolerance))}
    if len(reads_a) != len(reads_b):
        raise AssertionError("read logs of different length without a differing decision")
    return None


def _one(config: Config, initial_reset: bool, calibration: SurrogateCalibration) -> dict:
    crossbar = Crossbar(config.crossbar_spec())
    task = onchip.make_task(config, crossbar)
    start = onchip.initial_states(config, crossbar.n_devices)
    summaries, logs = {}, {}
    factories = {"spice": lambda: SpiceChip(crossbar, start, config.programming, config.timing, seed=config.seed),
                 "surrogate": lambda: SurrogateChip(crossbar, start, config.programming, config.timing,
                                                    calibration=calibration, seed=config.seed)}
    for backend, make in factories.items():
        with make() as chip:
            logged = VerifyLog(chip)
            result = onchip.train_on_chip(config, logged, task, initial_reset=initial_reset,
                                          check_retention=False)
            summaries[backend], logs[backend] = result.summary(), logged.reads
    spice, surrogate = summaries["spice"], summaries["surrogate"]
    divergence = first_divergence(logs["spice"], logs["surrogate"], task.targets_S,
                                  config.tuning.tolerance, config.tuning.max_pulses)
    row = {"medium": config.device.medium, "seed": config.seed, "initial_reset": initial_reset,
           "accuracy_spice": spice["chip_accuracy"], "accuracy_surrogate": surrogate["chip_accuracy"],
           "pulses_spice": spice["pulses"], "pulses_surrogate": surrogate["pulses"],
           "converged_spice": spice["converged_devices"], "converged_surrogate": surrogate["converged_devices"]}
    for key in COMPARED:
        row[f"{key}_spice"], row[f"{key}_surrogate"] = spice[key], surrogate[key]
        row[f"{key}_relative_difference"] = surrogate[key] / spice[key] - 1.0
    row["within_target"] = bool(
        abs(row["accuracy_surrogate"] - row["accuracy_spice"]) <= TARGET_ACCURACY_POINTS
        and all(abs(row[f"{k}_relative_difference"]) <= TARGET_RELATIVE for k in COMPARED[:2]))
    row["divergent"] = divergence is not None
    row["divergence"] = divergence
    return row


def run_crosscheck(store: RunStore, configs: list[Config], seeds: int = 4, reset_modes=(False, True),
                   calibration: SurrogateCalibration | None = None, resume: str | None = None,
                   progress: bool = True, write_report: Callable[[Run], dict] | None = None) -> Run:
    """Cross-check every medium of ``configs`` over ``seeds`` seeds (config.seed, +1, …).
    ``write_report(run) -> summary`` writes the report into the run before it completes."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= 1000:
        raise ConfigError("crosscheck.seeds", seeds, "an integer in [1, 1000]")
    if resume:
        run = store.resume(resume)
        plan = run.read_json("plan.json")
        configs = [from_dict(Config, c, f"run {run.id}: config") for c in plan["configs"]]
        calibration = SurrogateCalibration(**plan["calibration"])
        seeds, reset_modes = plan["seeds"], tuple(plan["reset_modes"])
    else:
        calibration = calibration or SurrogateCalibration()
        media = [c.device.medium for c in configs]
        run = store.create("crosscheck", {"media": media, "seeds": seeds, "reset_modes": list(reset_modes),
                                          "calibration": calibration.as_dict()},
                           seed=configs[0].seed, name="-".join(media),
                           labels={"media": ",".join(media), "calibration": calibration.name},
                           files={"plan.json": {"configs": [c.as_dict() for c in configs], "seeds": seeds,
                                                "reset_modes": list(reset_modes),
                                                "calibration": calibration.as_dict()}})
    jobs = [(config, config.seed + k, reset) for config in configs for k in range(seeds) for reset in reset_modes]
    with run:
        rows = []
        for config, seed, reset in tqdm(jobs, desc="cross-check", unit="run", disable=not progress):
            part = f"parts/{config.device.medium}-seed{seed}-{'reset' if reset else 'noreset'}.json"
            rows.append(run.json_part(part, lambda: _one(dataclasses.replace(config, seed=seed), reset, calibration)))
        summary = summarize(rows)
        run.write_csv("crosscheck.csv", [{k: v for k, v in r.items() if k != "divergence"} for r in rows])
        run.write_json("summary.json", {"calibration": calibration.as_dict(), "groups": summary, "runs": rows})
        run.complete(write_report(run) if write_report is not None else {"groups": summary})
    return run


def summarize(rows: list[dict]) -> list[dict]:
    """Per medium and reset mode: runs within target, divergent runs, and the mean over seeds."""
    groups = []
    for medium in dict.fromkeys(r["medium"] for r in rows):
        for reset in dict.fromkeys(r["initial_reset"] for r in rows):
            group = [r for r in rows if r["medium"] == medium and r["initial_reset"] == reset]
            if not group:
                continue
            entry = {"medium": medium, "initial_reset": reset, "runs": len(group),
                     "within_target": int(sum(r["within_target"] for r in group)),
                     "divergent": int(sum(r["divergent"] for r in group)),
                     "max_accuracy_difference": float(max(abs(r["accuracy_surrogate"] - r["accuracy_spice"])
                                                          for r in group))}
            for key in COMPARED:
                spice = np.mean([r[f"{key}_spice"] for r in group])
                surrogate = np.mean([r[f"{key}_surrogate"] for r in group])
                entry[f"mean_{key}_relative_difference"] = float(surrogate / spice - 1.0)
                entry[f"worst_{key}_relative_difference"] = float(
                    max((r[f"{key}_relative_difference"] for r in group), key=abs))
            entry["mean_within_target"] = bool(
                entry["max_accuracy_difference"] <= TARGET_ACCURACY_POINTS
                and all(abs(entry[f"mean_{k}_relative_difference"]) <= TARGET_RELATIVE for k in COMPARED[:2]))
            groups.append(entry)
    return groups
