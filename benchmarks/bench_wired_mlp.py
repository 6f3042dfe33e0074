"""Hardware-aware MLP training through wired 256×256 tiles, against training that ignores the wires.

MNIST 784-256-10 MLP on the M-SDC (Cr) tile model with its default device effects, tiles of 256×256
differential pairs with ``--r-line`` Ω per line segment and 10/10/100 Ω driver/sense/switch. Two
networks from the same initial weights and seed:

* ``ignoring_wires``: trained through the tiles as if their wires were ideal;
* ``through_wires``: trained through the tiles' linearised wires (``tile_circuit.WireGainMap``,
  computed once per tile shape before training, its time reported as set-up).

Both are then evaluated through the exact solved circuit of every programmed tile
(``networks.evaluate`` with the wired ``TileConfig``), and, for reference, through ideal tiles.
Timing, in one run: one epoch of each, and one epoch of plain float training (same data, batch 64,
1 BLAS thread); target: the wired-tile epoch ≤ 5× the float epoch. Also: how far the linearised
map is from the exact solve at the trained weights (relative to the largest effective weight).
Records os.getloadavg(). Writes ``benchmarks/results/wired_mlp.json``.

    python benchmarks/bench_wired_mlp.py [--mnist DIR] [--epochs 3] [--r-line 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from circuitnn import __version__
from circuitnn.data.mnist import load_dataset
from circuitnn.networks import NetworkConfig, NetworkTrainingConfig, build_network, evaluate, train
from circuitnn.networks.devices import tile_device, weights_to_conductance_pair
from circuitnn.networks.tile_circuit import effective_difference_S, wire_gain_map
from circuitnn.networks.tiles import TileConfig, tile_slices, wire_maps
from results_file import write_result

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared/data/mnist"
TARGET_RATIO = 5.0


def _map_error(weight: np.ndarray, tile: TileConfig, model, fraction: float) -> float:
    """Largest |linearised − exact| normalised effective weight over the matrix's tiles, relative to
    the largest exact one (ideal pair mapping, w_max per tile)."""
    worst, scale = 0.0, 0.0
    span = model.g_high_S - model.g_low_S
    for rows, cols in tile_slices(*weight.shape, tile):
        block = weight[rows, cols]
        w_max = float(np.max(np.abs(block))) or 1.0
        g_plus, g_minus, _ = weights_to_conductance_pair(model.g_low_S, model.g_high_S, block, w_max)
        exact = effective_difference_S(np.stack([g_plus, g_minus]), tile, model) / span
        linear = wire_gain_map(block.shape[0], block.shape[1], tile, model, fraction).apply(block / w_max)
        worst = max(worst, float(np.max(np.abs(linear - exact))))
        scale = max(scale, float(np.max(np.abs(exact))))
    return worst / scale


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=MNIST_DIR)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--r-line", type=float, default=2.0)
    parser.add_argument("--max-examples", type=int, default=None)
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    mnist = args.mnist if args.mnist.exists() else None
    X_train, y_train, X_test, y_test, data_name = load_dataset(mnist, seed=0, train_fraction=0.8,
                                                               max_examples=args.max_examples)
    shape = X_train.shape[1:]
    tile = TileConfig(rows=256, cols=256, r_line_ohm=args.r_line, r_driver_ohm=10.0, r_sense_ohm=10.0,
                      r_switch_on_ohm=100.0)
    result = {"benchmark": "wired_mlp", "circuitnn": __version__, "python": platform.python_version(),
              "data": data_name, "n_train": len(X_train), "n_test": len(X_test), "network": "784-256-10 MLP",
              "device": "msdc (Cr), default effects", "tile": tile.__dict__, "epochs": args.epochs,
              "cpus": os.cpu_count(), "loadavg_before": os.getloadavg(), "target_ratio": TARGET_RATIO}
    model = tile_device("msdc").model
    with threadpool_limits(limits=1, user_api="blas"):
        base = NetworkTrainingConfig(epochs=args.epochs, batch_size=64, seed=0)
        start = time.perf_counter()
        probe = build_network(NetworkConfig.mlp(), shape, np.random.default_rng(0))
        for weight in probe.weights:
            wire_maps(weight.shape, tile, model, base.wire_reference_fraction)
        result["wire_map_setup_s"] = time.perf_counter() - start
        networks, epoch_times = {}, {}
        for name, device, changes in (("float", None, {}), ("ignoring_wires", "msdc", {}),
                                      ("through_wires", "msdc", {"through_wires": True})):
            network = build_network(NetworkConfig.mlp(), shape, np.random.default_rng(0))
            config = NetworkTrainingConfig(**{**base.__dict__, **changes})
            history = train(network, X_train, y_train, config, device=device,
                            tile=tile if changes else TileConfig())
            networks[name], epoch_times[name] = network, [float(t) for t in history.time_s]
    result["epoch_time_s"] = epoch_times
    median = {name: float(np.median(times)) for name, times in epoch_times.items()}
    result["ratio_through_wires_epoch_to_float"] = median["through_wires"] / median["float"]
    result["ratio_ignoring_wires_epoch_to_float"] = median["ignoring_wires"] / median["float"]
    result["meets_target"] = result["ratio_through_wires_epoch_to_float"] <= TARGET_RATIO
    evaluation = {}
    for name in ("ignoring_wires", "through_wires"):
        start = time.perf_counter()
        wired = evaluate(networks[name], X_test, y_test, "msdc", tile=tile)
        evaluation[name] = {"accuracy_float": wired["accuracy_float"],
                            "accuracy_exact_wired_tiles": wired["accuracy_device"],
                            "accuracy_ideal_tiles": evaluate(networks[name], X_test, y_test, "msdc")["accuracy_device"],
                            "evaluation_s": time.perf_counter() - start}
    result["evaluation"] = evaluation
    trained = networks["through_wires"].weights
    result["linearised_map_error_at_trained_weights"] = [
        _map_error(w, tile, model, base.wire_reference_fraction) for w in trained]
    result["loadavg_after"] = os.getloadavg()
    write_result(f"wired_mlp_r{args.r_line:g}", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
