"""The comparison report of a sweep (``sweep`` runs): the stored runs of its points, aggregated.

Built from the store alone: the sweep's ``plan.json`` names its runs and the values that made them;
each run's tuning parts give accuracy, training time, energy and pulses, with and without the
initial reset. Tables: every run, then mean ± standard deviation over seeds for each combination of
the other swept values; per swept value (other than the seed), a figure of the four quantities
against it, one line per medium and reset mode, beside the CSV of what it plots. A sweep still
running is reported for the runs it has finished.
"""

from __future__ import annotations

import json
import re

import numpy as np

from ..store import Run, RunStore, StoreError
from .document import Report, ReportError, legend_below, provenance, pyplot, side_by_side

# (summary key, column label, scale): what every run contributes, per reset mode.
METRICS = (("chip_accuracy", "accuracy (%)", 100.0),
           ("training_time_s", "training time (s)", 1.0),
           ("training_energy_total_J", "training energy with drivers (J)", 1.0),
           ("pulses", "pulses", 1.0))
# How a trainer variant is named in tables and legends (others: the variant's own name).
MODE_LABELS = {"noreset": "without reset", "reset": "with reset"}
SEED_PATHS = ("seed",)
MEDIUM_PATHS = ("device.medium", "preset")
# How a swept config key reads on an axis: (name, unit or None). A sweep may vary any key the config
# accepts; those not here are named from the key itself (axis_label).
AXIS_NAMES = {
    "seed": ("seed", None),
    "backend": ("simulation backend", None),
    "device.medium": ("medium", None),
    "preset": ("medium", None),
    "device.overrides.r_on_ohm": ("device R_on", "Ω"),
    "device.overrides.r_off_ohm": ("device R_off", "Ω"),
    "device.overrides.v_on_V": ("device V_on", "V"),
    "device.overrides.v_off_V": ("device V_off", "V"),
    "device.overrides.tau_s": ("device time constant τ", "s"),
    "tuning.tolerance": ("write-verify tolerance", "relative"),
    "tuning.tolerance_floor_S": ("write-verify tolerance floor", "S"),
    "tuning.max_pulses": ("pulse budget per device", "pulses"),
    "tuning.initial_reset": ("initial reset", None),
    "tuning.set_amplitude_V": ("SET pulse amplitude", "V"),
    "tuning.reset_amplitude_V": ("RESET pulse amplitude", "V"),
    "tuning.pulse_width_s": ("pulse width", "s"),
    "tuning.min_pulse_width_s": ("shortest pulse width", "s"),
    "tuning.reset_width_s": ("initial RESET pulse width", "s"),
    "tuning.reset_pulse_width_s": ("verify-loop RESET pulse width", "s"),
    "tuning.adaptive_width": ("adaptive pulse width", None),
    "timing.controller_overhead_s": ("controller overhead per read or pulse", "s"),
    "timing.read_duration_s": ("verify read duration", "s"),
    "timing.inference_settle_s": ("inference settling time", "s"),
    "programming.r_driver_ohm": ("programming driver resistance", "Ω"),
    "programming.r_switch_on_ohm": ("programming switch resistance", "Ω"),
    "programming.r_sense_ohm": ("programming sense resistance", "Ω"),
    "circuit.v_read_V": ("read voltage", "V"),
    "circuit.weights": ("weight encoding", None),
    "circuit.r_line_ohm": ("line resistance", "Ω"),
    "circuit.mismatch.feedback_sigma": ("TIA feedback mismatch σ", "relative"),
    "circuit.mismatch.offset_sigma_V": ("op-amp offset σ", "V"),
    "circuit.mismatch.gain_sigma": ("activation gain mismatch σ", "relative"),
    "circuit.mismatch.threshold_sigma_V": ("activation threshold σ", "V"),
    "circuit.mismatch.reference_sigma": ("reference resistor mismatch σ", "relative"),
    "onchip.test_noise": ("test-set pixel-flip probability", None),
    "onchip.target_margin": ("target margin", "fraction of the window"),
    "training.epochs": ("software training epochs", None),
    "training.learning_rate": ("software learning rate", None),
    "training.training_noise": ("training pixel-flip probability", None),
    "trainer.kind": ("trainer", None),
}
# Config keys carry their unit as a suffix (tau_s, v_read_V); longest first, so _per_V is not _V.
UNIT_SUFFIXES = (("_per_V", "1/V"), ("_ohm", "Ω"), ("_Hz", "Hz"), ("_V", "V"), ("_s", "s"), ("_S", "S"),
                 ("_J", "J"), ("_A", "A"), ("_K", "K"))
# Series of a figure: colour per medium, marker and line style per trainer variant.
MARKERS = ("o", "s", "^", "D", "v", "P")
LINESTYLES = ("-", "--", ":", "-.")


def value_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def run_rows(run: Run) -> tuple[list[dict], list[str]]:
    """One row per stored run and reset mode: the run id, its swept values ("values"), medium,
    seed, mode and metrics; and a line per run of the plan not (yet) complete in the store."""
    plan = run.read_json("plan.json")
    store = RunStore(run.path.parent)
    rows, missing = [], []
    for point in plan["points"]:
        run_id = point["run_id"]
        try:
            member = store.open(run_id)
        except StoreError as err:
            missing.append(f"{run_id}: not readable in the store ({str(err)[:100]})")
            continue
        if member.status != "complete":
            missing.append(f"{run_id}: {member.status}")
            continue
        for part in _training_parts(member, point["medium"]):
            variant = part.split("-", 1)[1]
            label = MODE_LABELS.get(variant, variant)
            summary = member.read_json(f"parts/{part}/summary.json")
            rows.append({"run_id": run_id, "values": point["values"], "medium": point["medium"],
                         "seed": point["seed"], "backend": point.get("backend", "spice"), "mode": label,
                         **{key: float(summary[key]) * scale for key, _, scale in METRICS}})
    store.close()
    return rows, missing


def _training_parts(member: Run, medium: str) -> list[str]:
    """The run's trained parts ("<medium>-<variant>"), write-verify's without reset first."""
    parts = [p for p in member.read_json("plan.json")["parts"]
             if p.startswith(f"{medium}-") and p.split("-", 1)[1] != "errors"]
    return sorted(parts, key=lambda p: p.split("-", 1)[1] != "noreset")


def _stats(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n − 1; 0 for a single run)."""
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def _aggregate(rows: list[dict], key) -> list[tuple[tuple, list[dict]]]:
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return list(groups.items())


def _stat_columns(members: list[dict]) -> dict:
    columns = {"runs": len(members), "seeds": " ".join(str(s) for s in sorted({m["seed"] for m in members}))}
    for key, label, _ in METRICS:
        mean, std = _stats([m[key] for m in members])
        name, unit = re.match(r"(.*?)( \(.*\))?$", label).groups()
        columns[f"{name} mean{unit or ''}"] = mean
        columns[f"{name} std{unit or ''}"] = std
    return columns


def build_report(run: Run) -> Report:
    if "plan.json" not in run.files:
        raise ReportError(f"sweep {run.id} ({run.status}) has no plan yet (it was stopped while being created); "
                          "run the sweep again (circuitnn sweep SPEC.toml)")
    plan = run.read_json("plan.json")
    axes = plan["axes"]
    rows, missing = run_rows(run)
    if not rows:
        raise ReportError(f"sweep {run.id} ({run.status}) has no complete run in {run.path.parent} yet, so "
                          f"there is nothing to report; run the sweep (circuitnn sweep SPEC.toml) to finish it")
    report = Report(run.id, f"Sweep {plan['name']}: {run.id}", header=provenance(run))
    n_runs = len(plan["points"])
    report.header.append(f"Experiment {plan['experiment']} at {n_runs} points, sweeping "
                         + ", ".join(f"`{a}`" for a in axes) + f"; {n_runs - len(missing)} runs complete.")
    if missing:
        report.header.append(f"Not in this report ({len(missing)} runs not complete): " + "; ".join(missing[:10])
                             + (" ..." if len(missing) > 10 else "") + ". Run the sweep again to finish them.")
    report.tables["runs"] = [{**{a: value_text(r["values"].get(a)) for a in axes}, "reset": r["mode"],
                              **{label: r[key] for key, label, _ in METRICS}, "run": r["run_id"]} for r in rows]
    report.captions["runs"] = "Every stored run of the sweep, per reset mode (`circuitnn report RUN` details one)."
    others = [a for a in axes if a not in SEED_PATHS]
    report.tables["over_seeds"] = [
        {**{a: value_text(v) for a, v in zip(others, key[:-1])}, "reset": key[-1], **_stat_columns(members)}
        for key, members in _aggregate(rows, lambda r: (*(value_text(r["values"].get(a)) for a in others),
                                                         r["mode"]))]
    report.captions["over_seeds"] = ("Mean and standard deviation (n − 1; 0 for one run) over seeds of every "
                                     "combination of the other swept values.")
    plotted = [a for a in others if a not in MEDIUM_PATHS] or others or list(axes)
    for axis in plotted:
        name = "by_" + re.sub(r"[^A-Za-z0-9]+", "_", axis).strip("_")
        table, figure = _against(rows, axis)
        report.tables[name] = table
        report.captions[name] = (f"Against {axis}, per medium and trainer variant (write-verify: with or without "
                                 f"reset): mean and standard deviation over "
                                 f"seeds and every other swept value (the data of figures/{name}.png).")
        report.figures[f"{name}.png"] = figure
        report.captions[f"{name}.png"] = (f"Accuracy, training time, energy and pulses against {axis}, per "
                                          f"medium and trainer variant (mean ± standard deviation, "
                                          f"{len({r['run_id'] for r in rows})} runs).")
    report.summary = {"runs": n_runs, "complete": n_runs - len(missing)}
    return report


def _numeric(values: list) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def axis_name(axis: str) -> tuple[str, str | None]:
    """What a swept key is, in words, and its unit (None: a count, a category or a plain number)."""
    if axis in AXIS_NAMES:
        return AXIS_NAMES[axis]
    leaf = axis.rsplit(".", 1)[-1]
    unit = None
    for suffix, symbol in UNIT_SUFFIXES:
        if leaf.endswith(suffix) and len(leaf) > len(suffix):
            leaf, unit = leaf[:-len(suffix)], symbol
            break
    return leaf.replace("_", " "), unit


def axis_label(axis: str) -> str:
    """The axis label of a swept key: its name and unit, then the key as the spec writes it."""
    name, unit = axis_name(axis)
    text = f"{name} ({unit})" if unit else name
    return text if text == axis else f"{text}\nconfig: {axis}"


def _against(rows: list[dict], axis: str) -> tuple[list[dict], object]:
    """The table and figure of the four metrics against one swept value."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    raw = list({value_text(r["values"].get(axis)): r["values"].get(axis) for r in rows}.values())
    numeric = _numeric(raw)
    order = sorted(raw) if numeric else raw
    position = {value_text(v): (float(v) if numeric else i) for i, v in enumerate(order)}
    groups = _aggregate(rows, lambda r: (r["medium"], r["mode"], value_text(r["values"].get(axis))))
    table = [{"medium": medium, "reset": mode, axis: value, **_stat_columns(members)}
             for (medium, mode, value), members in sorted(groups, key=lambda g: (g[0][0], g[0][1],
                                                                                 position[g[0][2]]))]
    figure, panels = plt.subplots(2, 2, figsize=(10, 7.5), constrained_layout=True)
    media = list(dict.fromkeys(r["medium"] for r in rows))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    series = [(medium, mode) for medium in media for mode in modes]
    log_x = numeric and min(position.values()) > 0 and max(position.values()) / min(position.values()) >= 20
    # Series side by side around each value, in the axis' own scale (decades on a log axis): equal
    # values (every mode at 100 % accuracy) would otherwise draw one marker exactly on another.
    scaled = np.log10(list(position.values())) if log_x else list(position.values())
    offsets = dict(zip(series, side_by_side(scaled, len(series), share=0.6)))
    whole = numeric and not log_x and all(isinstance(v, int) for v in raw)
    for panel, (key, label, _) in zip(panels.flat, METRICS):
        for m, medium in enumerate(media):
            for k, mode in enumerate(modes):
                points = sorted(((position[value], members) for (med, md, value), members in groups
                                 if med == medium and md == mode), key=lambda p: p[0])
                if not points:
                    continue
                xs = np.array([p[0] for p in points])
                xs = xs * 10 ** offsets[medium, mode] if log_x else xs + offsets[medium, mode]
                stats = [_stats([member[key] for member in p[1]]) for p in points]
                panel.errorbar(xs, [s[0] for s in stats], yerr=[s[1] for s in stats],
                               marker=MARKERS[k % len(MARKERS)], linestyle=LINESTYLES[k % len(LINESTYLES)],
                               color=colours[m % len(colours)], capsize=3, label=f"{medium}, {mode}")
        panel.set_ylabel(label)
        panel.set_xlabel(axis_label(axis))
        panel.grid(alpha=0.3)
        if key == "training_energy_total_J" and all(r[key] > 0 for r in rows):
            panel.set_yscale("log")
        if log_x:
            panel.set_xscale("log")
        if whole:
            panel.xaxis.set_major_locator(MaxNLocator(integer=True))
        if not numeric:
            panel.set_xticks(range(len(order)), [value_text(v) for v in order])
    # Below the panels: inside one, it would sit on whichever values happen to fill its corners.
    handles, labels = panels.flat[0].get_legend_handles_labels()
    # Filled column by column: one column per medium, its trainer variants under each other.
    legend_below(figure, handles, labels, ncols=min(len(labels), 4) if len(media) == 1 else min(len(media), 4))
    name, _ = axis_name(axis)
    figure.suptitle(f"Sweep against {name}" + ("" if name == axis else f" ({axis})")
                    + ": mean ± std over seeds and other swept values")
    return table, figure
