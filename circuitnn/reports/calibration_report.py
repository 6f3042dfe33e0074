"""The calibration report (``calibration`` runs): the fitted parameters and the surrogate's errors on
held-out SPICE experiments before and after the fit, from stored results only. A fit that makes a
held-out error worse is said so, in the report and on the command line."""

from __future__ import annotations

import numpy as np

from ..devices.fit import current_unit
from ..store import Run
from ..surrogate.calibration_params import SurrogateCalibration
from .document import Report, ReportError, provenance, pyplot

# measure → (what it is, unit, scale to that unit); the state x is dimensionless, from 0 (off) to 1 (on)
MEASURES = {
    "current_rms_relative": ("column current, RMS relative error", "%", 100.0),
    "state_max_abs": ("state after a pulse, max absolute error", "Δx", 1.0),
    "energy_max_relative": ("energy per pulse, max relative error", "%", 100.0),
    "inference_energy_max_relative": ("inference energy, max relative error", "%", 100.0),
}
# Errors at the level of floating-point noise (1e-13 relative) move by a few per cent either way with
# any change of parameters; a growth beyond this is the fit's doing.
WORSE_MARGIN = 0.05


def _number(value) -> float | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else float(value)


def held_out_errors(run: Run) -> list[dict]:
    """errors.csv as dicts: measure, target (None if it has none), uncalibrated, calibrated."""
    table = run.read_csv("errors.csv")
    return [{"measure": str(m), "target": _number(table["target"][i]) if "target" in table else None,
             "uncalibrated": float(table["uncalibrated"][i]), "calibrated": float(table["calibrated"][i])}
            for i, m in enumerate(table["measure"])]


def made_worse(e: dict) -> bool:
    return e["calibrated"] > e["uncalibrated"] * (1 + WORSE_MARGIN)


def worse_after_fit(errors: list[dict]) -> list[str]:
    """One sentence per held-out error the calibration made worse (by more than WORSE_MARGIN)."""
    sentences = []
    for e in filter(made_worse, errors):
        what, unit, scale = MEASURES.get(e["measure"], (e["measure"], "", 1.0))
        unit = " %" if unit == "%" else ""
        target = (f"; target {e['target'] * scale:.3g}{unit}, "
                  + ("still met" if e["calibrated"] <= e["target"] else "missed")) if e["target"] else ""
        sentences.append(f"the calibration made the held-out {what} worse: {e['uncalibrated'] * scale:.3g}{unit} → "
                         f"{e['calibrated'] * scale:.3g}{unit}{target}")
    return sentences


def build_report(run: Run) -> Report:
    if "errors.csv" not in run.files or "calibration.json" not in run.files:
        raise ReportError(f"calibration run {run.id} ({run.status}) stored no results (a calibration is stored "
                          f"only when its fit finishes); start a new one with `circuitnn calibrate`")
    medium = run.info.labels.get("medium", "?")
    calibration = SurrogateCalibration(**run.read_json("calibration.json"))
    errors = held_out_errors(run)
    report = Report(run.id, f"Surrogate calibration for {medium}: {run.id}", header=provenance(run))
    report.header.append(f"Medium {medium}; {calibration.source}.")
    identity = SurrogateCalibration()
    report.tables["parameters"] = [
        {"parameter": name, "fitted": getattr(calibration, name), "identity (uncalibrated)": getattr(identity, name)}
        for name in ("pulse_width_scale_set", "pulse_width_scale_reset", "series_resistance_offset_ohm", "gain_scale")]
    report.captions["parameters"] = ("The surrogate's free parameters: pulse-width scales (ratio), series "
                                     "resistance offset (Ω), transimpedance scale (ratio).")
    report.tables["held_out_errors"] = []
    for e in errors:
        what, unit, scale = MEASURES.get(e["measure"], (e["measure"], "", 1.0))
        report.tables["held_out_errors"].append({
            "measure": f"{what} ({unit})", "target": e["target"] * scale if e["target"] else None,
            "uncalibrated": e["uncalibrated"] * scale, "calibrated": e["calibrated"] * scale,
            "calibrated / uncalibrated (ratio)": e["calibrated"] / e["uncalibrated"] if e["uncalibrated"] else None,
            "made worse by the fit": made_worse(e),
            "meets target": (e["calibrated"] <= e["target"]) if e["target"] else None,
        })
    report.captions["held_out_errors"] = (
        "Surrogate against SPICE on the held-out half of the experiments, with every parameter at identity "
        "(uncalibrated) and as fitted; Δx is the state, from 0 (off) to 1 (on). 'Made worse' means the fitted "
        f"error exceeds the uncalibrated one by more than {100 * WORSE_MARGIN:g} %.")
    worse = worse_after_fit(errors)
    report.notes = ([f"Warning: {sentence}." for sentence in worse]
                    + (["The fit absorbs ngspice's own integration error on the fitting half; where a held-out error "
                        "grows, that error does not carry over to other experiments. The uncalibrated surrogate "
                        "(the default) may be the better choice for those quantities."] if worse else [])
                    + [f"Use it with `--backend surrogate --calibration {run.id}` on {medium} runs; applied to another "
                       "medium it fits nothing of that medium (the command line warns)."])
    if "experiments.npz" in run.files:
        stored = run.read_npz("experiments.npz")
        spice = {k.removeprefix("spice_"): v for k, v in stored.items() if k.startswith("spice_")}
        surrogate = {k.removeprefix("surrogate_"): v for k, v in stored.items() if k.startswith("surrogate_")}
        report.figures["parity.png"] = parity_figure(spice, surrogate, medium)
        report.captions["parity.png"] = ("Calibrated surrogate against SPICE on the held-out experiments: column "
                                         "currents, states after pulses and pulse energies (log axes where they "
                                         "span two decades or more); the dotted line is equality.")
    report.summary = {"calibration": run.id, **{e["measure"]: e["calibrated"] for e in errors},
                      "worse_after_fit": [e["measure"] for e in errors if made_worse(e)]}
    return report


def _decades(values: np.ndarray) -> float:
    """Decades the positive ``values`` span (0 when any is zero or negative: no log axis for those)."""
    values = np.asarray(values, dtype=float)
    if not len(values) or np.any(values <= 0):
        return 0.0
    return float(np.log10(values.max() / values.min()))


def parity_figure(spice: dict[str, np.ndarray], surrogate: dict[str, np.ndarray], medium: str):
    plt = pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(13, 4.8))
    amperes, i_unit = current_unit(np.concatenate([spice["currents_A"], surrogate["currents_A"]]))
    for ax, key, scale, quantity, unit in ((axes[0], "currents_A", amperes, "column current", i_unit),
                                           (axes[1], "states", 1.0, "state after pulse", "x, 0-1"),
                                           (axes[2], "energy_source_J", 1e9, "pulse energy with drivers", "nJ")):
        a, b = spice[key] * scale, surrogate[key] * scale
        low, high = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
        # Equality under the points: where the surrogate is right they lie on it.
        ax.plot([low, high], [low, high], "k:", lw=1, zorder=1)
        ax.plot(a, b, ".", ms=3, zorder=2)
        # Currents and pulse energies span decades (a reset pulse costs pJ, a set pulse nJ): on a
        # linear axis the small ones would be one blot at 0.
        if _decades(np.concatenate([a, b])) >= 2:
            ax.set(xscale="log", yscale="log")
            unit += "; log scale"
        ax.set(xlabel=f"SPICE: {quantity} ({unit})", ylabel=f"surrogate: {quantity} ({unit})")
    figure.suptitle(f"Surrogate against SPICE on held-out experiments, medium {medium}")
    figure.tight_layout()
    return figure
