"""On-chip learning of the surrogate networks against circuit variation: DGC, BP, hybrids, SPSA, parallel.

One stored, resumable run (kind ``learn-networks``). Every training is one part
(``parts/<network>-<method>-<axis><level>-chip<i>.json``) written when it finishes, so an interrupted
run resumes at the next part:

* **MLP sweep**: for every synaptic conductance-variation level (neurons exact) and every
  neuron-circuit variation level (devices exact; forward and BP circuits at the same σ for gains and
  offsets, drawn separately), ``chips`` chip instances, each method of ``sweep_methods`` trained from
  the same initial weights on the same chip.
* **MLP extras without variation**: one-sided DGC, SPSA and the second hybrid.
* **CNN without variation**: BP, DGC and both hybrids (convolutions by DGC and the dense layer by BP,
  and the reverse).

Defaults are sized for a loaded 2-core machine (documented in the README): MLP 784-32-10 and a CNN
conv 4@5×5 → pool → conv 8@5×5 → pool → dense 10, on the MNIST subset the tests ship (1000 images,
800 to train, 200 to test) unless a folder of full MNIST files is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict

import numpy as np

from ..data.mnist import load_dataset
from ..errors import ConfigError
from ..networks.chip_network import ChipNetwork
from ..networks.circuit_variation import CircuitVariation
from ..networks.backprop_circuits import bp_gradients
from ..networks.onchip_learning import OnChipLearningConfig, learn
from ..networks.perturbation import dgc_gradient
from ..networks.train import NetworkConfig, build_network
from ..store import Run, RunStore
from ..validation import check_int, is_real

# method label → (per-layer methods of the MLP (hidden, output), difference)
MLP_METHODS = {
    "bp": (("bp",), "central"),
    "dgc": (("dgc",), "central"),
    "dgc-one-sided": (("dgc",), "one_sided"),
    "spsa": (("spsa",), "central"),
    "parallel": (("parallel",), "central"),
    "hybrid-bp-dgc": (("bp", "dgc"), "central"),      # hidden layer by BP, output layer by DGC
    "hybrid-dgc-bp": (("dgc", "bp"), "central"),      # hidden layer by DGC, output layer by BP
}
# CNN (conv, conv, dense)
CNN_METHODS = {
    "bp": ("bp",),
    "dgc": ("dgc",),
    "hybrid-conv-dgc": ("dgc", "dgc", "bp"),          # convolutions by DGC, dense by BP
    "hybrid-conv-bp": ("bp", "bp", "dgc"),            # the reverse
}
SWEEP_METHODS = ("bp", "dgc", "hybrid-bp-dgc", "parallel")
EXTRA_METHODS = ("dgc-one-sided", "spsa", "hybrid-dgc-bp")
CONDUCTANCE_LEVELS = (0.0, 0.05, 0.1, 0.2, 0.3)
NEURON_LEVELS = (0.05, 0.1, 0.2)


def default_plan(**changes) -> dict:
    plan = {
        "mnist_dir": None, "seed": 0, "max_examples": None, "hidden": 32, "epochs": 10, "cnn_epochs": 3,
        "cnn_channels": [4, 8], "batch_size": 32, "learning_rate": 0.03, "momentum": 0.9,
        "spsa_learning_rate": 3e-3, "spsa_draws": 32, "perturbation": 1e-3, "chips": 1,
        "conductance_levels": list(CONDUCTANCE_LEVELS), "neuron_levels": list(NEURON_LEVELS),
        "sweep_methods": list(SWEEP_METHODS), "extra_methods": list(EXTRA_METHODS),
        "cnn_methods": list(CNN_METHODS), "backward_weights": "separate_array", "alignment_samples": 256,
    }
    unknown = sorted(set(changes) - set(plan))
    if unknown:
        raise ConfigError(f"learn_networks.{unknown[0]}", changes[unknown[0]], "a field of " + ", ".join(plan))
    plan.update(changes)
    for name in ("sweep_methods", "extra_methods"):
        for label in plan[name]:
            if label not in MLP_METHODS:
                raise ConfigError(f"learn_networks.{name}", label, "one of " + ", ".join(MLP_METHODS))
    for label in plan["cnn_methods"]:
        if label not in CNN_METHODS:
            raise ConfigError("learn_networks.cnn_methods", label, "one of " + ", ".join(CNN_METHODS))
    for name in ("conductance_levels", "neuron_levels"):
        if not isinstance(plan[name], (list, tuple)):
            raise ConfigError(f"learn_networks.{name}", plan[name], "a list of numbers")
        plan[name] = [float(v) if is_real(v) else v for v in plan[name]]
    if not isinstance(plan["chips"], int) or not 1 <= plan["chips"] <= 100:
        raise ConfigError("learn_networks.chips", plan["chips"], "an integer in [1, 100]")
    _build_once(plan)
    return plan


def _build_once(plan: dict) -> None:
    """Every object the parts of ``plan`` build, built once (no data needed): a bad value fails here,
    naming its field, before the run is made, not in the middle of a study that leaves a failed run."""
    check_int("learn_networks.seed", plan["seed"], 0, 2**32 - 1)
    check_int("learn_networks.alignment_samples", plan["alignment_samples"], 1, 1_000_000)
    image_shape = (8, 8)  # the settings' checks do not depend on it
    architecture("mlp", plan, image_shape)
    if plan["cnn_methods"]:
        if not isinstance(plan["cnn_channels"], (list, tuple)):
            raise ConfigError("learn_networks.cnn_channels", plan["cnn_channels"], "a list of channel counts")
        architecture("cnn", plan, image_shape)
    for axis in ("conductance", "neuron"):
        for level in plan[f"{axis}_levels"]:
            variation_of({"axis": axis, "level": level}, plan)
    for network, labels in (("mlp", (*plan["sweep_methods"], *plan["extra_methods"])), ("cnn", plan["cnn_methods"])):
        for label in labels:
            learning_config(network, label, plan)


def learning_config(network: str, method: str, plan: dict) -> OnChipLearningConfig:
    """The on-chip learning settings of one training of ``plan``: the per-layer methods and the
    difference of the method label of ``network`` ('mlp' or 'cnn'), that network's epochs, and the
    plan's step sizes (SPSA's own learning rate where a layer uses SPSA), batch size and seed."""
    if network == "mlp":
        (methods, difference), epochs = MLP_METHODS[method], plan["epochs"]
    else:
        methods, difference, epochs = CNN_METHODS[method], "central", plan["cnn_epochs"]
    return OnChipLearningConfig(methods=methods, difference=difference, perturbation=plan["perturbation"],
                                learning_rate=plan["spsa_learning_rate"] if "spsa" in methods else plan["learning_rate"],
                                momentum=plan["momentum"], epochs=epochs, batch_size=plan["batch_size"],
                                spsa_draws=plan["spsa_draws"], seed=plan["seed"])


def planned_parts(plan: dict) -> list[dict]:
    """Every training of the run, in order: network, method label, variation axis and level, chip."""
    parts = []
    for axis, levels in (("conductance", plan["conductance_levels"]), ("neuron", plan["neuron_levels"])):
        for level in levels:
            for chip in range(plan["chips"]):
                parts += [{"network": "mlp", "method": m, "axis": axis, "level": level, "chip": chip}
                          for m in plan["sweep_methods"]]
    parts += [{"network": "mlp", "method": m, "axis": "conductance", "level": 0.0, "chip": 0}
              for m in plan["extra_methods"]]
    parts += [{"network": "cnn", "method": m, "axis": "conductance", "level": 0.0, "chip": 0}
              for m in plan["cnn_methods"]]
    # How far BP's gradient is from the chip's own (measured by DGC) at every variation level.
    for axis, levels in (("conductance", plan["conductance_levels"]), ("neuron", plan["neuron_levels"])):
        parts += [{"network": "mlp", "method": "alignment", "axis": axis, "level": level, "chip": chip}
                  for level in levels for chip in range(plan["chips"])]
    return parts


def part_name(part: dict) -> str:
    return f"parts/{part['network']}-{part['method']}-{part['axis']}{part['level']:g}-chip{part['chip']}.json"


def variation_of(part: dict, plan: dict) -> CircuitVariation:
    common = {"backward_weights": plan["backward_weights"]}
    if part["axis"] == "conductance":
        return CircuitVariation(conductance_sigma=part["level"], **common)
    return CircuitVariation.neurons(part["level"], **common)


def architecture(network: str, plan: dict, image_shape: tuple[int, ...]) -> NetworkConfig:
    """The plan's MLP or CNN ('mlp' or 'cnn') for images of ``image_shape``."""
    if network == "mlp":
        return NetworkConfig.mlp(hidden=(plan["hidden"],))
    return NetworkConfig.default("cnn", image_shape, conv_channels=tuple(plan["cnn_channels"]))


def gradient_alignment(part: dict, plan: dict, data) -> dict:
    """Cosine similarity of BP's gradient with the chip's true gradient (central DGC, which measures the
    chip's own cost) at the initial weights of the part's chip, on the first ``alignment_samples``
    training images: per layer and over all weights. 1 = BP follows the chip's gradient exactly."""
    X_train, y_train = data[0][:plan["alignment_samples"]], data[1][:plan["alignment_samples"]]
    network = build_network(architecture("mlp", plan, X_train.shape[1:]), X_train.shape[1:],
                            np.random.default_rng(plan["seed"]))
    chip = ChipNetwork(network, variation_of(part, plan), np.random.default_rng([plan["seed"], 1000 + part["chip"]]))
    trace = chip.forward(X_train, y_train)
    bp = bp_gradients(chip, trace)
    true = [dgc_gradient(chip, trace, k, plan["perturbation"] * chip.weight_range[k]) for k in range(len(chip.layers))]

    def cosine(a, b) -> float:
        a, b = np.concatenate([x.ravel() for x in a]), np.concatenate([x.ravel() for x in b])
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

    return {**part, "samples": int(len(X_train)),
            "cosine_per_layer": [cosine(bp[k], true[k]) for k in range(len(true))],
            "cosine_all": cosine([g for k in sorted(bp) for g in bp[k]], [g for t in true for g in t]),
            "norm_ratio": float(np.linalg.norm(np.concatenate([g.ravel() for k in sorted(bp) for g in bp[k]]))
                                / np.linalg.norm(np.concatenate([g.ravel() for t in true for g in t])))}


def train_part(part: dict, plan: dict, data, progress: Callable[[str], None] | None = None) -> dict:
    """Train one part's network on its chip and return its stored row."""
    if part["method"] == "alignment":
        return gradient_alignment(part, plan, data)
    X_train, y_train, X_test, y_test = data
    seed = plan["seed"]
    # The same initial weights for every method; the chip instance depends on the chip index only.
    network = build_network(architecture(part["network"], plan, X_train.shape[1:]), X_train.shape[1:],
                            np.random.default_rng(seed))
    chip_rng = np.random.default_rng([seed, 1000 + part["chip"]])
    variation = variation_of(part, plan)
    chip = ChipNetwork(network, variation, chip_rng)
    config = learning_config(part["network"], part["method"], plan)
    difference, epochs = config.difference, config.epochs
    label = f"{part['network']} {part['method']}, {part['axis']} σ = {part['level']:g}, chip {part['chip']}"
    start = time.perf_counter()

    def report(epoch: int, row: dict) -> None:
        if progress is not None:
            progress(f"  {label}: epoch {epoch + 1}/{epochs}, cost {row['cost']:.4f}, test accuracy "
                     f"{row['test_accuracy']:.3f}, {row['forward_evaluations']:.3g} chip evaluations, "
                     f"{row['time_s']:.1f} s")

    history = learn(chip, X_train, y_train, config, X_test, y_test, on_epoch=report)
    return {**part, "methods": list(history.methods), "difference": difference,
            "variation": asdict(variation), "learning": config.as_dict(),
            "accuracy": float(history.test_accuracy[-1]), "cost": float(history.cost[-1]),
            "forward_evaluations": int(chip.counter.forward), "backward_evaluations": int(chip.counter.backward),
            "evaluations": int(chip.counter.total), "time_s": float(history.time_s[-1]),
            "wall_s": time.perf_counter() - start, "n_weights": network.n_weights(),
            "n_inputs": int(np.prod(X_train.shape[1:])), "n_train": int(len(X_train)), "n_test": int(len(X_test)), "history": history.as_dict()}


def run_learning_study(store: RunStore, plan: dict | None = None, progress: bool = True, resume: str | None = None,
                       write_report: Callable[[Run], dict] | None = None) -> Run:
    """Run (or, with ``resume``, continue) the study of ``plan`` (``default_plan(...)``)."""
    if resume:
        run = store.resume(resume)
        plan = default_plan(**run.read_json("plan.json"))
    else:
        plan = default_plan() if plan is None else default_plan(**plan)
    X_train, y_train, X_test, y_test, name = load_dataset(plan["mnist_dir"], plan["seed"],
                                                          max_examples=plan["max_examples"])
    if not resume:
        run = store.create("learn-networks", plan, seed=plan["seed"], labels={"dataset": name},
                           name=name, files={"plan.json": plan})
    say = (lambda text: print(text, flush=True)) if progress else None
    with run:
        rows = []
        for part in planned_parts(plan):
            if say is not None and part_name(part) not in run.files:
                say(f"{name}: {part['network']} {part['method']}, {part['axis']} variation σ = {part['level']:g}, "
                    f"chip {part['chip']} ...")
            rows.append(run.json_part(part_name(part), lambda: train_part(
                part, plan, (X_train, y_train, X_test, y_test), say)))
        run.write_csv("results.csv", [{k: v for k, v in r.items() if not isinstance(v, (dict, list))}
                                      for r in rows if r["method"] != "alignment"])
        run.complete(write_report(run) if write_report is not None else {"parts": len(rows)})
    return run
