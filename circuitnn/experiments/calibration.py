"""``circuitnn calibrate``: fit the surrogate to SPICE for one medium and store the result as a run.

The run holds ``calibration.json`` (the fitted ``SurrogateCalibration``, named after the run, which
every surrogate result then names), ``errors.csv`` (held-out errors, uncalibrated and calibrated,
against the targets), ``experiments.npz`` (the SPICE and surrogate values) and the report with its
parity plots (``reports/calibration_report.py``).
"""

from __future__ import annotations

from collections.abc import Callable

from .config import Config
from ..store import Run, RunStore, StoreError
from . import calibration_fit as cal
from ..surrogate.calibration_params import SurrogateCalibration


def run_calibration(store: RunStore, config: Config, seed: int | None = None, progress: bool = True,
                    write_report: Callable[[Run], dict] | None = None) -> Run:
    seed = config.seed if seed is None else seed
    medium = config.device.medium
    with store.create("calibration", {"medium": config.as_dict()}, seed=seed, labels={"medium": medium},
                      name=f"calibrate-{medium}") as run:
        if progress:
            print(f"calibration {run.id}: SPICE experiments for {medium} ...", flush=True)
        arrays, trains = cal.spice_experiments(config, seed=seed)
        fit_arrays, held_arrays = arrays[0::2], arrays[1::2]
        fit_trains, held_trains = trains[0::2], trains[1::2]
        spice_held = cal.spice_values(held_arrays, held_trains)
        identity = SurrogateCalibration()
        before = cal.errors(cal.surrogate_predictions(config, identity, held_arrays, held_trains), spice_held)
        calibration, solution = cal.fit(config, fit_arrays, fit_trains, name=run.id)
        calibration = SurrogateCalibration(**{**calibration.as_dict(), "source": (
            f"fitted to {len(fit_arrays)} array and {len(fit_trains)} pulse-train SPICE experiments "
            f"of medium {medium}, seed {seed} (run {run.id})")})
        predicted = cal.surrogate_predictions(config, calibration, held_arrays, held_trains)
        after = cal.errors(predicted, spice_held)
        run.write_json("calibration.json", calibration.as_dict())
        rows = [{"measure": key, "target": cal.TARGETS.get(key, ""), "uncalibrated": before[key],
                 "calibrated": after[key], "meets_target": (after[key] <= cal.TARGETS[key]) if key in cal.TARGETS else ""}
                for key in after]
        run.write_csv("errors.csv", rows)
        run.write_npz("experiments.npz", **{f"spice_{k}": v for k, v in spice_held.items()},
                      **{f"surrogate_{k}": v for k, v in predicted.items()})
        reported = write_report(run) if write_report is not None else {}
        run.complete({**reported, "optimizer": solution.message, **{k: getattr(calibration, k) for k in cal.FREE}})
    return run


def load_calibration(store: RunStore, run_id: str) -> SurrogateCalibration:
    """The calibration a stored, complete calibration run fitted (its ``name`` is the run id).

    Another kind of run, or a calibration that did not complete (killed, failed, or still being
    written), is a StoreError: a result made with it would rest on a run that has no report and
    cannot be resumed (calibrations do not resume)."""
    run = store.open(run_id)
    if run.info.kind != "calibration":
        raise StoreError(f"run {run_id} is a {run.info.kind!r} run, not a calibration "
                         "(`circuitnn runs --kind calibration` lists them)")
    if run.status != "complete":
        raise StoreError(f"calibration run {run_id} is {run.status}, not complete; run `circuitnn calibrate` "
                         "again, or name a complete calibration (`circuitnn runs --kind calibration "
                         "--status complete`)")
    return SurrogateCalibration(**run.read_json("calibration.json"))


def calibration_medium(store: RunStore, run_id: str) -> str | None:
    """The medium a stored calibration was fitted to (its run's ``medium`` label)."""
    return store.open(run_id).info.labels.get("medium")
