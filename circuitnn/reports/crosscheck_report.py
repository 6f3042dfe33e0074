"""The cross-check report (``crosscheck`` runs): SPICE against the surrogate over seeds, from stored
results only. A run that has not finished is reported for the runs it stored (``parts/*.json``)."""

from __future__ import annotations

import re

from ..experiments.crosscheck import COMPARED, TARGET_ACCURACY_POINTS, TARGET_RELATIVE, summarize
from ..store import Run
from .document import (Report, ReportError, how_to_continue, incomplete_run, legend_below, provenance, pyplot,
                       side_by_side, without_float_noise)


def _pct(value: float) -> float:
    return without_float_noise(100.0 * value, 6)


def stored_rows(run: Run) -> list[dict]:
    """Every medium/seed/mode the run compared: from summary.json once finished, else from its parts."""
    if "summary.json" in run.files:
        return run.read_json("summary.json")["runs"]
    return [run.read_json(rel) for rel in sorted(run.files) if rel.startswith("parts/") and rel.endswith(".json")]


def build_report(run: Run) -> Report:
    plan = run.read_json("plan.json")
    calibration = plan["calibration"]
    rows = stored_rows(run)
    if not rows:
        raise ReportError(f"run {run.id} ({run.status}) has no finished comparison yet, so there is nothing "
                          f"to report; {how_to_continue(run)}")
    groups = summarize(rows)
    report = Report(run.id, f"Surrogate cross-check: {run.id}", header=provenance(run))
    report.header += [
        f"Surrogate calibration: `{calibration['name']}` ({calibration['source']}).",
        f"Target: accuracy within {100 * TARGET_ACCURACY_POINTS:.0f} points, training time and energy within "
        f"{100 * TARGET_RELATIVE:.0f} % of SPICE. Differences are surrogate / SPICE − 1.",
    ]
    planned = len(plan["configs"]) * plan["seeds"] * len(plan["reset_modes"])
    if len(rows) < planned:
        report.header.append(incomplete_run(run, f"{len(rows)} of {planned} comparisons stored"))
    report.tables["agreement"] = [{
        "medium": g["medium"], "initial reset": bool(g["initial_reset"]), "runs": g["runs"],
        "within target": g["within_target"], "divergent": g["divergent"],
        "mean Δtime (%)": _pct(g["mean_training_time_s_relative_difference"]),
        "mean Δenergy (%)": _pct(g["mean_training_energy_total_J_relative_difference"]),
        "worst Δtime (%)": _pct(g["worst_training_time_s_relative_difference"]),
        "worst Δenergy (%)": _pct(g["worst_training_energy_total_J_relative_difference"]),
        "max Δaccuracy (points)": _pct(g["max_accuracy_difference"]),
    } for g in groups]
    report.captions["agreement"] = ("Per medium and reset mode, over seeds: runs within the target, runs whose "
                                    "controllers parted at a tolerance edge (divergent), and the differences of "
                                    "training time and energy (with drivers).")
    report.tables["runs"] = [{
        "medium": r["medium"], "seed": r["seed"], "initial reset": bool(r["initial_reset"]),
        "accuracy SPICE (%)": _pct(r["accuracy_spice"]), "accuracy surrogate (%)": _pct(r["accuracy_surrogate"]),
        "pulses SPICE": r["pulses_spice"], "pulses surrogate": r["pulses_surrogate"],
        **{f"Δ{label} (%)": _pct(r[f"{key}_relative_difference"])
           for key, label in zip(COMPARED, ("time", "energy with drivers", "energy of devices", "inference energy"))},
        "within target": bool(r["within_target"]), "divergent": bool(r["divergent"]),
    } for r in rows]
    report.figures["agreement.png"] = agreement_figure(rows)
    report.captions["agreement.png"] = ("Surrogate against SPICE per seed: relative difference of training time "
                                        "and energy; the grey band is the ±5 % target, black edges mark divergent runs.")
    report.notes = _divergence_notes(rows)
    medium = re.search(r"of medium (\w+)", calibration.get("source", ""))
    others = sorted({r["medium"] for r in rows} - {medium.group(1)}) if medium else []
    if others:
        report.notes.append(f"Warning: the surrogate calibration {calibration['name']} was fitted to medium "
                            f"{medium.group(1)} and is applied here to {', '.join(others)} as well.")
    report.summary = {"runs": len(rows), "within_target": int(sum(r["within_target"] for r in rows)),
                      "divergent": int(sum(r["divergent"] for r in rows))}
    return report


def _divergence_notes(rows: list[dict]) -> list[str]:
    divergent = sorted((r for r in rows if r["divergent"]),
                       key=lambda r: (r["within_target"], -abs(r["training_time_s_relative_difference"])))
    notes = ["A run diverges where one verify read falls on different sides of the tolerance edge on the two "
             "backends (within their numerical error); from there the controllers pulse differently. Divergent "
             "runs follow, those outside the target first, then by size of the time difference."]
    if not divergent:
        notes.append("No run diverged: on every run both controllers took the same decision after every verify read.")
    for r in divergent:
        d = r["divergence"]
        notes.append(
            ("Outside the target: " if not r["within_target"] else "")
            + f"{r['medium']}, seed {r['seed']}, {'reset' if r['initial_reset'] else 'no reset'}: device "
            f"{d['device']}, verify read {d['read_of_device']}: SPICE read {100 * d['error_spice']:+.3f} %, "
            f"surrogate {100 * d['error_surrogate']:+.3f} % of the target, tolerance ±{100 * d['tolerance']:g} % "
            f"({100 * d['distance_to_edge']:.3f} points from the edge). Pulses {r['pulses_spice']} vs "
            f"{r['pulses_surrogate']}; time {100 * r['training_time_s_relative_difference']:+.2f} %, energy "
            f"{100 * r['training_energy_total_J_relative_difference']:+.2f} %.")
    return notes


def agreement_figure(rows: list[dict]):
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(10, 4.6), sharey=True)
    media = list(dict.fromkeys(r["medium"] for r in rows))
    series = {}
    # Side by side around each seed (a medium and mode each), so equal values do not hide each other.
    offsets = iter(side_by_side([r["seed"] for r in rows], 2 * len(media), share=0.6, at_most=0.1))
    offset = {(medium, reset): next(offsets) for medium in media for reset in (False, True)}
    for ax, key, label in zip(axes, COMPARED[:2], ("training time", "training energy (with drivers)")):
        for m, medium in enumerate(media):
            for reset, marker in ((False, "o"), (True, "s")):
                group = [r for r in rows if r["medium"] == medium and r["initial_reset"] == reset]
                if not group:
                    continue
                x = [r["seed"] + offset[medium, reset] for r in group]
                y = [100 * r[f"{key}_relative_difference"] for r in group]
                edges = ["black" if r["divergent"] else f"C{m}" for r in group]
                ax.scatter(x, y, marker=marker, color=f"C{m}", edgecolors=edges, linewidths=1.2)
                # Its own key: the scatter's first point would lend it a divergent run's black edge.
                series[f"{medium} {'reset' if reset else 'no reset'}"] = Line2D(
                    [], [], linestyle="", marker=marker, color=f"C{m}", markeredgewidth=1.2)
        band = ax.axhspan(-100 * TARGET_RELATIVE, 100 * TARGET_RELATIVE, color="0.9", zorder=0)
        ax.axhline(0, color="0.5", lw=0.8)
        # Integer ticks: one per seed, or integers only when there are many seeds.
        seeds = sorted({r["seed"] for r in rows})
        ax.set_xlim(seeds[0] - 0.5, seeds[-1] + 0.5)
        if len(seeds) <= 12:
            ax.set_xticks(seeds)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel="seed", title=f"{label}: surrogate vs SPICE")
    axes[0].set_ylabel("surrogate / SPICE − 1 (%)")
    labels = [*series, f"target: within ±{100 * TARGET_RELATIVE:g} % of SPICE",
              "black edge: divergent at a tolerance edge"]
    handles = [*series.values(), band, Line2D([], [], linestyle="", marker="o", markerfacecolor="white",
                                              markeredgecolor="black", markeredgewidth=1.2)]
    # Below the panels: the band spans the panels' whole width, so any legend inside would lie on it.
    legend_below(figure, handles, labels)
    return figure
