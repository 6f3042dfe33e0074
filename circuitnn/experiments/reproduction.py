"""On-chip training runs (the Eslami et al. reproduction and every other trainer) as stored,
resumable runs.

A run is a list of *parts*, each stored under ``parts/<part>/`` as soon as it finishes:

* ``<medium>-<variant>``: one variant of the configured trainer (``trainer.kind``) on a chip of that
  medium: write-verify's ``reset`` / ``noreset`` (with or without the initial reset pulse), perturb-
  and-measure's ``dgc`` / ``finetune``, ...; then inference of the noisy test set and of every binary
  input, and the retention check;
* ``<medium>-errors``: the conductance-error sweep on the states the last variant trained;
* ``heatmap``: training noise × test noise, for one medium (ex-situ trainers only).

A checkpoint when the trainer can be continued exactly (the chip's whole snapshot plus the
trainer's own state; the first time in a part, then at most every ``CHECKPOINT_EVERY_S``) and after
every part lets ``--resume`` continue an interrupted run where it stopped; finished parts are never
simulated again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from ..chip.protocol import ChipSnapshot
from ..training.trainer import TrainerState
from ..chip.spice_chip import SpiceChip
from ..circuits.crossbar import Crossbar
from .config import Config, from_dict
from ..store import Run, RunStore
from ..surrogate.calibration_params import SurrogateCalibration
from ..validation import check_choice
from . import onchip
from .background import InBackground

# A checkpoint (the chip's snapshot, the trainer's state, run.json rewritten, each on disk) costs
# ~7 ms; write-verify offers one per device, which takes ~30 ms. Saving at most every 2 s keeps that
# under 1 % of a run and loses at most 2 s of work to a kill (a resume repeats it exactly).
CHECKPOINT_EVERY_S = 2.0


def plan(configs: list[Config], heatmap_medium: str | None) -> list[str]:
    parts = []
    for config in configs:
        medium = config.device.medium
        parts += [f"{medium}-{variant}" for variant in config.trainer_variants()] + [f"{medium}-errors"]
    if heatmap_medium and all(config.make_trainer().noise_heatmap for config in configs):
        parts.append("heatmap")
    return parts


def run_reproduction(store: RunStore, configs: list[Config], kind: str, heatmap_medium: str | None = None,
                     resume: str | None = None, progress: bool = True, backend: str = "spice",
                     calibration: SurrogateCalibration | None = None,
                     write_report: Callable[[Run], dict] | None = None, run_id: str | None = None,
                     checkpoint_every_s: float = CHECKPOINT_EVERY_S) -> Run:
    """Run (or resume) the reproduction for ``configs`` (one per medium) and return the stored run.

    ``backend`` is "spice" (SpiceChip) or "surrogate" (SurrogateChip with ``calibration``, whose
    name every stored result and report carries). ``write_report(run) -> summary`` writes the report
    into the run before it is completed (the CLI passes ``reports.onchip_report.write_report``);
    without it the run's summary holds each part's headline numbers and ``circuitnn report`` builds
    the report later. ``run_id`` names a new run (a sweep derives it from the run's config) instead
    of a new time-stamped id. A part saves the first checkpoint its trainer offers, then one at
    most every ``checkpoint_every_s`` of wall time (0: every one)."""
    check_choice("backend", backend, BACKENDS)
    by_medium = {c.device.medium: c for c in configs}
    if heatmap_medium is not None and heatmap_medium not in by_medium:
        heatmap_medium = None
    if resume:
        run = store.resume(resume)
        saved = run.read_json("plan.json")
        heatmap_medium = saved["heatmap_medium"]
        backend = saved.get("backend", "spice")
        calibration = SurrogateCalibration(**saved["calibration"]) if saved.get("calibration") else None
        by_medium = {m: stored_config(run, m) for m in saved["media"]}
    else:
        if backend == "surrogate" and calibration is None:
            calibration = SurrogateCalibration()
        labels = {"media": ",".join(by_medium), "backend": backend, "trainer": configs[0].trainer.kind}
        if calibration is not None:
            labels["calibration"] = calibration.name
        run = store.create(kind, {"media": {m: c.as_dict() for m, c in by_medium.items()}},
                           seed=configs[0].seed, labels=labels, name=kind, run_id=run_id,
                           files={"plan.json": {"media": list(by_medium), "heatmap_medium": heatmap_medium,
                                                "parts": plan(list(by_medium.values()), heatmap_medium),
                                                "backend": backend,
                                                "calibration": calibration.as_dict() if calibration else None}})
    make_chip = chip_factory(backend, calibration)
    with run:
        parts = run.read_json("plan.json")["parts"]
        # The heat-map's software trainings need no simulator: a second process computes them meanwhile.
        with (InBackground(onchip.heatmap_tasks, by_medium[heatmap_medium])
              if "heatmap" in parts and not _part_done(run, "heatmap") else contextlib.nullcontext()) as tasks:
            for part in parts:
                if _part_done(run, part):
                    continue
                medium, _, what = part.partition("-")
                if part == "heatmap":
                    _heatmap(run, by_medium[heatmap_medium], progress, make_chip, tasks)
                elif what == "errors":
                    _error_sweep(run, by_medium[medium], progress, make_chip)
                else:
                    _training_part(run, by_medium[medium], part, what, progress, make_chip, checkpoint_every_s)
        summary = write_report(run) if write_report is not None else _headline(run)
        run.complete(summary)
    return run


def headline(summaries) -> dict:
    """What run.json keeps of a reproduction: accuracy, time and energy per medium and mode, from
    the tuning parts' summaries."""
    return {f"{s['medium']}_{s.get('variant') or ('reset' if s['initial_reset'] else 'noreset')}_{key}": s[field]
            for s in summaries
            for key, field in (("accuracy", "chip_accuracy"), ("time_s", "training_time_s"),
                               ("energy_J", "training_energy_total_J"))}


def _headline(run: Run) -> dict:
    parts = run.read_json("plan.json")["parts"]
    return headline(run.read_json(f"parts/{part}/summary.json") for part in parts
                    if part != "heatmap" and part.partition("-")[2] != "errors")


def stored_config(run: Run, medium: str) -> Config:
    """The config of one medium as stored in run.json, rebuilt and validated again."""
    return from_dict(Config, run.info.config["media"][medium], f"run {run.id}: config")


def _part_done(run: Run, part: str) -> bool:
    return f"parts/{part}/summary.json" in run.files


BACKENDS = ("spice", "surrogate")


def chip_factory(backend: str, calibration: SurrogateCalibration | None):
    """A function (config, crossbar, states) -> Chip for the chosen backend."""
    if backend == "surrogate":
        from ..chip.surrogate_chip import SurrogateChip

        return lambda config, crossbar, states: SurrogateChip(
            crossbar, states, config.programming, config.timing, calibration=calibration, seed=config.seed)
    return lambda config, crossbar, states: SpiceChip(crossbar, states, config.programming, config.timing,
                                                      seed=config.seed)


def _training_part(run: Run, config: Config, part: str, variant: str, progress: bool, make_chip,
                   checkpoint_every_s: float) -> None:
    """Train one chip with the configured trainer, checkpointing when the trainer can be continued
    (the first time it can, then at most every ``checkpoint_every_s``): the chip's whole snapshot
    (states, clock, ageing, noise streams, ledger) and the trainer's own state, so a resume is the
    uninterrupted run."""
    crossbar = Crossbar(config.crossbar_spec())
    task = onchip.make_task(config, crossbar)
    states = onchip.initial_states(config, crossbar.n_devices)
    trainer = config.make_trainer()
    checkpoint = run.load_checkpoint(part)
    with make_chip(config, crossbar, states) as chip:
        resume = None
        if checkpoint is not None:
            state, arrays = checkpoint
            chip.restore(ChipSnapshot({k: v for k, v in arrays.items() if not k.startswith(TRAINER_PREFIX)},
                                      state["chip"]))
            resume = TrainerState(state["trainer"], {k.removeprefix(TRAINER_PREFIX): v for k, v in arrays.items()
                                                     if k.startswith(TRAINER_PREFIX)})
        else:
            run.write_netlists({f"{part}_{name}": text for name, text in chip.netlists().items()})
        saved = {"count": checkpoint[0].get("count", 0) if checkpoint is not None else 0, "at": None}
        bar = tqdm(total=trainer.checkpoints(variant, crossbar.n_devices), initial=saved["count"],
                   desc=f"{part}: {trainer.name}", unit="checkpoint", disable=not progress, leave=False)

        def on_checkpoint(now: TrainerState) -> None:
            saved["count"] += 1
            bar.update(1)
            if saved["at"] is not None and time.monotonic() - saved["at"] < checkpoint_every_s:
                return
            snapshot = chip.snapshot()
            run.checkpoint(part, {"trainer": now.state, "chip": snapshot.state, "count": saved["count"]},
                           {**{TRAINER_PREFIX + k: v for k, v in now.arrays.items()}, **snapshot.arrays})
            saved["at"] = time.monotonic()

        result = onchip.train_with(config, chip, task, trainer, variant, resume, on_checkpoint)
        bar.close()
    _write_training_part(run, part, result)


TRAINER_PREFIX = "trainer."


def _write_training_part(run: Run, part: str, result: onchip.OnChipResult) -> None:
    folder = f"parts/{part}"
    n = len(result.final_states)
    per_device = result.ledger.by_device(n, phases=("read", "reset", "program", "perturb"))
    tables = dict(result.outcome.tables)
    devices = tables.pop("devices", {"index": np.arange(n)})
    run.write_csv(f"{folder}/devices.csv", {
        **devices,
        "initial_state": result.initial_states, "final_state": result.final_states,
        "final_conductance_S": result.final_S,
        "completed_at_s": result.completed_at_s,
        "state_drift_at_end": result.retention.get("state_drift", np.zeros(n)),
        "conductance_drift_at_end": result.retention.get("conductance_drift", np.zeros(n)),
        **per_device,
    })
    for name, columns in tables.items():
        run.write_csv(f"{folder}/{name}.csv", columns)
    run.write_npz(f"{folder}/ledger.npz", **result.ledger.to_arrays())
    run.write_npz(f"{folder}/outputs.npz", chip_outputs=result.chip_outputs)
    phases = result.ledger.by_phase()
    run.write_csv(f"{folder}/phases.csv", {
        "phase": list(phases), **{k: [phases[p][k] for p in phases]
                                  for k in ("energy_device_J", "energy_total_J", "time_s", "pulses", "operations")}})
    run.write_json(f"{folder}/summary.json", result.summary())


def _error_sweep(run: Run, config: Config, progress: bool, make_chip) -> None:
    medium = config.device.medium
    crossbar = Crossbar(config.crossbar_spec())
    task = onchip.make_task(config, crossbar)
    last = config.trainer_variants()[-1]
    final_states = run.read_csv(f"parts/{medium}-{last}/devices.csv")["final_state"]
    total = sum(config.onchip.error_draws if s > 0 else 1 for s in config.onchip.conductance_errors)
    with make_chip(config, crossbar, final_states) as chip, \
            tqdm(total=total, desc=f"{medium}: conductance errors", disable=not progress, leave=False) as bar:
        sweep = onchip.conductance_error_sweep(config, chip, task, final_states, progress=lambda: bar.update(1))
    folder = f"parts/{medium}-errors"
    run.write_csv(f"{folder}/sweep.csv", {k: sweep[k] for k in ("sigma", "accuracy_mean", "accuracy_std")})
    run.write_npz(f"{folder}/draws.npz", accuracy_draws=sweep["accuracy_draws"])
    run.write_json(f"{folder}/summary.json", {"medium": medium, "draws": config.onchip.error_draws})


def _heatmap(run: Run, config: Config, progress: bool, make_chip, tasks: InBackground | None) -> None:
    levels = len(config.onchip.noise_levels)
    crossbar = Crossbar(config.crossbar_spec())
    states = onchip.initial_states(config, crossbar.n_devices)
    with tqdm(total=levels * levels, desc=f"{config.device.medium}: noise heat-map",
              disable=not progress, leave=False) as bar:
        grid = onchip.noise_heatmap(config, lambda: make_chip(config, crossbar, states),
                                    progress=lambda: bar.update(1),
                                    tasks=tasks.result() if tasks is not None else None)
    run.write_npz("parts/heatmap/grid.npz", **grid)
    rows = [{"training_noise": a, "test_noise": b, "chip_accuracy": grid["chip_accuracy"][i, j],
             "software_accuracy": grid["software_accuracy"][i, j]}
            for i, a in enumerate(grid["training_noise"]) for j, b in enumerate(grid["test_noise"])]
    run.write_csv("parts/heatmap/grid.csv", rows)
    run.write_json("parts/heatmap/summary.json", {"medium": config.device.medium})

