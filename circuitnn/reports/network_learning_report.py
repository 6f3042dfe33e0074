"""The on-chip learning report (``learn-networks`` runs): DGC, BP, hybrids, SPSA and parallel perturbation
on the surrogate networks against circuit variation, with chip-evaluation counts and wall time, and
the acceptance criteria checked against the stored numbers. From stored parts only; an unfinished run
is reported for the parts it finished."""

from __future__ import annotations

import numpy as np

from ..store import Run
from .document import (Report, ReportError, how_to_continue, incomplete_run, legend_below, legend_entries,
                       provenance, pyplot, unfinished, side_by_side, without_float_noise)

COLOURS = {"bp": "tab:red", "dgc": "tab:blue", "hybrid-bp-dgc": "tab:purple", "hybrid-dgc-bp": "tab:cyan",
           "parallel": "tab:green", "spsa": "tab:orange", "dgc-one-sided": "tab:gray",
           "hybrid-conv-dgc": "tab:purple", "hybrid-conv-bp": "tab:olive"}
MARKERS = {"bp": "s", "dgc": "o", "hybrid-bp-dgc": "D", "hybrid-dgc-bp": "v", "parallel": "^", "spsa": "P",
           "dgc-one-sided": "X", "hybrid-conv-dgc": "D", "hybrid-conv-bp": "v"}
TOLERANCE_POINTS = 1.5


def _pct(value) -> float:
    return without_float_noise(100.0 * float(value), 4)


def _points(difference: float) -> float:
    """An accuracy difference in percentage points, without float noise (−1.5000000000000002 → −1.5)."""
    return without_float_noise(100.0 * float(difference), 6)


def _all_parts(run: Run) -> list[dict]:
    return [run.read_json(rel) for rel in sorted(run.files) if rel.startswith("parts/") and rel.endswith(".json")]


def _mean_rows(parts: list[dict]) -> dict:
    """(network, method, axis, level) → mean/std accuracy over chips, mean evaluations and time."""
    groups: dict = {}
    for p in parts:
        groups.setdefault((p["network"], p["method"], p["axis"], p["level"]), []).append(p)
    out = {}
    for key, group in groups.items():
        accuracies = np.array([g["accuracy"] for g in group])
        last3 = np.array([np.mean(g["history"]["test_accuracy"][-3:]) for g in group])
        out[key] = {"accuracy": float(accuracies.mean()), "std": float(accuracies.std()), "chips": len(group),
                    "last3": float(last3.mean()),
                    "evaluations": float(np.mean([g["evaluations"] for g in group])),
                    "forward": float(np.mean([g["forward_evaluations"] for g in group])),
                    "backward": float(np.mean([g["backward_evaluations"] for g in group])),
                    "time_s": float(np.mean([g["time_s"] for g in group])), "methods": group[0]["methods"],
                    "history": group[0]["history"]}
    return out


def acceptance_rows(means: dict) -> list[dict]:
    """The issue's acceptance criteria, each with the measured numbers and whether it is met."""
    rows = []

    def get(network, method, axis="conductance", level=0.0):
        return means.get((network, method, axis, level))

    bp, dgc = get("mlp", "bp"), get("mlp", "dgc")
    if bp and dgc:
        gap = _points(dgc["accuracy"] - bp["accuracy"])
        rows.append({"criterion": "MLP without variation: DGC within 1.5 points of BP",
                     "measured": f"DGC {_pct(dgc['accuracy'])} %, BP {_pct(bp['accuracy'])} % ({gap:+.1f} points; "
                                 f"means of the last 3 epochs {100 * dgc['last3']:.2f} % and {100 * bp['last3']:.2f} %)",
                     "met": abs(gap) <= TOLERANCE_POINTS})
    for (network, method, axis, level), row in sorted(means.items(), key=lambda kv: kv[0][3]):
        if network == "mlp" and method == "dgc" and axis == "conductance" and level >= 0.1:
            other = get("mlp", "bp", axis, level)
            if other:
                rows.append({"criterion": f"MLP, conductance variation {100 * level:g} %: DGC ≥ BP",
                             "measured": f"DGC {_pct(row['accuracy'])} %, BP {_pct(other['accuracy'])} % "
                                         f"({100 * (row['accuracy'] - other['accuracy']):+.1f} points)",
                             "met": row["accuracy"] >= other["accuracy"]})
    for network, pure, hybrids in (("mlp", "dgc", ("hybrid-bp-dgc", "hybrid-dgc-bp")),
                                   ("cnn", "dgc", ("hybrid-conv-dgc", "hybrid-conv-bp"))):
        d, b = get(network, pure), get(network, "bp")
        for hybrid in hybrids:
            h = get(network, hybrid)
            if not (h and d and b):
                continue
            gaps = (_points(h["accuracy"] - d["accuracy"]), _points(h["accuracy"] - b["accuracy"]))
            rows.append({"criterion": f"{network.upper()} {hybrid}: within 1.5 points of DGC and BP, fewer chip "
                                      "evaluations than DGC",
                         "measured": f"{_pct(h['accuracy'])} % ({gaps[0]:+.1f} vs DGC, {gaps[1]:+.1f} vs BP); "
                                     f"{h['evaluations']:.3g} vs DGC's {d['evaluations']:.3g} evaluations",
                         "met": max(abs(g) for g in gaps) <= TOLERANCE_POINTS and h["evaluations"] < d["evaluations"]})
    p = get("mlp", "parallel")
    if p and dgc:
        ratio = p["evaluations"] / dgc["evaluations"]
        gap = _points(p["accuracy"] - dgc["accuracy"])
        rows.append({"criterion": "MLP: parallel perturbation reaches sequential DGC's accuracy (−0.5 points "
                                  "allowed: one test image) with ≤ 1/10 of its evaluations",
                     "measured": f"{_pct(p['accuracy'])} % vs {_pct(dgc['accuracy'])} % ({gap:+.1f} points); "
                                 f"evaluation ratio {ratio:.2g}",
                     "met": gap >= -0.5 and ratio <= 0.1})
    return rows


def build_report(run: Run) -> Report:
    plan = run.read_json("plan.json")
    every_part = _all_parts(run)
    parts = [p for p in every_part if p["method"] != "alignment"]
    if not parts:
        raise ReportError(f"run {run.id} ({run.status}) has no finished training yet, so there is nothing to "
                          f"report; {how_to_continue(run)}")
    dataset = run.info.labels.get("dataset", "?")
    means = _mean_rows(parts)
    report = Report(run.id, f"On-chip learning of networks: DGC, BP and hybrids against circuit variation: {run.id}",
                    header=provenance(run))
    first = parts[0]
    report.header.append(
        f"Dataset {dataset} ({first['n_train']} training, {first['n_test']} test images); MLP {first.get('n_inputs', '?')}-{plan['hidden']}-10 "
        f"for {plan['epochs']} epochs; CNN conv {plan['cnn_channels'][0]}@5×5 → pool → conv "
        f"{plan['cnn_channels'][1]}@5×5 → pool → dense 10 for {plan['cnn_epochs']} epochs; mini-batch "
        f"{plan['batch_size']}, SGD learning rate {plan['learning_rate']:g} (SPSA {plan['spsa_learning_rate']:g} with "
        f"{plan['spsa_draws']} draws per step), momentum {plan['momentum']:g}, cost ½Σ(y − t)², perturbation "
        f"δ = {plan['perturbation']:g} of each layer's weight range; {plan['chips']} chip instance(s) per "
        f"variation level; BP's transposed product reads {plan['backward_weights'].replace('_', ' ')}.")
    if unfinished(run):
        report.header.append(incomplete_run(run, "the trainings stored so far"))
    clean = [(k, v) for k, v in means.items() if k[3] == 0.0 and k[2] == "conductance"]
    dgc_evals = {net: means.get((net, "dgc", "conductance", 0.0), {}).get("evaluations") for net in ("mlp", "cnn")}
    report.tables["methods_without_variation"] = [{
        "network": k[0], "method": k[1], "per-layer methods": ", ".join(v["methods"]),
        "test accuracy (%)": _pct(v["accuracy"]), "mean of the last 3 epochs (%)": _pct(v["last3"]),
        "forward chip evaluations": int(v["forward"]), "backward evaluations (BP)": int(v["backward"]),
        "evaluations / DGC's": (v["evaluations"] / dgc_evals[k[0]]) if dgc_evals.get(k[0]) else float("nan"),
        "training wall time (s)": round(v["time_s"], 1),
    } for k, v in sorted(clean, key=lambda kv: (kv[0][0] != "mlp", kv[1]["evaluations"]))]
    report.captions["methods_without_variation"] = (
        "Every method on a chip without variation: final test accuracy (one test image is "
        f"{100 / first['n_test']:.2g} points; the mean over the last 3 epochs shows how much one epoch moves it), "
        "chip evaluations over the whole training (one per input run forward "
        "through the chip for a cost measurement; BP also runs one error vector backward per input), and training "
        "wall time on this machine.")
    swept = sorted((k, v) for k, v in means.items() if k[0] == "mlp" and k[1] in plan["sweep_methods"])
    report.tables["variation"] = [{
        "variation": k[2], "σ (%)": 100 * k[3], "method": k[1], "chips": v["chips"],
        "test accuracy (%)": _pct(v["accuracy"]), "mean of the last 3 epochs (%)": _pct(v["last3"]),
        "std over chips (points)": _pct(v["std"]),
        "chip evaluations": int(v["evaluations"]), "training wall time (s)": round(v["time_s"], 1),
    } for k, v in swept]
    report.captions["variation"] = (
        "MLP accuracy against variation: synaptic conductance variation (device gains, neurons exact) and "
        "neuron-circuit variation (forward neurons a·f(b·s + c) and BP's derivative and error circuits, gains and "
        "offsets at the same σ, drawn separately; devices exact). Mean over chip instances.")
    alignment = sorted((p for p in every_part if p["method"] == "alignment"),
                       key=lambda p: (p["axis"], p["level"], p["chip"]))
    if alignment:
        report.tables["gradient_alignment"] = [{
            "variation": p["axis"], "σ (%)": 100 * p["level"], "chip": p["chip"],
            **{f"cosine, layer {k + 1}": c for k, c in enumerate(p["cosine_per_layer"])},
            "cosine, all weights": p["cosine_all"], "|BP| / |true|": p["norm_ratio"],
        } for p in alignment]
        report.captions["gradient_alignment"] = (
            "Why BP loses (or does not): cosine similarity between BP's gradient and the chip's true gradient "
            "(central DGC, which measures the chip's own cost, with respect to the nominal weights the controller "
            "updates: device gains included) at the initial weights, on "
            f"{alignment[0]['samples']} training images, and the ratio of their norms. A cosine near 1 means BP "
            "still descends the chip's cost; static device gains only perturb the backward array's weights, "
            "like feedback alignment, while the derivative circuits' offsets and gains gate and scale the "
            "hidden errors wrongly.")
    report.tables["acceptance"] = acceptance_rows(means)
    report.captions["acceptance"] = "The acceptance criteria, computed from the stored results."
    report.figures["variation.png"] = variation_figure(swept, plan, dataset)
    report.captions["variation.png"] = ("MLP test accuracy against conductance variation and against neuron-circuit "
                                        "variation, per method (mean ± std over chips).")
    report.figures["evaluations.png"] = evaluations_figure(clean, dataset)
    report.captions["evaluations.png"] = ("Test accuracy after each epoch against the chip evaluations spent so far "
                                          "(log scale), without variation, per method: MLP and CNN; methods drawn a little to the side of "
                                          "their own counts, so that equal points stay visible.")
    for (network, method, axis, level), d in sorted(means.items()):
        b = means.get((network, "bp", axis, level))
        if method != "dgc" or b is None or _points(d["accuracy"] - b["accuracy"]) >= -TOLERANCE_POINTS:
            continue
        cost_d, cost_b = d["history"]["cost"][-1], b["history"]["cost"][-1]
        report.notes.append(
            f"{network.upper()}, {axis} variation σ = {100 * level:g} %: DGC {_pct(d['accuracy'])} % against BP's "
            f"{_pct(b['accuracy'])} %, with a {'lower' if cost_d < cost_b else 'higher'} training cost in the last "
            f"epoch ({cost_d:.4f} against {cost_b:.4f}). "
            + ("DGC descends the chip's own squared-error cost further, but that cost is not the accuracy: "
               "mismatched output neurons (gains a·b and offsets a·c) weight the outputs' terms unequally and "
               "scale each output's effective learning rate by (a·b)², whereas BP's nominal derivative circuits "
               "step every output alike." if cost_d < cost_b else
               "DGC has not descended the chip's cost as far as BP in these epochs."))
    for (network, method, axis, level), d in sorted(means.items()):
        b = means.get((network, "bp", axis, level))
        if not (network == "mlp" and method == "dgc" and axis == "conductance" and level >= 0.1 and b):
            continue
        if d["accuracy"] >= b["accuracy"]:
            continue
        cosines = [a["cosine_all"] for a in alignment if a["axis"] == axis and a["level"] == level]
        images = round((b["accuracy"] - d["accuracy"]) * first["n_test"])
        report.notes.append(
            f"Why DGC < BP at conductance variation {100 * level:g} %: {images} test image(s) apart"
            + (f"; BP's gradient there has cosine {np.mean(cosines):.4f} with the chip's own gradient, "
               "so BP still descends the chip's cost: static device gains enter BP only through its backward "
               "array (like feedback alignment), and both methods see the same forward chip"
               if cosines else "") + ".")
    unmet = [r["criterion"] for r in report.tables["acceptance"] if not r["met"]]
    report.notes += [
        "DGC measures the cost through the chip's own forward path, so device gains and neuron mismatch are part "
        "of the gradient it follows; BP's gradient comes from separate derivative and error circuits designed for "
        "the nominal neuron, so their mismatch and the forward neurons' mismatch bias it.",
        "Parallel perturbation = all output neurons perturbed at once with each output's cost term read "
        "separately (separable cost), hidden neurons one at a time (node perturbation); it needs per-sample cost "
        "readings and the layer inputs, and its gradient is with respect to the effective weights.",
        "Not met: " + "; ".join(unmet) + "." if unmet else "Every acceptance criterion is met on this run.",
    ]
    report.summary = {"dataset": dataset, "parts": len(parts),
                      "acceptance_met": sum(bool(r["met"]) for r in report.tables["acceptance"]),
                      "acceptance_total": len(report.tables["acceptance"])}
    return report


def variation_figure(swept: list, plan: dict, dataset: str):
    plt = pyplot()
    methods = plan["sweep_methods"]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4.4), sharey=True)
    for ax, axis, title in ((axes[0], "conductance", "synaptic conductance variation (neurons exact)"),
                            (axes[1], "neuron", "neuron-circuit variation (devices exact)")):
        series = {}
        for method in methods:
            points = sorted((k[3], v) for k, v in swept if k[1] == method and k[2] == axis)
            if axis == "neuron":  # σ = 0 of the neuron axis is the clean chip of the conductance axis
                zero = [(k[3], v) for k, v in swept if k[1] == method and k[2] == "conductance" and k[3] == 0.0]
                points = zero + points
            if points:
                series[method] = points
        # Methods often reach the same accuracy (all of them on a small clean chip): points are
        # offset sideways for visibility, each method with its own marker, so that none hides another.
        offsets = side_by_side([100 * p[0] for points in series.values() for p in points], len(methods))
        for offset, method in zip(offsets, methods):
            if method not in series:
                continue
            points = series[method]
            ax.errorbar([100 * p[0] + offset for p in points], [100 * p[1]["accuracy"] for p in points],
                        yerr=[100 * p[1]["std"] for p in points], marker=MARKERS.get(method, "o"), capsize=3,
                        label=method, color=COLOURS.get(method))
        ax.set(xlabel="σ of the variation (%; methods drawn side by side at each σ)", title=title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"test accuracy (%), {dataset}")
    # Below the panels: inside either one the legend would lie on points at some σ.
    handles, labels = legend_entries(axes)
    legend_below(figure, handles, labels, ncols=len(labels))
    return figure


def evaluations_figure(clean: list, dataset: str):
    plt = pyplot()
    networks = [n for n in ("mlp", "cnn") if any(k[0] == n for k, _ in clean)]
    figure, axes = plt.subplots(1, len(networks), figsize=(5.2 * len(networks), 4.4), squeeze=False)
    for ax, network in zip(axes[0], networks):
        curves = {method: (np.add(v["history"]["forward_evaluations"], v["history"]["backward_evaluations"]),
                           100 * np.asarray(v["history"]["test_accuracy"]))
                  for (net, method, _, _), v in sorted(clean) if net == network}
        # A hybrid dominated by one method's evaluations lies on that method's points, and methods
        # often reach the same accuracy: each is drawn a little to the side (a factor on the log
        # axis), with its own marker. The methods' evaluations share no grid, so the step is a
        # fraction of the whole span rather than of the gaps between them.
        spent = np.log10([e for evaluations, _ in curves.values() for e in evaluations if e > 0])
        offsets = side_by_side([spent.min(), spent.max()] if len(spent) else [0.0, 1.0], len(curves))
        for offset, (method, (evaluations, accuracy)) in zip(offsets, curves.items()):
            ax.plot(evaluations * 10.0 ** offset, accuracy, "--" if method.startswith("hybrid") else "-",
                    marker=MARKERS.get(method, "o"), ms=5 if method == "dgc" else 4, lw=2.5 if method == "dgc" else 1.5,
                    label=method, color=COLOURS.get(method), zorder=1 if method == "dgc" else 2)
        ax.set_xscale("log")
        ax.set(xlabel="chip evaluations so far (forward + backward)",
               ylabel="test accuracy (%)", title=f"{network.upper()} without variation, {dataset}")
        ax.grid(alpha=0.3, which="both")
    # Below the panels: the curves climb from corner to corner, so no corner inside is reliably empty.
    handles, labels = legend_entries(axes[0])
    legend_below(figure, handles, labels, ncols=min(len(labels), 6))
    return figure
