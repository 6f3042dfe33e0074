"""The Eslami et al. reproduction as a stored, resumable run.

A run is a list of *parts*, each stored under ``parts/<part>/`` as soon as it finishes:

* ``<medium>-reset`` / ``<medium>-noreset``: write-verify tuning of all 30 devices in SPICE (with or
  without the initial reset pulse), inference of the noisy test set, retention check;
* ``<medium>-errors``: the conductance-error sweep on the chip tuned without reset;
* ``heatmap``: training noise × test noise, for one medium.

A checkpoint after every device (states, ledger, tunings so far) and after every part lets
``--resume`` continue an interrupted run where it stopped; finished parts are never simulated again.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from ..chip.protocol import ChipSnapshot
from ..chip.spice_chip import SpiceChip
from ..circuits.crossbar import Crossbar
from .config import Config, from_dict
from ..store import Run, RunStore
from ..surrogate.calibration_params import SurrogateCalibration
from ..validation import check_choice
from . import onchip

TUNING_FIELDS = ("index", "target_S", "initial_S", "final_S", "set_pulses", "reset_pulses", "reads", "converged")


def plan(configs: list[Config], heatmap_medium: str | None) -> list[str]:
    parts = []
    for config in configs:
        medium = config.device.medium
        parts += [f"{medium}-reset", f"{medium}-noreset", f"{medium}-errors"]
    if heatmap_medium:
        parts.append("heatmap")
    return parts


def run_reproduction(store: RunStore, configs: list[Config], kind: str, heatmap_medium: str | None = None,
                     resume: str | None = None, progress: bool = True, backend: str = "spice",
                     calibration: SurrogateCalibration | None = None,
                     write_report: Callable[[Run], dict] | None = None, run_id: str | None = None) -> Run:
    """Run (or resume) the reproduction for ``configs`` (one per medium) and return the stored run.

    ``backend`` is "spice" (SpiceChip) or "surrogate" (SurrogateChip with ``calibration``, whose
    name every stored result and report carries). ``write_report(run) -> summary`` writes the report
    into the run before it is completed (the CLI passes ``reports.onchip_report.write_report``);
    without it the run's summary holds each part's headline numbers and ``circuitnn report`` builds
    the report later. ``run_id`` names a new run (a sweep derives it from the run's config) instead
    of a new time-stamped id."""
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
        labels = {"media": ",".join(by_medium), "backend": backend}
        if calibration is not None:
            labels["calibration"] = calibration.name
        run = store.create(kind, {"media": {m: c.as_dict() for m, c in by_medium.items()}},
                           seed=configs[0].seed, labels=labels, name=kind, run_id=run_id)
        run.write_json("plan.json", {"media": list(by_medium), "heatmap_medium": heatmap_medium,
                                     "parts": plan(list(by_medium.values()), heatmap_medium),
                                     "backend": backend,
                                     "calibration": calibration.as_dict() if calibration else None})
    make_chip = _chip_factory(backend, calibration)
    with run:
        for part in run.read_json("plan.json")["parts"]:
            if _part_done(run, part):
                continue
            medium, _, what = part.partition("-")
            if part == "heatmap":
                _heatmap(run, by_medium[heatmap_medium], progress, make_chip)
            elif what == "errors":
                _error_sweep(run, by_medium[medium], progress, make_chip)
            else:
                _tuning_part(run, by_medium[medium], part, (what == "reset"), progress, make_chip)
        summary = write_report(run) if write_report is not None else _headline(run)
        run.complete(summary)
    return run


def headline(summaries) -> dict:
    """What run.json keeps of a reproduction: accuracy, time and energy per medium and mode, from
    the tuning parts' summaries."""
    return {f"{s['medium']}_{'reset' if s['initial_reset'] else 'noreset'}_{key}": s[field]
            for s in summaries
            for key, field in (("accuracy", "chip_accuracy"), ("time_s", "training_time_s"),
                               ("energy_J", "training_energy_total_J"))}


def _headline(run: Run) -> dict:
    parts = run.read_json("plan.json")["parts"]
    return headline(run.read_json(f"parts/{part}/summary.json") for part in parts
                    if part.partition("-")[2] in ("reset", "noreset"))


def stored_config(run: Run, medium: str) -> Config:
    """The config of one medium as stored in run.json, rebuilt and validated again."""
    return from_dict(Config, run.info.config["media"][medium], f"run {run.id}: config")


def _part_done(run: Run, part: str) -> bool:
    return f"parts/{part}/summary.json" in run.files


BACKENDS = ("spice", "surrogate")


def _chip_factory(backend: str, calibration: SurrogateCalibration | None):
    """A function (config, crossbar, states) -> Chip for the chosen backend."""
    if backend == "surrogate":
        from ..chip.surrogate_chip import SurrogateChip

        return lambda config, crossbar, states: SurrogateChip(
            crossbar, states, config.programming, config.timing, calibration=calibration, seed=config.seed)
    return lambda config, crossbar, states: SpiceChip(crossbar, states, config.programming, config.timing,
                                                      seed=config.seed)


def _tuning_part(run: Run, config: Config, part: str, initial_reset: bool, progress: bool, make_chip) -> None:
    """Tune one chip, checkpointing after every device: the chip's whole snapshot (states, clock,
    ageing, noise streams, ledger) and the tuning progress, so a resume is the uninterrupted run."""
    crossbar = Crossbar(config.crossbar_spec())
    task = onchip.make_task(config, crossbar)
    states = onchip.initial_states(config, crossbar.n_devices)
    checkpoint = run.load_checkpoint(part)
    with make_chip(config, crossbar, states) as chip:
        saved = None
        if checkpoint is not None:
            state, arrays = checkpoint
            chip.restore(ChipSnapshot({k: v for k, v in arrays.items() if k != "initial_states"}, state["chip"]))
            saved = onchip.TuningProgress.from_state(state["progress"], arrays["initial_states"])
        else:
            run.write_netlists({f"{part}_{name}": text for name, text in chip.netlists().items()})
        done = len(saved.tunings) if saved else 0
        bar = tqdm(total=crossbar.n_devices, initial=done, desc=f"{part}: tuning", unit="device",
                   disable=not progress, leave=False)

        def on_device(now: onchip.TuningProgress) -> None:
            snapshot = chip.snapshot()
            run.checkpoint(part, {"progress": now.to_state(), "chip": snapshot.state},
                           {"initial_states": now.initial_states, **snapshot.arrays})
            bar.update(1)

        result = onchip.train_on_chip(config, chip, task, initial_reset, progress=saved, on_device=on_device)
        bar.close()
    _write_tuning_part(run, part, result)


def _write_tuning_part(run: Run, part: str, result: onchip.OnChipResult) -> None:
    folder = f"parts/{part}"
    per_device = result.ledger.by_device(len(result.tunings))
    run.write_csv(f"{folder}/devices.csv", {
        **{name: [getattr(t, name) for t in result.tunings] for name in TUNING_FIELDS},
        "initial_state": result.initial_states, "final_state": result.final_states,
        "relative_error": [t.relative_error for t in result.tunings],
        "completed_at_s": result.completed_at_s,
        "state_drift_at_end": result.retention.get("state_drift", np.zeros(len(result.tunings))),
        "conductance_drift_at_end": result.retention.get("conductance_drift", np.zeros(len(result.tunings))),
        **per_device,
    })
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
    final_states = run.read_csv(f"parts/{medium}-noreset/devices.csv")["final_state"]
    total = sum(config.onchip.error_draws if s > 0 else 1 for s in config.onchip.conductance_errors)
    with make_chip(config, crossbar, final_states) as chip, \
            tqdm(total=total, desc=f"{medium}: conductance errors", disable=not progress, leave=False) as bar:
        sweep = onchip.conductance_error_sweep(config, chip, task, final_states, progress=lambda: bar.update(1))
    folder = f"parts/{medium}-errors"
    run.write_csv(f"{folder}/sweep.csv", {k: sweep[k] for k in ("sigma", "accuracy_mean", "accuracy_std")})
    run.write_npz(f"{folder}/draws.npz", accuracy_draws=sweep["accuracy_draws"])
    run.write_json(f"{folder}/summary.json", {"medium": medium, "draws": config.onchip.error_draws})


def _heatmap(run: Run, config: Config, progress: bool, make_chip) -> None:
    levels = len(config.onchip.noise_levels)
    crossbar = Crossbar(config.crossbar_spec())
    states = onchip.initial_states(config, crossbar.n_devices)
    with tqdm(total=levels * levels, desc=f"{config.device.medium}: noise heat-map",
              disable=not progress, leave=False) as bar:
        grid = onchip.noise_heatmap(config, lambda: make_chip(config, crossbar, states),
                                    progress=lambda: bar.update(1))
    run.write_npz("parts/heatmap/grid.npz", **grid)
    rows = [{"training_noise": a, "test_noise": b, "chip_accuracy": grid["chip_accuracy"][i, j],
             "software_accuracy": grid["software_accuracy"][i, j]}
            for i, a in enumerate(grid["training_noise"]) for j, b in enumerate(grid["test_noise"])]
    run.write_csv("parts/heatmap/grid.csv", rows)
    run.write_json("parts/heatmap/summary.json", {"medium": config.device.medium})

