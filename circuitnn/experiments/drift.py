"""PCM drift: accuracy over time with and without the drift regularizer, optimized weight programming,
and the SPICE checks on the 9-3-1 PCM circuit; one stored, resumable run of kind ``drift``.

Steps (each a stored part, skipped on resume):

1. networks: for each of MLP and small CNN, train plainly and with the drift regularizer
   (``networks/drift.py``), then program each onto PCM tiles ``draws`` times and read at 0 s, 1 s,
   1 h, 1 day, 1 month, 1 year, 10 years with and without global drift compensation.
2. programming: differential-evolution search of the four-device strategy (``networks/programming.py``)
   on the plain MLP's weight density; errors over time of single pair, dual pair and the optimum
   over fresh draws; the MLP's accuracy over time programmed each way.
3. spice: on the 9-3-1 PCM circuit (``load_config(medium_name="PCM")``), (a) the analytic output
   variance against the variance of SpiceChip outputs over ν draws (several chip seeds), per output
   and time; (b) a test crossbar holding the four devices of a few weights as separate cells,
   write-verified by the chip with the optimized strategy's targets, read in SPICE at the times of
   step 2 and compared with the surrogate chip reading the same devices; (c) the SPICE-in-the-loop
   drift-regularized trainer and the circuit's accuracy over time in SPICE, with and without it.

Sizes (for a loaded 2-core machine; config values of ``DriftStudyConfig``): MNIST t10k, 8000
training / 2000 test images, MLP 784-256-10 and the small CNN, 3 and 2 epochs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..chip.protocol import ChipSnapshot
from ..chip.spice_chip import SpiceChip
from ..chip.surrogate_chip import SurrogateChip
from ..circuits.crossbar import Crossbar, CrossbarSpec, LayerSpec
from ..data.mnist import load_dataset
from ..data.patterns import make_dataset
from ..errors import ConfigError
from ..networks import NetworkConfig, NetworkTrainingConfig, PcmEffects, build_network
from ..networks import programming as wp
from ..networks.drift import EVALUATION_TIMES_S, DriftRegularizerConfig, accuracy_over_time, train_drift_regularized
from ..store import Run, RunStore
from ..training import mapping
from ..training import drift_regularized as chip_drift
from ..training.software import accuracy as software_accuracy
from ..training.software import train_default
from ..training.tuning import tune_all
from ..validation import check_int
from .config import from_dict, load_config
from .networks import load_parameters, stored_parameters

TRAININGS = ("plain", "regularized")


@dataclass(frozen=True)
class DriftStudyConfig:
    """Everything a drift run does; stored as its plan. Our choices, with the reasons in the README:

    * ``window_fraction`` 0.15 and GDC on: the setting where drift costs the plain MLP points by one
      month (full window: < 1 point after a year); ``drift_scale``/``read_noise_scale`` as published.
    * regularizer: the Monte-Carlo form (K = 8, pathwise gradient), relative (noise-to-signal)
      penalty, λ = 3; its ``window_fraction`` and ``drift_scale`` follow the study's (``with_setting``).
    """

    mnist_dir: str | None = None
    max_examples: int = 10_000
    seed: int = 0
    kinds: tuple[str, ...] = ("mlp", "cnn")
    epochs_mlp: int = 3
    epochs_cnn: int = 2
    draws: int = 25
    times_s: tuple[float, ...] = EVALUATION_TIMES_S
    window_fraction: float = 0.15
    drift_scale: float = 1.0
    read_noise_scale: float = 1.0
    regularizer: DriftRegularizerConfig = DriftRegularizerConfig(form="montecarlo", strength=3.0,
                                                                 window_fraction=0.15)
    search: wp.ProgrammingSearchConfig = wp.ProgrammingSearchConfig()
    programming_repeats: int = 25
    spice_draws: int = 400
    spice_chips: int = 8
    spice_times_s: tuple[float, ...] = (3600.0, 86400.0, 30 * 86400.0)
    spice_inputs: int = 4
    strategy_weights: tuple[float, ...] = (-0.8, -0.25, 0.1, 0.55, 1.0)
    chip_training: chip_drift.ChipDriftTrainingConfig = chip_drift.ChipDriftTrainingConfig()
    circuit_draws: int = 25
    steps: tuple[str, ...] = ("networks", "programming", "spice")

    def __post_init__(self) -> None:
        for name in ("draws", "programming_repeats", "spice_draws", "spice_chips", "spice_inputs",
                     "circuit_draws"):
            check_int(f"drift.{name}", getattr(self, name), 1, 100000)
        for kind in self.kinds:
            if kind not in ("mlp", "cnn"):
                raise ConfigError("drift.kinds", kind, "mlp or cnn")
        for step in self.steps:
            if step not in ("networks", "programming", "spice"):
                raise ConfigError("drift.steps", step, "networks, programming or spice")

    def with_setting(self, window_fraction: float | None = None, drift_scale: float | None = None,
                     form: str | None = None, strength: float | None = None) -> DriftStudyConfig:
        """A copy with another device setting / regularizer, the regularizer told the same setting."""
        window = self.window_fraction if window_fraction is None else window_fraction
        scale = self.drift_scale if drift_scale is None else drift_scale
        regularizer = replace(self.regularizer, window_fraction=window, drift_scale=scale,
                              form=self.regularizer.form if form is None else form,
                              strength=self.regularizer.strength if strength is None else strength)
        return replace(self, window_fraction=window, drift_scale=scale, regularizer=regularizer)

    def as_dict(self) -> dict:
        return asdict(self)


def quick_config(**changes) -> DriftStudyConfig:
    """A few-minute version (tests, smoke runs): fewer examples, draws and generations."""
    base = DriftStudyConfig(max_examples=2000, draws=3, kinds=("mlp",), epochs_mlp=1,
                            search=wp.ProgrammingSearchConfig(maxiter=3, popsize=4, n_weights=256, polish=False),
                            programming_repeats=3, spice_draws=16, spice_chips=2, spice_inputs=2,
                            chip_training=chip_drift.ChipDriftTrainingConfig(steps=2, draws=2), circuit_draws=2,
                            strategy_weights=(-0.5, 0.7))
    return replace(base, **changes)


def _effects(config: DriftStudyConfig) -> PcmEffects:
    return PcmEffects(drift_scale=config.drift_scale, read_noise_scale=config.read_noise_scale)


def _summary_rows(kind: str, training: str, acc: np.ndarray, times, compensation=(False, True)) -> list[dict]:
    rows = []
    for c, gdc in enumerate(compensation):
        for k, t in enumerate(times):
            values = acc[c, :, k]
            rows.append({"network": kind, "training": training, "drift_compensation": bool(gdc), "time_s": float(t),
                         "accuracy_mean": float(values.mean()), "accuracy_std": float(values.std(ddof=1))
                         if len(values) > 1 else 0.0, "draws": int(len(values))})
    return rows


def run_drift(store: RunStore, config: DriftStudyConfig = DriftStudyConfig(), resume: str | None = None,
              progress: bool = True, write_report: Callable[[Run], dict] | None = None) -> Run:
    """Run (or resume) the drift study; every step's results are stored parts."""
    if resume:
        run = store.resume(resume)
        config = from_dict(DriftStudyConfig, run.read_json("plan.json"), f"run {run.id}: drift")
    needs_data = "networks" in config.steps or "programming" in config.steps
    # Read before a new run is made: a bad --mnist folder leaves no failed run behind.
    data = load_dataset(config.mnist_dir, config.seed, max_examples=config.max_examples) if needs_data else None
    if not resume:
        run = store.create("drift", config.as_dict(), seed=config.seed, name="drift",
                           files={"plan.json": config.as_dict()})

    def say(text: str) -> None:
        if progress:
            print(text, flush=True)

    with run:
        networks: dict[str, object] = {}
        if needs_data:
            run.write_json("data.json", {"dataset": data[4], "train": int(len(data[0])), "test": int(len(data[2]))})
        if "networks" in config.steps:
            rows = []
            for kind in config.kinds:
                for training in TRAININGS:
                    network = _trained(run, config, data, kind, training, say)
                    networks[(kind, training)] = network
                    part = run.json_part(f"parts/{kind}-{training}/accuracy.json", lambda: {
                        "accuracy": accuracy_over_time(network, data[2], data[3], config.times_s, _effects(config),
                                                       draws=config.draws, seed=config.seed,
                                                       window_fraction=config.window_fraction).tolist()})
                    rows += _summary_rows(kind, training, np.array(part["accuracy"]), config.times_s)
                    say(f"{kind} {training}: accuracy over time stored")
            run.write_csv("accuracy_over_time.csv", rows)
        if "programming" in config.steps:
            network = networks.get(("mlp", "plain")) or _trained(run, config, data, "mlp", "plain", say)
            _programming(run, config, network, data, say)
        if "spice" in config.steps:
            _spice(run, config, say)
        run.complete(write_report(run) if write_report is not None else {"steps": list(config.steps)})
    return run


def _trained(run: Run, config: DriftStudyConfig, data, kind: str, training: str, say):
    X_train, y_train = data[0], data[1]
    network = build_network(NetworkConfig.default(kind, X_train.shape[1:]), X_train.shape[1:],
                            np.random.default_rng(config.seed))
    part = f"parts/{kind}-{training}/weights.npz"
    if part in run.files:
        load_parameters(network, run.read_npz(part))
        return network
    say(f"training {kind} ({training}) ...")
    epochs = config.epochs_mlp if kind == "mlp" else config.epochs_cnn
    regularizer = config.regularizer if training == "regularized" else DriftRegularizerConfig(form="none")
    history = train_drift_regularized(network, X_train, y_train,
                                      NetworkTrainingConfig(epochs=epochs, seed=config.seed, noise_sampling="pool"),
                                      regularizer)
    # The weights mark the part done (above), so they are written last: a kill between the two files
    # leaves a part that is trained again on resume, never one without its history.
    run.write_json(f"parts/{kind}-{training}/history.json",
                   {"loss": history.loss.tolist(), "penalty": history.penalty.tolist(),
                    "epoch_time_s": history.time_s.tolist()})
    run.write_npz(part, **stored_parameters(network))
    return network


def _programming(run: Run, config: DriftStudyConfig, network, data, say) -> None:
    times = config.search.times_s
    weights = wp.test_weights_from(network.weights, n=max(config.search.n_weights, 256), seed=config.seed)

    def search():
        say("programming: differential evolution ...")
        result = wp.optimize_strategy(weights, config.search)
        s = result.strategy
        return {"f": s.f, "full": s.full, "grid": s.grid.tolist(), "table": s.table.tolist(),
                "objective": result.objective, "baseline_objective": result.baseline_objective,
                "generations": result.generations, "evaluations": result.evaluations,
                "wall_time_s": result.wall_time_s, "history": result.history}

    found = run.json_part("parts/programming/search.json", search)
    optimized = wp.Strategy("optimized", np.array(found["grid"]), np.array(found["table"]), found["f"], found["full"])
    strategies = (wp.single_pair(), wp.dual_pair(), optimized)

    def errors():
        say("programming: errors over time ...")
        fresh = wp.test_weights_from(network.weights, n=2048, seed=config.seed + 1)
        return {s.name: wp.strategy_error_over_time(s, fresh, times, config.programming_repeats,
                                                    config.seed + 2).tolist() for s in strategies}

    run.json_part("parts/programming/errors.json", errors)

    def accuracy():
        say("programming: accuracy over time of the MLP programmed each way ...")
        X, y = data[2], data[3]
        out = {}
        for s in strategies:
            acc = np.empty((config.programming_repeats, len(times)))
            for d, child in enumerate(np.random.default_rng(config.seed + 3).spawn(config.programming_repeats)):
                per_time = wp.programmed_weights(s, network.weights, times, child)
                for k, used in enumerate(per_time):
                    logits = network.forward(X, weights=used)
                    acc[d, k] = float(np.mean(np.argmax(logits, axis=1) == y))
            out[s.name] = acc.tolist()
        return out

    run.json_part("parts/programming/accuracy.json", accuracy)


def _spice(run: Run, config: DriftStudyConfig, say) -> None:
    pcm_config = load_config(medium_name="PCM")
    crossbar = Crossbar(pcm_config.crossbar_spec())
    trained = train_default(pcm_config.software_training())
    states = mapping.target_states(trained.weights, crossbar)
    g = crossbar.spec.device.conductance_S(states)
    X_all, y_all = make_dataset(1, 0.0, np.random.default_rng([config.seed, 5]))
    X = X_all[:config.spice_inputs]

    def variance():
        say("spice: output variance over drift draws ...")
        per_chip = max(1, config.spice_draws // config.spice_chips)
        samples = []
        for s in range(config.spice_chips):
            with SpiceChip(crossbar, states, pcm_config.programming, pcm_config.timing, seed=config.seed + s) as chip:
                samples.append(chip_drift.chip_output_draws(chip, states, X, config.spice_times_s, per_chip))
        samples = np.concatenate(samples)
        rows = []
        for k, t in enumerate(config.spice_times_s):
            analytic = chip_drift.analytic_output_variance(crossbar, g, X, t)
            var, se = chip_drift.variance_with_error(samples[:, k])
            for i in range(var.shape[0]):
                for j in range(var.shape[1]):
                    rows.append({"time_s": t, "input": i, "output": j, "draws": int(samples.shape[0]),
                                 "spice_mean": float(samples[:, k, i, j].mean()),
                                 "spice_variance": float(var[i, j]), "spice_variance_se": float(se[i, j]),
                                 "analytic_first_order": float(analytic["first_order"][i, j]),
                                 "analytic_lognormal": float(analytic["lognormal"][i, j]),
                                 "ratio": float(var[i, j] / analytic["first_order"][i, j]),
                                 "ratio_se": float(se[i, j] / analytic["first_order"][i, j])})
        return rows

    run.json_part("parts/spice/variance.json", variance)
    if "parts/programming/search.json" in run.files:
        found = run.read_json("parts/programming/search.json")
        optimized = wp.Strategy("optimized", np.array(found["grid"]), np.array(found["table"]), found["f"],
                                found["full"])
        run.json_part("parts/spice/strategy.json",
                      lambda: _strategy_on_chip(pcm_config, optimized, config, say))

    def circuit():
        say("spice: the drift-regularized trainer of the 9-3-1 circuit, in the loop ...")
        X_train, y_train = make_dataset(20, pcm_config.training.training_noise, np.random.default_rng([config.seed, 6]))
        X_test, y_test = make_dataset(10, 0.0, np.random.default_rng([config.seed, 7]))
        with SpiceChip(crossbar, states, pcm_config.programming, pcm_config.timing, seed=config.seed + 100) as chip:
            result = chip_drift.train_with_chip_drift_penalty(chip, trained.weights, X_train, y_train,
                                                              config.chip_training, X_penalty=X)
            out = {"penalty": result.penalty.tolist(), "loss": result.loss.tolist(),
                   "weights": [w.tolist() for w in result.weights], "times_s": list(config.times_s)}
            for name, weights in (("plain", trained.weights), ("regularized", result.weights)):
                target = mapping.target_states(weights, crossbar)
                outputs = chip_drift.chip_output_draws(chip, target, X_test, config.times_s, config.circuit_draws)
                predicted = (outputs[..., 0] > 0.5).astype(int)
                out[f"accuracy_{name}"] = (predicted == y_test[None, None, :]).mean(axis=2).tolist()
                out[f"software_accuracy_{name}"] = software_accuracy(weights, X_test, y_test)
        return out

    run.json_part("parts/spice/circuit.json", circuit)


def _strategy_on_chip(pcm_config, strategy: wp.Strategy, config: DriftStudyConfig, say) -> dict:
    """Write-verify the four devices of a few weights (separate cells of one test crossbar) on a
    SpiceChip, then read them in SPICE and on a SurrogateChip holding the same devices (states, ν,
    clock and noise streams from the SPICE chip's snapshot) at the search's times."""
    say("spice: four-device strategy written and verified through the chip ...")
    base = pcm_config.crossbar_spec()
    device = base.device
    n_weights = len(config.strategy_weights)
    # One layer, 4·n_weights rows, one column: each device its own cell (row), the circuit around it as usual.
    spec = CrossbarSpec(name="strategy_cells", device=device,
                        layers=(LayerSpec(4 * n_weights, 1, base.layers[0].neuron),), weights="single",
                        v_read_V=base.v_read_V, r_driver_ohm=base.r_driver_ohm, r_line_ohm=base.r_line_ohm,
                        r_sense_ohm=base.r_sense_ohm, r_switch_on_ohm=base.r_switch_on_ohm, seed=config.seed)
    crossbar = Crossbar(spec)
    g_norm = strategy.conductances(np.array(config.strategy_weights))        # (4, n_weights)
    span = device.g_max_S - device.g_min_S
    # Targets at least the tuning floor above zero: a verify loop cannot aim at exactly 0 S.
    targets = np.maximum(device.g_min_S + g_norm.T.reshape(-1) * span, 2 * pcm_config.tuning.tolerance_floor_S)
    start = np.full(crossbar.n_devices, 0.5)
    with SpiceChip(crossbar, start, pcm_config.programming, pcm_config.timing, seed=config.seed) as chip:
        tunings = tune_all(chip, targets, pcm_config.tuning)
        snapshot = chip.snapshot()
        surrogate = SurrogateChip(crossbar, start, pcm_config.programming, pcm_config.timing, seed=config.seed)
        # The SPICE chip's devices (states, ν, programming times, clock, model stream); the surrogate
        # keeps its own effects stream, which a SPICE snapshot does not have.
        state = {**snapshot.state, "rngs": {**surrogate.snapshot().state["rngs"], **snapshot.state["rngs"]}}
        surrogate.restore(ChipSnapshot(snapshot.arrays, state))
        programmed_at = chip.clock_s
        rows = []
        for t in config.search.times_s:
            chip.clock_s = surrogate.clock_s = programmed_at + t
            spice_reads = np.array([chip.read_device(i).conductance_S for i in range(crossbar.n_devices)])
            surrogate_reads = np.array([surrogate.read_device(i).conductance_S for i in range(crossbar.n_devices)])
            cells = spice_reads.reshape(n_weights, 4).T / span
            rows.append({"time_s": t, "spice_S": spice_reads.tolist(), "surrogate_S": surrogate_reads.tolist(),
                         "max_relative_difference": float(np.max(np.abs(surrogate_reads / spice_reads - 1.0))),
                         "weights_read": strategy.weights(cells).tolist()})
    return {"targets_S": targets.tolist(), "weights": list(config.strategy_weights),
            "pulses": [t.pulses for t in tunings], "relative_errors": [t.relative_error for t in tunings],
            "tolerance": pcm_config.tuning.tolerance, "tolerance_floor_S": pcm_config.tuning.tolerance_floor_S,
            "reads": rows}
