"""Chip evaluations per on-chip learning method for the MNIST MLP, at equal accuracy.

Every method of ``experiments/network_learning.py`` (BP, DGC central and one-sided, both hybrids,
parallel perturbation, SPSA) trains the same MLP (784-32-10, same initial weights, a chip without
variation) on the MNIST subset the tests ship (800 training and 200 test images), epoch by epoch,
until its test accuracy first reaches the target (default 80 %) or the epoch limit. Recorded per
method: the chip evaluations spent until then (inputs run forward for cost measurements, and for BP
error vectors run backward), their ratio to sequential DGC's, the epochs and the training wall time.
The load average is recorded with the result (the machine is shared). Writes
``benchmarks/results/learning_evaluations.json``.

    python benchmarks/bench_learning_evaluations.py [--target 0.8] [--max-epochs 10]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from pathlib import Path

import numpy as np

from circuitnn import __version__
from circuitnn.data.mnist import load_dataset
from circuitnn.experiments.network_learning import MLP_METHODS, default_plan
from circuitnn.networks.chip_network import ChipNetwork
from circuitnn.networks.onchip_learning import OnChipLearningConfig, learn
from circuitnn.networks.train import NetworkConfig, build_network
from results_file import write_result

ROOT = Path(__file__).resolve().parents[1]


def until_target(label: str, data, plan: dict, target: float, max_epochs: int) -> dict:
    X_train, y_train, X_test, y_test = data
    methods, difference = MLP_METHODS[label]
    network = build_network(NetworkConfig.mlp(hidden=(plan["hidden"],)), X_train.shape[1:],
                            np.random.default_rng(plan["seed"]))
    chip = ChipNetwork(network)
    spsa = "spsa" in methods
    config = OnChipLearningConfig(
        methods=methods, difference=difference, perturbation=plan["perturbation"],
        learning_rate=plan["spsa_learning_rate"] if spsa else plan["learning_rate"], momentum=plan["momentum"],
        epochs=1, batch_size=plan["batch_size"], spsa_draws=plan["spsa_draws"], seed=plan["seed"])
    elapsed, accuracy, epochs = 0.0, 0.0, 0
    for epoch in range(max_epochs):
        # One epoch at a time with its own batch order seed, so the run stops at the target.
        history = learn(chip, X_train, y_train, dataclasses.replace(config, seed=plan["seed"] + epoch),
                        X_test, y_test)
        elapsed += float(history.time_s[-1])
        accuracy, epochs = float(history.test_accuracy[-1]), epoch + 1
        if accuracy >= target:
            break
    return {"methods": list(methods), "difference": difference, "reached": accuracy >= target,
            "accuracy": accuracy, "epochs": epochs, "forward_evaluations": chip.counter.forward,
            "backward_evaluations": chip.counter.backward, "evaluations": chip.counter.total,
            "training_wall_s": round(elapsed, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=0.8, help="test accuracy to reach (default 0.8)")
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--mnist", default=str(ROOT / "tests" / "data" / "mnist"))
    args = parser.parse_args()
    plan = default_plan(mnist_dir=args.mnist)
    X_train, y_train, X_test, y_test, name = load_dataset(plan["mnist_dir"], plan["seed"])
    load_before = os.getloadavg()
    start = time.perf_counter()
    results = {}
    for label in ("bp", "parallel", "spsa", "hybrid-bp-dgc", "dgc-one-sided", "hybrid-dgc-bp", "dgc"):
        results[label] = until_target(label, (X_train, y_train, X_test, y_test), plan, args.target, args.max_epochs)
        print(label, results[label], flush=True)
    dgc = results["dgc"]["evaluations"]
    for row in results.values():
        row["evaluations_over_dgc"] = row["evaluations"] / dgc
    out = {
        "benchmark": "chip evaluations per on-chip learning method, MNIST MLP, equal accuracy",
        "dataset": f"{name} ({len(X_train)} training, {len(X_test)} test images)",
        "network": f"MLP 784-{plan['hidden']}-10, chip without variation, mini-batch {plan['batch_size']}",
        "target_test_accuracy": args.target, "max_epochs": args.max_epochs, "methods": results,
        "parallel_over_dgc": results["parallel"]["evaluations_over_dgc"],
        "wall_s": round(time.perf_counter() - start, 1),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__},
        "circuitnn": __version__,
    }
    write_result("learning_evaluations", out)


if __name__ == "__main__":
    main()
