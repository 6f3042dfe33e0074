"""The large-network report (``networks`` runs): accuracy with and without device effects, and read
through the wires, from stored results only. A run that has not finished is reported for the
evaluations it stored (``parts/``)."""

from __future__ import annotations

import numpy as np

from ..experiments.networks import PERIPHERY
from ..store import Run
from .document import (Report, ReportError, how_to_continue, incomplete_run, legend_below, legend_entries,
                       provenance, pyplot, unfinished, side_by_side, without_float_noise)


def _pct(value) -> float:
    return without_float_noise(100.0 * float(value), 6)


def stored_rows(run: Run) -> tuple[list[dict], list[dict]]:
    """(device evaluations, wire evaluations): from results.json once finished, else from the parts."""
    if "results.json" in run.files:
        rows = run.read_json("results.json")
    else:
        rows = [run.read_json(rel) for rel in sorted(run.files)
                if rel.startswith("parts/") and rel.endswith((".json",)) and "-wires-" not in rel]
    wires = [run.read_json(rel) for rel in sorted(run.files, key=_wire_order)
             if rel.startswith("parts/") and "-wires-" in rel and rel.endswith(".json")]
    return rows, wires


def _wire_order(rel: str):
    """parts/<kind>-wires-<tile>-<R>ohm.json in plan order: by network, tile size, resistance."""
    if "-wires-" not in rel:
        return ("", 0, 0.0)
    kind, _, rest = rel.removeprefix("parts/").partition("-wires-")
    tile, _, resistance = rest.removesuffix("ohm.json").partition("-")
    try:
        return (kind, int(tile), float(resistance))
    except ValueError:
        return (kind, 0, 0.0)


def build_report(run: Run) -> Report:
    plan = run.read_json("plan.json")
    rows, wire_rows = stored_rows(run)
    if not rows and not wire_rows:
        raise ReportError(f"run {run.id} ({run.status}) has no finished evaluation yet, so there is nothing "
                          f"to report; {how_to_continue(run)}")
    dataset = run.info.labels.get("dataset", "?")
    report = Report(run.id, f"Large networks on crossbar tiles: {run.id}", header=provenance(run))
    report.header.append(
        f"Dataset: {dataset}" + (f" (from {plan['mnist_dir']})" if plan.get("mnist_dir") else "")
        + f"; {plan['epochs']} epochs; at most {plan['max_examples']} examples; {plan['repeats']} programming "
        f"draws per evaluation; hardware-aware training with multiplicative weight noise σ = {plan['weight_noise']:g}.")
    if unfinished(run):
        report.header.append(incomplete_run(run, "the evaluations stored so far"))
    if rows:
        report.tables["accuracy"] = [{
            "network": r["network"], "training": r["training"], "weight noise σ (relative)": r["weight_noise"],
            "device": r["device"], "float accuracy (%)": _pct(r["accuracy_float"]),
            "accuracy with device effects (%)": _pct(r["accuracy_device"]),
            "std over draws (points)": _pct(r["accuracy_device_std"]),
            "drop (points)": _pct(r["accuracy_drop"]), "tiles": r["n_tiles"],
        } for r in rows]
        report.captions["accuracy"] = ("Test accuracy (% of test images) in float and on crossbar tiles with the "
                                       "device's default effects (mean and standard deviation over programming "
                                       "draws); the drop is float minus device, in percentage points.")
        report.figures["accuracy.png"] = accuracy_figure(rows, dataset)
        report.captions["accuracy.png"] = ("Test accuracy in float and on tiles with device effects per network, "
                                           "training and device, on a 0-100 % axis with the values printed.")
    if wire_rows:
        report.tables["wires"] = [{
            "network": r["network"], "tile (rows × columns)": f"{r['tile']}×{r['tile']}",
            "line resistance per segment (Ω)": r["r_line_ohm"], "float accuracy (%)": _pct(r["accuracy_float"]),
            "accuracy through the wires (%)": _pct(r["accuracy_device"]), "tiles": r["n_tiles"],
        } for r in wire_rows]
        report.captions["wires"] = (
            "Reading through the wires: the hardware-aware networks on M-SDC (Cr) tiles with their default "
            "effects, every tile read through its solved circuit: line resistance per crosspoint segment on rows "
            f"and columns, row driver {PERIPHERY['r_driver_ohm']:g} Ω, sense {PERIPHERY['r_sense_ohm']:g} Ω, 1T1R "
            f"switch {PERIPHERY['r_switch_on_ohm']:g} Ω (one programming draw each). The circuits are solved by the "
            "surrogate's nodal array model, which matches ngspice on the same tile netlists to ~1e-12 of the "
            "largest current (tests/test_tile_circuit.py, benchmarks/bench_mvm.py).")
        report.figures["wires.png"] = wire_figure(wire_rows, dataset)
        report.captions["wires.png"] = ("Accuracy through the wires against the line resistance per crosspoint "
                                        "segment, per tile size, with the float accuracy for reference.")
    if rows:
        best = max(rows, key=lambda r: r["accuracy_device"])
        report.summary = {"dataset": dataset, "best_device_accuracy": best["accuracy_device"],
                          "best": f"{best['network']} {best['training']} on {best['device']}"}
    return report


def accuracy_figure(rows: list[dict], dataset: str):
    plt = pyplot()
    figure, ax = plt.subplots(figsize=(9, 4.4))
    labels = [f"{r['network']}\n{r['training']}\n{r['device']}" for r in rows]
    x = np.arange(len(rows))
    floats = [100 * r["accuracy_float"] for r in rows]
    devices = [100 * r["accuracy_device"] for r in rows]
    ax.bar(x - 0.2, floats, 0.4, label="float (no device effects)")
    ax.bar(x + 0.2, devices, 0.4, yerr=[100 * r["accuracy_device_std"] for r in rows], capsize=2,
           label="on tiles with device effects")
    # The whole 0-100 % range, honestly; the differences are printed on the bars instead.
    for xs, values in ((x - 0.2, floats), (x + 0.2, devices)):
        for xi, value in zip(xs, values):
            ax.text(xi, value - 4, f"{value:.1f}", ha="center", va="top", fontsize=8, color="white")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylim(0, 114)  # room above 100 % for the legend, clear of the bars
    ax.set_yticks(range(0, 101, 20))
    ax.set(xlabel="network / training / device (tick label lines, top to bottom)", ylabel="test accuracy (%)",
           title=f"{dataset}: accuracy with and without device effects")
    ax.legend(fontsize=8, loc="upper center", ncol=2)
    figure.tight_layout()
    return figure


def wire_figure(rows: list[dict], dataset: str):
    plt = pyplot()
    kinds = list(dict.fromkeys(r["network"] for r in rows))
    sizes = list(dict.fromkeys(r["tile"] for r in rows))
    # Tile sizes often agree (both equal at 0 Ω): each is drawn a little to the side of its
    # resistance, with its own marker, so that none hides another.
    offsets = side_by_side([r["r_line_ohm"] for r in rows], len(sizes))
    figure, axes = plt.subplots(1, len(kinds), figsize=(4.8 * len(kinds), 4.2), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        ours = [r for r in rows if r["network"] == kind]
        for k, (offset, size) in enumerate(zip(offsets, sizes)):
            group = [r for r in ours if r["tile"] == size]
            if not group:
                continue
            ax.plot([r["r_line_ohm"] + offset for r in group], [100 * r["accuracy_device"] for r in group],
                    marker="osD^v"[k % 5], color=f"C{k}", zorder=3, label=f"{size}×{size} tiles")
        reference = 100 * ours[0]["accuracy_float"]
        # Beneath the markers: a tile that reads as well as float sits on this line and must stay visible.
        ax.axhline(reference, color="0.5", ls="--", zorder=1, label="float (no device effects)")
        # Fitted to the data and the float reference: wire losses of a few points are the subject, and
        # a 0-100 % axis flattens them into one line.
        values = [100 * r["accuracy_device"] for r in ours] + [reference]
        margin = max(0.1 * (max(values) - min(values)), 0.5)
        ax.set_ylim(min(values) - margin, max(values) + margin)
        ax.set(xlabel="line resistance per crosspoint segment (Ω;\ntile sizes drawn side by side)",
               ylabel="test accuracy (%)", title=f"{kind}, M-SDC (Cr), {dataset}")
        ax.grid(alpha=0.3)
    # Below the panels, where it covers no point whatever the accuracies.
    handles, labels = legend_entries(axes[0])
    legend_below(figure, handles, labels, ncols=len(labels), fontsize=8)
    return figure
