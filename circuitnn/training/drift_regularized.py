"""Drift regularization on a PCM crossbar chip (the 9-3-1 circuit), written against the Chip protocol.

Every function takes a chip (``SpiceChip`` or ``SurrogateChip``; chip/protocol.py), so the same code
runs in ngspice and in NumPy. A chip with an ageing device (PCM) draws a drift exponent ν per device
when the device is programmed (``load_states`` = programmed there) and reads each device at the time
since then (the chip's simulated clock ``clock_s``): waiting t seconds is advancing that clock.

* ``chip_output_draws``: the circuit's outputs at times after programming, over ν draws (every
  ``load_states`` draws new ν from the chip's model stream; different chip seeds give independent
  streams). Read noise off (``infer(read_noise=False)``): the spread is drift alone.
* ``analytic_output_variance``: the first-order (delta-method) variance of the same outputs,
  Σ_d (∂y/∂G_d)² Var[G_d(t)], with ∂y/∂G_d of the circuit's software model (``mapping`` +
  ``software.forward``: the switch included, wires not) at the median drifted conductances and
  Var[G_d(t)] = (G_d e^(−μ_ν L) L σ_ν)² (first order in σ_ν L, L = ln((t + t0)/t0)); and the same
  with the exact lognormal moments of G e^(−νL) (``lognormal``), which matters where σ_ν L is not
  small (low conductances: σ_ν = 0.045, L = 8.4 at one day).
* ``train_with_chip_drift_penalty``: the SPICE-in-the-loop drift-regularized trainer of the 9-3-1
  circuit: loss2 = BCE(software) + λ·R_chip, R_chip = mean over inputs of the variance over K ν draws
  of the chip's outputs at ``time_s`` after programming. Its gradient is estimated by simultaneous
  perturbation (SPSA: two chip evaluations per step, whatever the number of weights) with common
  random numbers: both perturbed evaluations start from one chip snapshot, so they see the same
  normal draws and their difference is the effect of the weights, not of the noise. Programming in
  the loop is ``load_states`` (ideal write: the chip's circuit and drift, not the verify loop).

``DriftRegularized`` puts the trainer behind the trainer protocol (``trainer.kind =
"drift-regularized"``): fine-tune the ex-situ network with the chip penalty, then write-verify the
fine-tuned weights' targets. The in-loop evaluations program by ``load_states`` and wait by moving
the clock: simulated experiments (a real chip cannot wait a day per step), so the chip is put back
to its as-found snapshot afterwards and the ledger holds the write-verify of the result only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..chip.protocol import Chip
from ..circuits.crossbar import Crossbar
from ..devices.pcm import PcmParams, drift_nu_mean, drift_nu_std
from ..errors import ConfigError
from ..validation import check_int, check_range
from . import mapping
from .software import _bce_and_gradients, _targets, forward
from .trainer import Checkpoint, ChipTask, Trainer, TrainerState, TrainingOutcome
from .write_verify import TuningProgress, tune_with_progress, tuning_tables


def _log_factor(time_s: float, t0_s: float) -> float:
    return float(np.log1p(time_s / t0_s))


def circuit_outputs(crossbar: Crossbar, g_device_S, X) -> np.ndarray:
    """Outputs (n, n_out) of the circuit's software model at device conductances ``g_device_S`` (S)."""
    weights = mapping.conductances_to_weights(np.asarray(g_device_S, dtype=float), crossbar)
    return forward(weights, X)[-1]


def _statistics(crossbar: Crossbar) -> PcmParams:
    device = crossbar.spec.device
    if not getattr(device, "ages", False) or not hasattr(device, "statistics"):
        raise ConfigError("device.medium", getattr(device, "medium", "?"), "an ageing (PCM) medium")
    return device.statistics


def analytic_output_variance(crossbar: Crossbar, g_device_S, X, time_s: float, step: float = 1e-4) -> dict:
    """Analytic variance of the outputs (n, n_out) over ν, ``time_s`` after programming to ``g_device_S``.

    Returns {"first_order", "lognormal", "median_output"}: the two variances of the module docstring
    and the outputs at the median drifted conductances. ∂y/∂G by central differences (relative step
    ``step``) of the smooth software model: 2·n_devices evaluations of a 30-weight network.
    """
    p = _statistics(crossbar)
    g = np.asarray(g_device_S, dtype=float)
    L = _log_factor(time_s, p.t0_s) * p.drift_scale
    mu, sigma = drift_nu_mean(p, g), drift_nu_std(p, g)
    g_median = g * np.exp(-mu * L)
    y0 = circuit_outputs(crossbar, g_median, X)
    jac = np.empty((g.size, *y0.shape))
    for d in range(g.size):
        h = step * max(g_median[d], 1e-9)
        up, down = g_median.copy(), g_median.copy()
        up[d] += h
        down[d] = max(down[d] - h, 1e-15)
        jac[d] = (circuit_outputs(crossbar, up, X) - circuit_outputs(crossbar, down, X)) / (up[d] - down[d])
    var_first = (g_median * L * sigma) ** 2
    # ν ~ N(μ, σ) (the fold is negligible where it would matter, μ ≥ 2σ): G e^(−νL) is lognormal.
    var_lognormal = g**2 * np.exp(-2 * mu * L) * np.exp((sigma * L) ** 2) * np.expm1((sigma * L) ** 2)
    return {"first_order": np.einsum("d...,d->...", jac**2, var_first),
            "lognormal": np.einsum("d...,d->...", jac**2, var_lognormal),
            "median_output": y0}


def chip_output_draws(chip: Chip, states, X, times_s, draws: int, read_noise: bool = False) -> np.ndarray:
    """Outputs (draws, len(times_s), n, n_out) of ``chip`` programmed to ``states`` ``draws`` times
    (each a fresh ν draw) and read ``times_s`` seconds after each programming."""
    check_int("drift.draws", draws, 1, 100000)
    for t in times_s:
        check_range("drift.times_s", t, 0.0, 1e12, True)
    X = np.atleast_2d(np.asarray(X, dtype=float))
    out = None
    for k in range(draws):
        chip.load_states(states)
        programmed_at = chip.clock_s
        for i, t in enumerate(times_s):
            chip.clock_s = programmed_at + float(t)   # waiting t seconds
            y = chip.infer(X, read_noise=read_noise).outputs
            if out is None:
                out = np.empty((draws, len(times_s), *y.shape))
            out[k, i] = y
    return out


def variance_with_error(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample variance over axis 0 and its standard error sqrt((m4 − s⁴)/N) (no normality assumed)."""
    n = samples.shape[0]
    centred = samples - samples.mean(axis=0)
    var = (centred**2).sum(axis=0) / (n - 1)
    m4 = (centred**4).mean(axis=0)
    return var, np.sqrt(np.maximum(m4 - var**2, 0.0) / n)


# ---- the SPICE-in-the-loop trainer ----------------------------------------------------------------------
@dataclass(frozen=True)
class ChipDriftTrainingConfig:
    """The trainer's settings (``[trainer.settings]``), validated as ``trainer.settings.<field>``.

    ``strength`` λ on R_chip (output variance, outputs in [0, 1]: R_chip ~ 1e-3 where BCE ~ 0.02, so
    λ of a few hundred weighs them alike); ``time_s`` the read time after
    programming (one day); ``draws`` K ν draws per evaluation; ``steps`` gradient steps;
    ``learning_rate`` of plain gradient descent; ``perturbation`` the SPSA step in weight units (≈ 2 %
    of the weight range: large against SPICE's numerical noise, small against the curvature);
    ``w_limit`` the weight clip (inside the device window); ``penalty_examples`` training images in
    R_chip (the trainer; the functions take them explicitly); ``seed`` of the perturbation signs.
    """

    strength: float = 200.0
    time_s: float = 86400.0
    draws: int = 4
    steps: int = 20
    learning_rate: float = 0.2
    perturbation: float = 0.1
    w_limit: float = 3.2
    penalty_examples: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        check_range("trainer.settings.strength", self.strength, 0.0, 1e9, True)
        check_range("trainer.settings.time_s", self.time_s, 0.0, 1e12, True)
        for name, low, high in (("draws", 2, 10000), ("steps", 0, 100000), ("penalty_examples", 1, 100000),
                                ("seed", 0, 2**32 - 1)):
            check_int(f"trainer.settings.{name}", getattr(self, name), low, high)
        check_range("trainer.settings.learning_rate", self.learning_rate, 0.0, 100.0)
        check_range("trainer.settings.perturbation", self.perturbation, 0.0, 10.0)
        check_range("trainer.settings.w_limit", self.w_limit, 0.0, 1e3)


def chip_drift_penalty(chip: Chip, weights, X, time_s: float, draws: int) -> float:
    """R_chip: mean over inputs and outputs of the variance over ``draws`` ν draws of the chip's outputs
    ``time_s`` after programming ``weights`` (mapped to states by ``mapping.target_states``)."""
    states = mapping.target_states(weights, chip.crossbar)
    outputs = chip_output_draws(chip, states, X, (time_s,), draws)[:, 0]
    return float(outputs.var(axis=0, ddof=1).mean())


@dataclass(frozen=True)
class ChipDriftTrainingResult:
    weights: tuple[np.ndarray, ...]
    loss: np.ndarray          # BCE per step (software model), before each update
    penalty: np.ndarray       # R_chip per step (mean of the two SPSA evaluations)


def train_with_chip_drift_penalty(chip: Chip, weights, X, y, config: ChipDriftTrainingConfig = ChipDriftTrainingConfig(),
                                  X_penalty=None) -> ChipDriftTrainingResult:
    """Fine-tune ``weights`` (software, (n_in, n_out) per layer) with loss2 = BCE + λ·R_chip.

    BCE and its gradient come from the software model (exact); R_chip from the chip (``X_penalty``
    inputs, default ``X``), its gradient by SPSA with common random numbers (module docstring).
    """
    W = [np.array(w, dtype=float) for w in weights]
    X = np.asarray(X, dtype=float)
    X_penalty = X if X_penalty is None else np.asarray(X_penalty, dtype=float)
    T = _targets(np.asarray(y), W[-1].shape[1])
    rng = np.random.default_rng(config.seed)
    losses, penalties = np.empty(config.steps), np.empty(config.steps)
    c = config.perturbation
    for step in range(config.steps):
        loss, grads = _bce_and_gradients(W, X, T)
        signs = [rng.choice((-1.0, 1.0), size=w.shape) for w in W]
        snapshot = chip.snapshot()
        up = chip_drift_penalty(chip, [w + c * s for w, s in zip(W, signs)], X_penalty, config.time_s, config.draws)
        chip.restore(snapshot)   # the same ν normals for the other side
        down = chip_drift_penalty(chip, [w - c * s for w, s in zip(W, signs)], X_penalty, config.time_s,
                                  config.draws)
        slope = (up - down) / (2 * c)
        for w, g, s in zip(W, grads, signs):
            w -= config.learning_rate * (g + config.strength * slope * s)
            np.clip(w, -config.w_limit, config.w_limit, out=w)
        losses[step], penalties[step] = loss, 0.5 * (up + down)
    return ChipDriftTrainingResult(tuple(W), losses, penalties)


class DriftRegularized(Trainer):
    name = "drift-regularized"
    settings_type = ChipDriftTrainingConfig
    # The write-verify that ends it, with and without one initial RESET (as the write-verify trainer).
    variants = ("noreset", "reset")
    summary_line = ("ex-situ network fine-tuned with a drift penalty measured on the chip (output variance over "
                    "drift draws a day after programming), then write-verified")

    def train(self, chip: Chip, task: ChipTask, variant: str, resume: TrainerState | None,
              checkpoint: Checkpoint) -> TrainingOutcome:
        self.check_variant(variant)
        settings = self.settings
        n_layers = len(task.weights)
        if resume is not None and "w0" in resume.arrays:
            weights = tuple(resume.arrays[f"w{i}"] for i in range(n_layers))
            fine_tuning = {k: resume.state[k] for k in ("loss", "penalty")}
        else:
            found = chip.snapshot()
            X_penalty = task.X_train[:settings.penalty_examples]
            result = train_with_chip_drift_penalty(chip, task.weights, task.X_train, task.y_train, settings, X_penalty)
            chip.restore(found)
            weights = result.weights
            fine_tuning = {"loss": result.loss.tolist(), "penalty": result.penalty.tolist()}
        arrays = {f"w{i}": np.asarray(w) for i, w in enumerate(weights)}
        progress = (TuningProgress.from_state(resume.state["tuning"], resume.arrays["initial_states"])
                    if resume is not None and "tuning" in resume.state else TuningProgress(chip.states))

        def save(now: TuningProgress) -> None:
            state = now.as_trainer_state()
            checkpoint(TrainerState({**fine_tuning, "tuning": state.state}, {**arrays, **state.arrays}))

        save(progress)
        targets = mapping.weights_to_conductances(weights, chip.crossbar, strict=False)
        tuning = dataclasses.replace(self.tuning, initial_reset=(variant == "reset"))
        tunings = tune_with_progress(chip, targets, tuning, progress, on_device=save)
        table, summary, times, at_completion = tuning_tables(tunings, progress)
        penalty = fine_tuning["penalty"]
        summary.update({"drift_penalty_first": float(penalty[0]) if penalty else float("nan"),
                        "drift_penalty_last": float(penalty[-1]) if penalty else float("nan")})
        steps = {"step": list(range(len(penalty))), "loss": fine_tuning["loss"], "penalty": penalty}
        return TrainingOutcome({"devices": table, "drift_fine_tuning": steps}, summary, times, at_completion)


TRAINER = DriftRegularized
