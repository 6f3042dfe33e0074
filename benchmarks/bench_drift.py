"""Drift regularization and programming search: what they cost.

1. One training epoch of the MNIST 784-256-10 MLP (8000 t10k images, batch 64, Adam) with the
   Monte-Carlo drift penalty (K = 8 drift draws per mini-batch, 16 examples, 32 output columns per
   layer, pathwise gradient) against plain training; also the analytic penalty. Target: ≤ 3×.
   ``repeats`` rounds with the configurations interleaved (other processes share the machine),
   medians reported, 1 BLAS thread (threadpoolctl; a 2-thread OpenBLAS stalls on a shared 2-core box).
2. The differential-evolution search of the four-device strategy (20 parameters, popsize 10, 1024
   test weights, 6 times) for ``generations`` generations: wall time with the objective vectorised
   over the population (one call per generation) against candidate by candidate.

The load average (os.getloadavg) is recorded before and after. Writes ``benchmarks/results/drift.json``.

    python benchmarks/bench_drift.py [--repeats 3] [--generations 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from pathlib import Path

import numpy as np

from circuitnn import __version__
from circuitnn.data.mnist import load_dataset
from circuitnn.networks import NetworkConfig, NetworkTrainingConfig, build_network
from circuitnn.networks import programming as wp
from circuitnn.networks.drift import DriftRegularizerConfig, train_drift_regularized
from results_file import write_result

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared/data/mnist"
TARGET_RATIO = 3.0
CONFIGS = {
    "plain": DriftRegularizerConfig(form="none"),
    "montecarlo_K8": DriftRegularizerConfig(form="montecarlo", draws=8),
    "analytic": DriftRegularizerConfig(form="analytic"),
}


def epoch_seconds(X, y, regularizer) -> float:
    network = build_network(NetworkConfig.mlp(), X.shape[1:], np.random.default_rng(0))
    history = train_drift_regularized(network, X, y, NetworkTrainingConfig(epochs=1, noise_sampling="pool"),
                                      regularizer)
    return float(history.time_s[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--generations", type=int, default=5)
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    load_before = os.getloadavg()
    mnist = str(MNIST_DIR) if MNIST_DIR.is_dir() else None
    X, y, _, _, name = load_dataset(mnist, 0, max_examples=10_000)
    times = {k: [] for k in CONFIGS}
    with threadpool_limits(1):
        for _ in range(args.repeats):
            for key, regularizer in CONFIGS.items():
                times[key].append(epoch_seconds(X, y, regularizer))
        medians = {k: statistics.median(v) for k, v in times.items()}

        rng = np.random.default_rng(0)
        weights = rng.normal(0, 1 / 3, 1024)
        weights /= np.abs(weights).max()
        search = wp.ProgrammingSearchConfig(maxiter=args.generations, popsize=10, n_weights=1024, polish=False)
        de = {}
        for vectorized in (True, False):
            result = wp.optimize_strategy(weights, search, vectorized=vectorized)
            de["vectorized" if vectorized else "one_by_one"] = {
                "wall_time_s": result.wall_time_s, "generations": result.generations,
                "candidates": result.evaluations, "objective": result.objective}
    ratio = medians["montecarlo_K8"] / medians["plain"]
    out = {
        "benchmark": "drift", "circuitnn": __version__, "python": platform.python_version(),
        "numpy": np.__version__, "data": name, "examples": int(len(X)), "blas_threads": 1,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "epoch_seconds": times, "epoch_seconds_median": medians,
        "ratio_montecarlo_K8_to_plain": ratio, "ratio_analytic_to_plain": medians["analytic"] / medians["plain"],
        "target_ratio": TARGET_RATIO, "within_target": bool(ratio <= TARGET_RATIO),
        "differential_evolution": de,
        "de_speedup_vectorized": de["one_by_one"]["wall_time_s"] / de["vectorized"]["wall_time_s"],
    }
    write_result("drift", out)


if __name__ == "__main__":
    main()
