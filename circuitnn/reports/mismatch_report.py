"""The neuron-mismatch study report (``mismatch`` runs), from stored results only: accuracy of
write-verify alone, perturb-and-measure learning from as-found states, and write-verify followed by
fine-tuning, against the mismatch level; mean ± standard deviation over chips."""

from __future__ import annotations

import numpy as np

from ..experiments.mismatch import METHODS, aggregate, headline
from ..store import Run
from .document import (Report, ReportError, how_to_continue, incomplete_run, legend_below, provenance, pyplot,
                       side_by_side, without_float_noise)

LABELS = {"write-verify": "write-verify alone", "dgc": "DGC from as-found states",
          "finetune": "write-verify + DGC fine-tuning"}


def _pct(value: float) -> float:
    return without_float_noise(100.0 * value, 4)


def stored_rows(run: Run) -> list[dict]:
    return [row for rel in sorted(run.files) if rel.startswith("parts/level") and rel.endswith(".json")
            for row in run.read_json(rel)]


def build_report(run: Run) -> Report:
    plan = run.read_json("plan.json")
    study = plan["study"]
    rows = stored_rows(run)
    if not rows:
        raise ReportError(f"run {run.id} ({run.status}) has no finished chip yet, so there is nothing to "
                          f"report; {how_to_continue(run)}")
    table = aggregate(rows)
    base = study["base"]
    report = Report(run.id, f"Neuron-circuit mismatch: write-verify against on-chip learning ({run.id})",
                    header=provenance(run))
    report.header.append(
        f"Medium {plan['medium']}, backend {study['backend']}, {study['chips']} chips per level. Level 1 = "
        f"σ {100 * base['feedback_sigma']:g} % on each TIA feedback resistor, {1e3 * base['offset_sigma_V']:g} mV "
        f"op-amp offset, {100 * base['gain_sigma']:g} % activation gain, {1e3 * base['threshold_sigma_V']:g} mV "
        f"activation threshold, {100 * base['reference_sigma']:g} % reference resistor, drawn per neuron and chip.")
    planned = len(study["levels"]) * study["chips"]
    stored = len({(r["level"], r["chip"]) for r in rows})
    if stored < planned:
        report.header.append(incomplete_run(run, f"{stored} of {planned} chips stored"))
    report.tables["accuracy"] = [{
        "mismatch level": row["level"], "method": LABELS[row["method"]], "chips": row["chips"],
        "all binary inputs, mean (%)": _pct(row["all_inputs_accuracy_mean"]),
        "all binary inputs, std (points)": _pct(row["all_inputs_accuracy_std"]),
        "noisy test set, mean (%)": _pct(row["test_accuracy_mean"]),
        "noisy test set, std (points)": _pct(row["test_accuracy_std"]),
        "chip evaluations": row["evaluations_mean"], "pulses": row["pulses_mean"],
        "training time (s)": row["training_time_s_mean"]} for row in table]
    report.captions["accuracy"] = (
        "Accuracy through each mismatched chip (over the 372 binary inputs that have a nearest pattern, read "
        "without noise; and over the noisy test images), mean and standard deviation over chips; chip "
        "evaluations, pulses and training time are means per chip (write-verify's are the tuning's).")
    report.notes = _verdict(table)
    report.figures["mismatch_accuracy.png"] = _figure(table)
    report.captions["mismatch_accuracy.png"] = (
        "Accuracy against the neuron-circuit mismatch level, mean ± standard deviation over chips.")
    report.summary = headline(table)
    return report


def _verdict(table: list[dict]) -> list[str]:
    """The acceptance question in numbers: at the first level where write-verify alone loses ≥ 5
    points over all inputs, does fine-tuning come back to within 1 point of the mismatch-free chips?"""
    by = {(row["level"], row["method"]): row for row in table}
    levels = sorted({row["level"] for row in table})
    if 0.0 not in levels or (0.0, "write-verify") not in by:
        return ["No mismatch-free level (0) in this study: no reference to compare with."]
    clean = by[0.0, "write-verify"]["all_inputs_accuracy_mean"]
    notes = [f"Mismatch-free chips, write-verify: {100 * clean:.1f} % over all inputs."]
    for level in levels:
        wv = by.get((level, "write-verify"))
        ft = by.get((level, "finetune"))
        if wv is None or ft is None or level == 0.0 or clean - wv["all_inputs_accuracy_mean"] < 0.05:
            continue
        lost = clean - wv["all_inputs_accuracy_mean"]
        gap = clean - ft["all_inputs_accuracy_mean"]
        verdict = "within 1 point: recovered" if gap <= 0.01 else "more than 1 point short"
        notes.append(
            f"At level {level:g} write-verify alone loses {100 * lost:.1f} points over all inputs; after DGC "
            f"fine-tuning the chips are {100 * gap:.1f} points from the mismatch-free accuracy ({verdict}).")
        break
    else:
        notes.append("No level in this study makes write-verify alone lose 5 points over all inputs.")
    return notes


def _figure(table: list[dict]):
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    # Methods side by side at each level, scaled to the levels' spacing, so none hides another.
    offsets = side_by_side([row["level"] for row in table], len(METHODS))
    for ax, key, title in zip(axes, ("all_inputs_accuracy", "test_accuracy"),
                              ("every binary input with a nearest pattern", "noisy test images")):
        for offset, marker, method in zip(offsets, "os^", METHODS):
            rows = [row for row in table if row["method"] == method]
            if not rows:
                continue
            x = np.array([row["level"] for row in rows]) + offset
            ax.errorbar(x, [100 * row[f"{key}_mean"] for row in rows], yerr=[100 * row[f"{key}_std"] for row in rows],
                        marker=marker, capsize=3, label=LABELS[method])
        # Accuracies end at 100 %: a standard-deviation bar past it says nothing.
        ax.set(xlabel="mismatch level (× base σ's; methods drawn side by side)",
               title=f"Accuracy over {title}", ylim=(None, 101.5))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    # Below the panels: the chips' spread reaches from the top of either panel to its bottom, so a
    # legend inside one would lie on an error bar.
    legend_below(figure, *axes[0].get_legend_handles_labels(), ncols=len(METHODS))
    return figure
