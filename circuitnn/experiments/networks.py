"""Large networks on crossbar tiles: accuracy with and without device effects, stored as a run.

For each network (MLP 784-256-10, small CNN) trained plainly and with weight-noise injection
(hardware-aware), evaluate in float and through M-SDC and PCM tiles with their default effects
(several programming draws). Then the wire sweep: the hardware-aware networks on M-SDC tiles of two
sizes read through their solved circuits at several line resistances (``networks/tile_circuit.py``).
MNIST from IDX files when a folder is given; scikit-learn's 8×8 digits otherwise (the embedded default).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..data.mnist import load_dataset
from ..networks import NetworkConfig, NetworkTrainingConfig, TileConfig, build_network, evaluate, train
from ..networks.train import NETWORK_KINDS
from ..store import Run, RunStore
from ..validation import check_choice, check_int

DEVICES = ("msdc", "pcm")
# The wire sweep: the hardware-aware networks on M-SDC tiles of these sizes, read through line
# resistances (per crosspoint segment) with the on-chip presets' periphery (driver 10 Ω, sense 10 Ω,
# 1T1R switch 100 Ω). 1-2 Ω per segment is a thin on-chip metal line at a ~100 nm pitch.
WIRE_TILE_SIZES = (64, 256)
LINE_RESISTANCES_OHM = (0.0, 1.0, 2.0)
PERIPHERY = {"r_driver_ohm": 10.0, "r_sense_ohm": 10.0, "r_switch_on_ohm": 100.0}


def run_networks(store: RunStore, mnist_dir: str | None, seed: int = 0, epochs: int = 3,
                 max_examples: int | None = 10_000, weight_noise: float = 0.1, repeats: int = 3,
                 kinds: tuple[str, ...] = ("mlp", "cnn"), progress: bool = True,
                 line_resistances_ohm: tuple[float, ...] = LINE_RESISTANCES_OHM, resume: str | None = None,
                 write_report: Callable[[Run], dict] | None = None) -> Run:
    """Train and evaluate ``kinds``; then, unless ``line_resistances_ohm`` is empty, the wire sweep.
    ``write_report(run) -> summary`` writes the report into the run before it completes.

    Every trained network (its weights) and every evaluation is stored as a part when it finishes;
    ``resume`` (a run id) continues an interrupted run with its own settings, skipping stored parts.
    """
    if resume:
        run = store.resume(resume)
        plan = run.read_json("plan.json")
        mnist_dir, seed, epochs, max_examples = plan["mnist_dir"], plan["seed"], plan["epochs"], plan["max_examples"]
        weight_noise, repeats, kinds = plan["weight_noise"], plan["repeats"], tuple(plan["kinds"])
        line_resistances_ohm = tuple(plan["wire_sweep"]["line_resistances_ohm"])
    wires = [TileConfig(rows=size, cols=size, r_line_ohm=float(r), **PERIPHERY)
             for size in WIRE_TILE_SIZES for r in line_resistances_ohm]  # validates before training
    # Every setting checked before the run is made: a bad one leaves no failed run behind.
    for noise in (0.0, weight_noise):
        NetworkTrainingConfig(epochs=epochs, weight_noise=noise, seed=seed)
    check_int("evaluation.repeats", repeats, 1, 100000)
    for i, kind in enumerate(kinds):
        check_choice(f"kinds[{i}]", kind, NETWORK_KINDS)
    X_train, y_train, X_test, y_test, name = load_dataset(mnist_dir, seed, max_examples=max_examples)
    if not resume:
        plan = {"mnist_dir": mnist_dir, "seed": seed, "epochs": epochs, "max_examples": max_examples,
                "weight_noise": weight_noise, "repeats": repeats, "kinds": list(kinds),
                "wire_sweep": {"tile_sizes": list(WIRE_TILE_SIZES),
                               "line_resistances_ohm": list(line_resistances_ohm), **PERIPHERY}}
        run = store.create("networks", plan, seed=seed, labels={"dataset": name}, name=f"networks-{name}",
                           files={"plan.json": plan})
    with run:
        rows, wire_rows = [], []
        for kind in kinds:
            architecture = NetworkConfig.default(kind, X_train.shape[1:])
            for noise in (0.0, weight_noise):
                part = f"parts/{kind}-noise{noise:g}"
                network = build_network(architecture, X_train.shape[1:], np.random.default_rng(seed))
                if f"{part}/weights.npz" in run.files:
                    load_parameters(network, run.read_npz(f"{part}/weights.npz"))
                else:
                    if progress:
                        print(f"{name}: training {kind} (weight noise {noise:g}) ...", flush=True)
                    train(network, X_train, y_train,
                          NetworkTrainingConfig(epochs=epochs, weight_noise=noise, seed=seed),
                          on_epoch=_print_epoch if progress else None)
                    run.write_npz(f"{part}/weights.npz", **stored_parameters(network))
                for device in DEVICES:
                    rows.append(run.json_part(f"{part}/{device}.json", lambda: _device_row(
                        network, X_test, y_test, kind, noise, device, seed, repeats)))
            # ``network`` is now the hardware-aware one (noise > 0 last): read it through wires.
            for tile in wires:
                label = f"{name}: {kind} on {tile.rows}x{tile.cols} M-SDC tiles, R_line {tile.r_line_ohm:g} ohm"
                wire_rows.append(run.json_part(f"parts/{kind}-wires-{tile.rows}-{tile.r_line_ohm:g}ohm.json",
                                               lambda: _wire_row(network, X_test, y_test, kind, tile, seed,
                                                                 label if progress else None)))
        run.write_csv("results.csv", rows)
        run.write_json("results.json", rows)
        if wire_rows:
            run.write_csv("wires.csv", wire_rows)
        run.complete(write_report(run) if write_report is not None else {"rows": len(rows)})
    return run


def stored_parameters(network) -> dict[str, np.ndarray]:
    """A network's parameters as a run part stores them (``load_parameters`` reads them back)."""
    return {f"p{i}": p for i, p in enumerate(network.parameters())}


def load_parameters(network, saved: dict) -> None:
    for i, parameter in enumerate(network.parameters()):
        parameter[...] = saved[f"p{i}"]


def _wire_row(network, X_test, y_test, kind: str, tile: TileConfig, seed: int, progress_label: str | None) -> dict:
    if progress_label:
        print(progress_label + " ...", flush=True)
    result = evaluate(network, X_test, y_test, device="msdc", tile=tile, seed=seed)
    return {"network": kind, "tile": tile.rows, "r_line_ohm": tile.r_line_ohm, **PERIPHERY,
            "accuracy_float": result["accuracy_float"], "accuracy_device": result["accuracy_device"],
            "n_tiles": result["n_tiles"]}


def _device_row(network, X_test, y_test, kind: str, noise: float, device: str, seed: int, repeats: int) -> dict:
    result = evaluate(network, X_test, y_test, device=device, seed=seed, repeats=repeats)
    return {"network": kind, "training": "noise injection" if noise else "plain", "weight_noise": noise,
            "device": device, "accuracy_float": result["accuracy_float"],
            "accuracy_device": result["accuracy_device"], "accuracy_device_std": result["accuracy_device_std"],
            "accuracy_drop": result["accuracy_drop"], "n_tiles": result["n_tiles"]}


def _print_epoch(epoch: int, loss: float, accuracy: float, seconds: float) -> None:
    print(f"  epoch {epoch + 1}: loss {loss:.4f}, training accuracy {accuracy:.4f} ({seconds:.1f} s)", flush=True)
