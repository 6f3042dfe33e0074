"""The in-situ learning sections of an on-chip report: parts whose trainer learned on the chip
(a ``history.csv`` beside their summary), from stored results only.

Per part: accuracy on the noisy test images and over every binary input, chip evaluations, pulses
(updates and perturbations), verify reads, time and energy of learning; beside them, write-verify's
cost on the same chip (the finetune variant's first stage: the same as-found states and tolerance),
so on-chip learning and ex-situ programming are costed side by side. Learning curves as a figure.
"""

from __future__ import annotations

import numpy as np

from ..devices.base import preset
from ..errors import ConfigError
from ..store import Run
from .document import Report, legend_below, pyplot, side_by_side, without_float_noise

HISTORY_COLUMNS = ("step", "batch_cost", "test_accuracy", "evaluations", "pulses", "training_time_s",
                   "energy_total_J")


def learning_parts(run: Run, parts: list[str]) -> list[str]:
    return [p for p in parts if f"parts/{p}/history.csv" in run.files]


def _percent(fraction) -> float:
    return without_float_noise(100.0 * float(fraction), 6)


def _phase_totals(run: Run, part: str) -> dict[str, dict[str, float]]:
    phases = run.read_csv(f"parts/{part}/phases.csv", numeric=("time_s", "pulses", "operations", "energy_total_J"))
    return {str(name): {key: float(phases[key][i]) for key in ("time_s", "pulses", "operations", "energy_total_J")}
            for i, name in enumerate(phases["phase"])}


def add_sections(report: Report, run: Run, parts: list[str], summaries: dict[str, dict]) -> None:
    """Add the learning table, the cost comparison and the learning-curve figure for ``parts``."""
    if not parts:
        return
    rows, costs = [], []
    for part in parts:
        s = summaries[part]
        phases = _phase_totals(run, part)
        rows.append({
            "medium": s["medium"], "trainer": s.get("trainer", "?"), "variant": s.get("variant", "?"),
            "test accuracy (%)": _percent(s["chip_accuracy"]),
            "all binary inputs (%)": _percent(s.get("all_inputs_accuracy", np.nan)),
            "software network, test (%)": _percent(s["software_accuracy"]),
            "steps": s.get("steps"), "chip evaluations": s.get("evaluations"),
            "update pulses": int(phases.get("program", {}).get("pulses", 0)),
            "perturbation pulses": int(phases.get("perturb", {}).get("pulses", 0)),
            "training time (s)": s["training_time_s"],
            "energy, with drivers (µJ)": s["training_energy_total_J"] * 1e6,
        })
        if "write_verify_pulses" in s:
            costs.append({
                "medium": s["medium"], "write-verify: pulses": s["write_verify_pulses"],
                "write-verify: time (s)": s["write_verify_time_s"],
                "write-verify: energy (µJ)": s["write_verify_energy_total_J"] * 1e6,
                "write-verify: test accuracy (%)": _percent(s["write_verify_test_accuracy"]),
                "write-verify: all inputs (%)": _percent(s["write_verify_all_inputs_accuracy"]),
                "then learning: pulses": s["pulses"] - s["write_verify_pulses"],
                "then learning: time (s)": s["training_time_s"] - s["write_verify_time_s"],
                "then learning: energy (µJ)": (s["training_energy_total_J"] - s["write_verify_energy_total_J"]) * 1e6,
                "after learning: test accuracy (%)": _percent(s["chip_accuracy"]),
                "after learning: all inputs (%)": _percent(s.get("all_inputs_accuracy", np.nan)),
            })
    report.tables["onchip_learning"] = rows
    report.captions["onchip_learning"] = (
        "On-chip learning (perturb-and-measure): accuracy through the array on the noisy test images and "
        "over every binary input that has a nearest pattern (372 of 512), read after training; chip "
        "evaluations are mini-batch inferences used to measure the cost; update pulses change weights, "
        "perturbation pulses make and undo the temporary changes. Time and energy include every inference, "
        "pulse and read of learning (variant 'finetune': the write-verify stage too).")
    if costs:
        report.tables["learning_vs_write_verify"] = costs
        report.captions["learning_vs_write_verify"] = (
            "The same chip programmed by write-verify to the ex-situ targets (first stage of 'finetune'), "
            "then learning on the chip from there: pulses, time and energy of each stage, and accuracy after each.")
    report.notes.append(
        "Perturb-and-measure learning needs no software model of the chip: the cost is measured through the "
        "array itself. Its price is chip evaluations: a sequential central-difference step measures the cost "
        "twice per device, each over a mini-batch, and every measurement carries the controller overhead per "
        "image (timing.controller_overhead_s), which dominates its time.")
    noisy = [summaries[p] for p in parts if summaries[p]["chip_accuracy"] < 0.95 and _ages(summaries[p]["medium"])]
    for s in noisy:
        report.notes.append(
            f"{s['medium']} ({s.get('variant')}) ends at {100 * s['chip_accuracy']:.1f} % on the test images: its "
            "read noise is drawn at every inference, so two cost measurements a small perturbation apart differ "
            "mostly by noise (docs/NOTES.md: on the surrogate the same chips learn to 99 % with the read noise "
            "switched off, device.overrides.read_noise_scale = 0).")
    report.figures["learning_curves.png"] = _curves(run, parts, summaries)
    report.captions["learning_curves.png"] = (
        "Learning on the chip: test accuracy (monitored without cost to the chip) against training step, "
        "and the pulses spent, per medium and variant.")


def _ages(medium: str) -> bool:
    """Whether the medium's model ages (drift and read noise), as its registered preset says."""
    try:
        return bool(preset(medium).ages)
    except ConfigError:  # a stored run of a model not registered here: no claim
        return False


def _curves(run: Run, parts: list[str], summaries: dict[str, dict]):
    plt = pyplot()
    figure, (accuracy_ax, pulses_ax) = plt.subplots(1, 2, figsize=(12, 4.6))
    histories = {part: run.read_csv(f"parts/{part}/history.csv", numeric=HISTORY_COLUMNS) for part in parts}
    # Media often learn alike (the same accuracy at every check, every finetune part at 100 %): each
    # part is drawn a little to the side of its step, with its own marker, so that none hides another.
    offsets = side_by_side(np.concatenate([h["step"] for h in histories.values()]), len(parts))
    for k, (offset, (part, history)) in enumerate(zip(offsets, histories.items())):
        s = summaries[part]
        style = {"marker": "osD^v<>P"[k % 8], "ms": 4, "label": f"{s['medium']} {s.get('variant', '')}"}
        accuracy_ax.plot(history["step"] + offset, 100 * history["test_accuracy"], **style)
        pulses_ax.plot(history["step"] + offset, history["pulses"], **style)
    accuracy_ax.set(xlabel="training step (parts side by side)", ylabel="test accuracy (% of test images)",
                    ylim=(0, 102), title="Accuracy while learning on the chip")
    pulses_ax.set(xlabel="training step (parts side by side)",
                  ylabel="pulses so far (updates, perturbations, write-verify)", title="Pulses spent")
    for ax in (accuracy_ax, pulses_ax):
        ax.grid(alpha=0.3)
    # Below the panels: the curves run from corner to corner of both.
    legend_below(figure, *accuracy_ax.get_legend_handles_labels(), ncols=min(len(parts), 6))
    return figure
