"""Where perturb-and-measure learning earns its keep: chips whose neuron circuits are off-nominal.

Every chip is a Monte-Carlo instance of the 9-3-1 circuit (``circuit.mismatch``: TIA feedback
resistor, op-amp offset, activation gain and threshold, reference resistor, drawn per chip) with its
own as-found device states and its own ex-situ network (chip k uses seed base + k). Per mismatch
level (a multiple of the base σ's) and chip, three ways to train:

* ``write-verify``: program the ex-situ targets, mapped through the *nominal* circuit (the
  controller cannot know this chip's mismatch);
* ``dgc``: perturb-and-measure learning from the as-found states;
* ``finetune``: write-verify, then perturb-and-measure fine-tuning through the mismatched circuit.

(``write-verify`` is the first stage of ``finetune``, measured before learning starts.) Accuracy on
the noisy test set and over every binary input with a nearest pattern; chip evaluations, pulses,
time. One stored part per (level, chip): an interrupted study resumes at the first missing part,
and each part is a deterministic function of its seed, so the result is the uninterrupted one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from ..circuits.crossbar import Crossbar
from ..errors import ConfigError
from ..store import Run, RunStore
from ..validation import check_choice, check_range
from . import onchip
from .config import Config, MismatchConfig, from_dict
from .reproduction import BACKENDS, chip_factory

METHODS = ("write-verify", "dgc", "finetune")


@dataclass(frozen=True)
class MismatchStudy:
    """The study's grid. Base σ's (our choice of scale, see ``MismatchConfig``): 5 % on resistors
    and gains, 2 mV op-amp offset, 20 mV activation threshold, 2 % reference resistor."""

    levels: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0)
    chips: int = 10
    base: MismatchConfig = MismatchConfig(feedback_sigma=0.05, offset_sigma_V=0.002, gain_sigma=0.05,
                                          threshold_sigma_V=0.02, reference_sigma=0.02)
    backend: str = "surrogate"

    def __post_init__(self) -> None:
        if not 1 <= len(self.levels) <= 20:
            raise ConfigError("mismatch.levels", list(self.levels), "1 to 20 levels")
        for i, level in enumerate(self.levels):
            check_range(f"mismatch.levels[{i}]", level, 0.0, 20.0, True)
        check_range("mismatch.chips", self.chips, 1, 1000, True)
        check_choice("mismatch.backend", self.backend, BACKENDS)
        for name in ("feedback_sigma", "gain_sigma", "reference_sigma"):
            if getattr(self.base, name) * max(self.levels) > 1.0:
                raise ConfigError("mismatch.levels", list(self.levels), f"levels with {name} × level ≤ 1")
        for name in ("offset_sigma_V", "threshold_sigma_V"):
            if getattr(self.base, name) * max(self.levels) > 0.5:
                raise ConfigError("mismatch.levels", list(self.levels), f"levels with {name} × level ≤ 0.5 V")


def chip_config(config: Config, study: MismatchStudy, level: float, chip: int) -> Config:
    """The config of chip ``chip`` at ``level``: its own seed, the study's σ's × level, DGC."""
    mismatch = study.base.scaled(level)
    return dataclasses.replace(config, seed=config.seed + chip,
                               circuit=dataclasses.replace(config.circuit, mismatch=mismatch),
                               trainer=dataclasses.replace(config.trainer, kind="dgc"))


def one_chip(config: Config, make_chip) -> list[dict]:
    """The three methods on one chip instance (``config`` from ``chip_config``)."""
    crossbar = Crossbar(config.crossbar_spec())
    task = onchip.make_task(config, crossbar)
    states = onchip.initial_states(config, crossbar.n_devices)
    trainer = config.make_trainer()
    rows = []
    for variant in ("finetune", "dgc"):
        with make_chip(config, crossbar, states) as chip:
            result = onchip.train_with(config, chip, task, trainer, variant, check_retention=False)
        s = result.summary()
        if variant == "finetune":
            rows.append({"method": "write-verify", "test_accuracy": s["write_verify_test_accuracy"],
                         "all_inputs_accuracy": s["write_verify_all_inputs_accuracy"], "evaluations": 0,
                         "pulses": s["write_verify_pulses"], "training_time_s": s["write_verify_time_s"],
                         "energy_total_J": s["write_verify_energy_total_J"]})
        rows.append({"method": variant, "test_accuracy": s["chip_accuracy"],
                     "all_inputs_accuracy": s["all_inputs_accuracy"], "evaluations": s["evaluations"],
                     "pulses": s["pulses"], "training_time_s": s["training_time_s"],
                     "energy_total_J": s["training_energy_total_J"]})
    return rows


def run_mismatch(store: RunStore, config: Config, study: MismatchStudy = MismatchStudy(),
                 resume: str | None = None, progress: bool = True,
                 write_report: Callable[[Run], dict] | None = None) -> Run:
    """Run (or resume) the mismatch study for ``config``'s medium; every (level, chip) is a part."""
    if resume:
        run = store.resume(resume)
        plan = run.read_json("plan.json")
        config = from_dict(Config, run.info.config["config"], f"run {run.id}: config")
        study = from_dict(MismatchStudy, plan["study"], f"run {run.id}: study")
    else:
        run = store.create("mismatch", {"config": config.as_dict(), "study": dataclasses.asdict(study)},
                           seed=config.seed, labels={"media": config.device.medium, "backend": study.backend},
                           name=f"mismatch-{config.device.medium}",
                           files={"plan.json": {"study": dataclasses.asdict(study), "medium": config.device.medium}})
    make_chip = chip_factory(study.backend, None)
    with run:
        points = [(i, level, k) for i, level in enumerate(study.levels) for k in range(study.chips)]
        done = sum(f"parts/level{i}-chip{k}.json" in run.files for i, _, k in points)
        with tqdm(total=len(points), initial=done, desc=f"{config.device.medium}: mismatch study", unit="chip",
                  disable=not progress, leave=False) as bar:
            for i, level, k in points:
                rel = f"parts/level{i}-chip{k}.json"
                if rel in run.files:
                    continue
                rows = one_chip(chip_config(config, study, level, k), make_chip)
                run.write_json(rel, [{"level": level, "chip": k, **row} for row in rows])
                bar.update(1)
        rows = [row for i, _, k in points for row in run.read_json(f"parts/level{i}-chip{k}.json")]
        run.write_csv("results.csv", rows)
        summary = write_report(run) if write_report is not None else headline(aggregate(rows))
        run.complete(summary)
    return run


def aggregate(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation over chips, per level and method."""
    out = []
    levels = sorted({float(r["level"]) for r in rows})
    for level in levels:
        for method in METHODS:
            chosen = [r for r in rows if float(r["level"]) == level and r["method"] == method]
            if not chosen:
                continue
            entry = {"level": level, "method": method, "chips": len(chosen)}
            for key in ("test_accuracy", "all_inputs_accuracy", "evaluations", "pulses", "training_time_s",
                        "energy_total_J"):
                values = np.array([float(r[key]) for r in chosen])
                entry[f"{key}_mean"] = float(values.mean())
                entry[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            out.append(entry)
    return out


def headline(table: list[dict]) -> dict:
    return {f"level{row['level']:g}_{row['method']}_all_inputs_accuracy": row["all_inputs_accuracy_mean"]
            for row in table}
