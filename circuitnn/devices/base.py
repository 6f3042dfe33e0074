"""The device-model contract: what every memristive device model gives the rest of circuitnn.

A model is a frozen dataclass of parameters (SI units in the names) that subclasses ``DeviceModel``
and implements its few methods. Circuits, the SPICE pulse writer, both chip backends, the surrogate,
the weight mapping and the network tiles take a ``DeviceModel`` and never import a concrete model.

What a model gives:

* **State and conductance.** One state variable per device, in ``state_bounds`` (0 … 1: 0 is the
  low-conductance end, 1 the high). ``conductance_S(x)`` is the low-field (read) conductance and
  ``state_from_conductance`` its inverse: what a verify read lets a controller infer. Both take an
  optional per-device window (``g_low_S``, ``g_high_S``) for device-to-device variation.
* **Dynamics.** ``state_rate_per_s(x, v)``, the exact state after a constant device voltage, and
  ``pulse_response``: a trapezoidal pulse through a series resistance, vectorised over devices,
  with the device and source energies ∫V·I dt.
* **Time since programming** (optional, ``ages = True``): quantities fixed when a device is
  programmed (``draw_programming_memory``, e.g. a PCM drift exponent) and the values a read at a
  later time needs (``read_inputs``: drift, read noise), which multiply the conductance
  (``conductance_factor``) in NumPy and enter the SPICE subcircuit as alterable instance inputs.
* **The SPICE form** as data (``SpiceSubcircuit``): pins, parameters, the alterable inputs and the
  fixed element lines; ``circuits/netlist.py`` renders and validates it.
* **Provenance and a retention claim**, which the contract tests hold the model to.

Models whose state equation has the two-rate form dx/dt = a(V)(1 − x) − b(V) x (M-SDC, PCM,
VTEAM with linear windows) can subclass ``TwoRateModel`` and write only ``rates_per_s``: it supplies
the constant-voltage solution and a vectorised pulse integrator.

Registry: every module of ``circuitnn.devices`` that defines ``PRESETS`` (a tuple of models) is
found and registered on first use (in the order of an optional ``PRESET_ORDER``, then by name); ``register`` adds models from elsewhere (a test, a user script).
``preset(name)`` gives a model by its (case-insensitive) name.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import pkgutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class PulseResponse:
    """What pulses did to a batch of devices. Arrays of shape (n,) (floats for one device); J, s."""

    x_after: np.ndarray
    energy_device_J: np.ndarray   # ∫ V_device · I dt
    energy_source_J: np.ndarray   # ∫ V_generator · I dt: the device plus the series-path losses
    duration_s: np.ndarray        # the simulated window: 4 edges + width


@dataclass(frozen=True)
class Retention:
    """What a preset claims about an unbiased device over ``duration_s``.

    Non-volatile (``volatile = False``): from any state, |Δx| ≤ ``max_state_change``. Volatile: from
    at least one end of the window, |Δx| ≥ ``max_state_change`` (the state is forgotten).
    """

    duration_s: float = 100.0
    max_state_change: float = 0.01
    volatile: bool = False


@dataclass(frozen=True)
class SpiceSubcircuit:
    """A model's ngspice subcircuit as data; ``circuits/netlist.py`` renders it.

    ``inputs`` are the alterable instance values: (instance parameter, DC source inside the
    subcircuit that holds it, default). The first is the stored state, which ``.op`` reads back and
    a transient starts from. ``body`` holds the element lines (fixed text of the model, with
    ``{param}`` references); ``comments`` free text (provenance), flattened when rendered.
    ``state_node`` is the internal node whose voltage is the state.
    """

    name: str
    pins: tuple[str, ...]
    parameters: tuple[tuple[str, float], ...]
    inputs: tuple[tuple[str, str, float], ...]
    body: tuple[str, ...]
    comments: tuple[str, ...]
    state_node: str

    @property
    def state_parameter(self) -> str:
        return self.inputs[0][0]

    def source_of(self, input_name: str) -> str:
        """The DC source inside an instance that holds ``input_name`` (``alter v.<inst>.<source>``)."""
        for parameter, source, _ in self.inputs:
            if parameter == input_name:
                return source
        raise KeyError(input_name)


NOT_PARAMETERS = ("medium", "provenance", "retention")


class DeviceModel(ABC):
    """The contract of a device model (see the module docstring). Subclasses are frozen dataclasses
    with at least the fields ``medium`` (the preset's name) and ``provenance``."""

    family: ClassVar[str]                               # "msdc", "pcm", ...: names the .lib file
    state_bounds: ClassVar[tuple[float, float]] = (0.0, 1.0)
    ages: ClassVar[bool] = False                        # reads depend on the time since programming
    medium: str
    provenance: str

    # -- conductance ---------------------------------------------------------------------------------
    @property
    @abstractmethod
    def g_low_S(self) -> float:
        """Read conductance at the low end of the state range (S)."""

    @property
    @abstractmethod
    def g_high_S(self) -> float:
        """Read conductance at the high end of the state range (S)."""

    @abstractmethod
    def conductance_S(self, x, g_low_S=None, g_high_S=None):
        """Read conductance (S) at state(s) ``x``; optional per-device window (arrays broadcast)."""

    @abstractmethod
    def state_from_conductance(self, g_S, g_low_S=None, g_high_S=None):
        """The state whose read conductance is ``g_S``: what a verify read infers."""

    @abstractmethod
    def current_A(self, x, v_V):
        """Device current (A) from the + to the − terminal at device voltage ``v_V``."""

    @property
    def linear_at_fixed_state(self) -> bool:
        """Whether I = G(x)·V exactly at fixed state (the surrogate's array solve needs it)."""
        return True

    def device_voltage_V(self, x, v_source_V, r_series_ohm, g_low_S=None, g_high_S=None,
                         conductance_factor=1.0):
        """Voltage across a (linear) device driven through ``r_series_ohm``: the divider."""
        g = self.conductance_S(x, g_low_S, g_high_S) * conductance_factor
        return np.asarray(v_source_V, dtype=float) / (1.0 + r_series_ohm * g)

    # -- dynamics ------------------------------------------------------------------------------------
    @abstractmethod
    def state_rate_per_s(self, x, v_V):
        """dx/dt (1/s) at state ``x`` and device voltage ``v_V`` (arrays broadcast)."""

    @abstractmethod
    def state_after_constant_voltage(self, x0, v_V, duration_s):
        """Exact state after holding the device voltage at ``v_V`` for ``duration_s``."""

    @abstractmethod
    def pulse_response(self, x0, amplitude_V, width_s, edge_s, r_series_ohm, g_low_S=None,
                       g_high_S=None, conductance_factor=1.0) -> PulseResponse:
        """One trapezoidal source pulse per device (``PulseSpec``'s shape: 0 V for one edge, a linear
        rise over one edge, the flat top, a linear fall, 0 V for one more edge) through
        ``r_series_ohm``. Arguments broadcast to shape (n,); all-scalar arguments may return floats."""

    @property
    def retention(self) -> Retention:
        """What the preset claims about its unbiased state (checked by the contract tests)."""
        return Retention()

    def max_read_voltage_V(self) -> float:
        """The largest read voltage that leaves the state alone (the contract tests check a read)."""
        return 0.3

    # -- time since programming ------------------------------------------------------------------------
    def draw_programming_memory(self, x_after, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """What is fixed when devices are programmed to states ``x_after`` (arrays of that shape)."""
        return {}

    def read_inputs(self, x, memory: dict[str, np.ndarray], since_s, rng: np.random.Generator | None
                    ) -> dict[str, np.ndarray]:
        """Instance inputs of a read ``since_s`` after programming (rng None: no read noise)."""
        return {}

    def conductance_factor(self, inputs: dict[str, np.ndarray]):
        """What ``read_inputs`` multiply the read conductance by (1 for a model that does not age)."""
        return 1.0

    # -- statistics of a programmed array (network tiles) ------------------------------------------------
    def programmed_conductance_S(self, g_target_S, rng: np.random.Generator):
        """The conductance an iterative programming to ``g_target_S`` leaves, with the model's
        statistical programming error (a tile's write, without simulating the pulses); exact unless
        the model has such statistics."""
        return np.asarray(g_target_S, dtype=float)

    def read_noise_std_relative(self, x, since_s):
        """Relative σ of the read noise of a device at state ``x``, ``since_s`` after programming."""
        return np.zeros(np.broadcast_shapes(np.shape(x), np.shape(since_s)))

    # -- the SPICE form ----------------------------------------------------------------------------------
    @abstractmethod
    def spice_subcircuit(self) -> SpiceSubcircuit:
        """The ngspice subcircuit of this model and parameter set."""

    @property
    def library_file(self) -> str:
        """The file in ``models/`` that holds this model's subcircuits."""
        return f"{self.family}.lib"

    def instance_values(self, x: float, inputs: dict | None = None) -> dict[str, float]:
        """Instance parameters of one device: its stored state and any read inputs (name → value)."""
        sub = self.spice_subcircuit()
        values = {sub.state_parameter: float(x)}
        for name, _, default in sub.inputs[1:]:
            values[name] = float((inputs or {}).get(name, default))
        return values

    def max_time_step_s(self, width_s: float, edge_s: float) -> float:
        """ngspice's maximum internal step for a pulse transient of this model."""
        return min(width_s / 50.0, max(edge_s, width_s / 200.0))

    # -- parameters ------------------------------------------------------------------------------------
    @property
    def parameter_fields(self) -> tuple[str, ...]:
        """Fields a config may override (``device.overrides``) or a fit may change."""
        return tuple(f.name for f in dataclasses.fields(self) if f.name not in NOT_PARAMETERS)

    def replace(self, **changes) -> DeviceModel:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def describe(self) -> dict:
        """Every parameter by name, for reports and stored runs."""
        return {"family": self.family, **dataclasses.asdict(self)}


class LinearConductance:
    """A model whose read conductance is linear in the state between its window ends:
    G = g_low + x (g_high − g_low) (M-SDC's parallel mix, PCM's crystalline fraction)."""

    def _window(self, g_low_S, g_high_S):
        return (self.g_low_S if g_low_S is None else g_low_S), (self.g_high_S if g_high_S is None else g_high_S)

    def conductance_S(self, x, g_low_S=None, g_high_S=None):
        low, high = self._window(g_low_S, g_high_S)
        return low + (high - low) * np.asarray(x, dtype=float)

    def state_from_conductance(self, g_S, g_low_S=None, g_high_S=None):
        low, high = self._window(g_low_S, g_high_S)
        return (np.asarray(g_S, dtype=float) - low) / (high - low)


# ---- the two-rate form ----------------------------------------------------------------------------------
# Sub-steps of the generic pulse integrator: the device voltage moves by at most this fraction of the
# model's ``rate_voltage_scale_V`` per ramp sub-step, and a flat-top sub-step moves the state by at most
# MAX_FLAT_MOVEMENT (where the state still moves; a saturated state adds no error).
RAMP_RESOLUTION = 0.25
MAX_FLAT_MOVEMENT = 0.01
MAX_SUBSTEPS = 512
# The device voltage depends on the state through the series divider: the sub-step states are iterated
# to a fixed point (each pass shrinks the error by R·dG/dx · d ln(rate)/dV, well below 1 in practice).
MAX_CORRECTIONS = 12
CORRECTION_TOLERANCE = 1e-11
DEVICE_CHUNK = 1024   # devices per block of the pulse integrator: bounds its (devices, sub-steps) arrays


class TwoRateModel(DeviceModel):
    """A model whose state equation is dx/dt = a(V)(1 − x) − b(V) x with a, b ≥ 0.

    Subclasses write ``rates_per_s(v) -> (a, b)`` and ``rate_voltage_scale_V`` (the device voltage
    over which the rates change by about e where they change fastest; it sets the ramp resolution).
    """

    rate_voltage_scale_V: ClassVar[float] = 0.025

    @abstractmethod
    def rates_per_s(self, v_V) -> tuple[np.ndarray, np.ndarray]:
        """(a, b): the rates toward the high (x = 1) and the low (x = 0) end at device voltage ``v_V``."""

    def state_rate_per_s(self, x, v_V):
        a, b = self.rates_per_s(v_V)
        x = np.asarray(x, dtype=float)
        return (1.0 - x) * a - x * b

    def max_read_voltage_V(self) -> float:
        """The largest |V| (on a grid from 1 µV to 1 V, both polarities) at which the state moves at
        most 1/s from anywhere in its range, or at most twice as fast as an unbiased device does for
        a volatile one: a 1 ms read moves the state by < 1e-3, or disturbs no more than resting.
        (For the two-rate form the fastest movement at V is max(a(V), b(V)), at the window ends.)"""
        a0, b0 = self.rates_per_s(0.0)
        limit = max(1.0, 2.0 * float(max(a0, b0)))
        grid = np.unique(np.concatenate([np.geomspace(1e-6, 1e-3, 61), np.arange(1, 1001) * 1e-3]))
        fastest = np.maximum(np.maximum(*self.rates_per_s(grid)), np.maximum(*self.rates_per_s(-grid)))
        safe = fastest <= limit
        if safe.all():
            return 1.0
        first_unsafe = int(np.argmin(safe))
        return float(grid[first_unsafe - 1]) if first_unsafe > 0 else 0.0

    def state_after_constant_voltage(self, x0, v_V, duration_s):
        """x(t) = x0 e^(−kt) + a (1 − e^(−kt))/k, k = a + b: exact, and exact as k → 0."""
        a, b = self.rates_per_s(v_V)
        k = np.asarray(a + b, dtype=float)
        t = np.asarray(duration_s, dtype=float)
        kt = k * t
        growth = np.where(kt > 1e-12, -np.expm1(-kt) / np.where(kt > 1e-12, k, 1.0), t)
        return np.asarray(x0, dtype=float) * np.exp(-kt) + a * growth

    def pulse_response(self, x0, amplitude_V, width_s, edge_s, r_series_ohm, g_low_S=None,
                       g_high_S=None, conductance_factor=1.0) -> PulseResponse:
        scalar = all(np.ndim(a) == 0 for a in (x0, amplitude_V, width_s, edge_s, r_series_ohm, g_low_S,
                                                 g_high_S, conductance_factor))
        g_low_S = self.g_low_S if g_low_S is None else g_low_S
        g_high_S = self.g_high_S if g_high_S is None else g_high_S
        arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(a, dtype=float))
                                       for a in (x0, amplitude_V, width_s, edge_s, r_series_ohm,
                                                 g_low_S, g_high_S, conductance_factor)))
        x, amp, width, edge, r, g_lo, g_hi, factor = (np.array(a) for a in arrays)
        out_x, out_dev, out_src = np.empty_like(x), np.empty_like(x), np.empty_like(x)
        for first in range(0, len(x), DEVICE_CHUNK):
            block = slice(first, first + DEVICE_CHUNK)
            out_x[block], out_dev[block], out_src[block] = self._integrate_pulse(
                x[block], amp[block], width[block], edge[block], r[block], g_lo[block], g_hi[block],
                factor[block])
        lo, hi = self.state_bounds
        response = PulseResponse(np.clip(out_x, lo, hi), out_dev, out_src, 4 * edge + width)
        if scalar:
            return PulseResponse(*(float(a[0]) for a in dataclasses.astuple(response)))
        return response

    def _integrate_pulse(self, x, amp, width, edge, r, g_lo, g_hi, factor):
        """Exponential integrator over sub-steps, vectorised over devices and sub-steps.

        Over a sub-step the device voltage is held at its midpoint value, for which the two-rate
        equation is solved exactly; the states at every sub-step follow from one accumulated sum
        (``_two_rate_trajectory``). A predictor takes the divider at the segment's start state, a
        corrector at the predicted sub-step midpoints, repeated to a fixed point.
        """
        x = self.state_after_constant_voltage(x, 0.0, edge)               # delay at 0 V
        e_dev = np.zeros_like(x)
        e_src = np.zeros_like(x)
        for start, stop, duration in ((0.0, 1.0, edge), (1.0, 1.0, width), (1.0, 0.0, edge)):
            n = self._substeps(x, amp, duration, start != stop)
            fraction = (np.arange(n) + 0.5) / n                            # sub-step midpoints
            s = amp[:, None] * (start + (stop - start) * fraction[None, :])  # source voltage (m, n)
            dt = (duration / n)[:, None]
            mid = np.repeat(x[:, None], n, axis=1)
            for _ in range(MAX_CORRECTIONS):          # the divider at the trajectory: a fixed point
                g = self.conductance_S(mid, g_lo[:, None], g_hi[:, None]) * factor[:, None]
                v = s / (1.0 + r[:, None] * g)
                a, b = self.rates_per_s(v)
                states = _two_rate_trajectory(x, a * dt, (a + b) * dt)     # (m, n + 1)
                previous, mid = mid, 0.5 * (states[:, :-1] + states[:, 1:])
                if np.max(np.abs(mid - previous)) < CORRECTION_TOLERANCE:
                    break
            g = self.conductance_S(mid, g_lo[:, None], g_hi[:, None]) * factor[:, None]
            divider = 1.0 / (1.0 + r[:, None] * g)
            current = s * g * divider
            e_dev += np.sum(s * divider * current * dt, axis=1)
            e_src += np.sum(s * current * dt, axis=1)
            x = states[:, -1]
        x = self.state_after_constant_voltage(x, 0.0, edge)               # settle at 0 V
        return x, e_dev, e_src

    def _substeps(self, x, amp, duration, ramp: bool) -> int:
        if ramp:
            n = np.max(np.abs(amp)) / (RAMP_RESOLUTION * self.rate_voltage_scale_V)
        else:
            a, b = self.rates_per_s(amp)
            movement = np.minimum((a + b) * duration, 20.0)
            n = np.max(movement) / MAX_FLAT_MOVEMENT
        return int(min(MAX_SUBSTEPS, max(2, math.ceil(float(n)))))


def _two_rate_trajectory(x0, a_dt, b_dt):
    """States at every sub-step boundary of x' = a(1 − x) − b x with per-sub-step constant rates.

    ``a_dt`` = ∫a, ``b_dt`` = ∫(a + b) over each sub-step, shapes (m, n). Returns (m, n + 1):
    x_k = e^{−S_k} (x0 + Σ_{j<k} d_j e^{S_{j+1}}), S the cumulative sum of ``b_dt`` and
    d_j = a_j (1 − e^{−B_j})/B_j the sub-step's own contribution. The sum is accumulated in log
    space (``logaddexp``), so however stiff the rates nothing overflows.
    """
    small = b_dt < 1e-12
    d = np.where(small, a_dt, a_dt * -np.expm1(-b_dt) / np.where(small, 1.0, b_dt))
    cumulative = np.cumsum(b_dt, axis=1)                                   # S_1..S_n
    with np.errstate(divide="ignore"):
        log_terms = np.log(d) + cumulative                                 # log(d_j) + S_{j+1}
    accumulated = np.logaddexp.accumulate(log_terms, axis=1)
    states = np.empty((a_dt.shape[0], a_dt.shape[1] + 1))
    states[:, 0] = x0
    states[:, 1:] = np.exp(-cumulative) * x0[:, None] + np.exp(accumulated - cumulative)
    return states


# ---- the registry ------------------------------------------------------------------------------------
_REGISTRY: dict[str, DeviceModel] = {}
_DISCOVERED = False


def register(*models: DeviceModel) -> None:
    """Make models available by name (``preset``); a later model of the same name replaces it."""
    for model in models:
        if not isinstance(model, DeviceModel):
            raise ConfigError("device", type(model).__name__, "a DeviceModel")
        _REGISTRY[model.medium.lower()] = model


def _discover() -> None:
    """Import every module of this package once and register its ``PRESETS``."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    package = importlib.import_module(__package__)
    modules = [importlib.import_module(f"{__package__}.{info.name}")
               for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name)]
    # A module may set PRESET_ORDER to be listed earlier (the paper's media first); then by name.
    for module in sorted(modules, key=lambda m: getattr(m, "PRESET_ORDER", 100)):
        register(*getattr(module, "PRESETS", ()))


def presets() -> dict[str, DeviceModel]:
    """Every registered model by its preset name, in registration order."""
    _discover()
    return {model.medium: model for model in _REGISTRY.values()}


def preset(name: str) -> DeviceModel:
    """The model of preset ``name`` (case-insensitive: 'W', 'Cr', 'C', 'PCM', ...)."""
    _discover()
    model = _REGISTRY.get(str(name).lower()) if isinstance(name, str) else None
    if model is None:
        raise ConfigError("device.medium", name, "one of " + ", ".join(presets()))
    return model


# ---- reference integrators -----------------------------------------------------------------------------
def _check_waveform(t_s, v_source_V) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(t_s, dtype=float)
    v_source = np.asarray(v_source_V, dtype=float)
    if t.ndim != 1 or t.shape != v_source.shape or t.size < 2 or np.any(np.diff(t) <= 0):
        raise ValueError("t_s and v_source_V must be 1-D, equally long, and t_s strictly increasing")
    return t, v_source


def simulate_waveform(model: DeviceModel, x0: float, t_s, v_source_V, r_series_ohm: float = 0.0,
                      rtol: float = 1e-8, atol: float = 1e-10):
    """Drive one device from state ``x0`` with a piecewise-linear source through ``r_series_ohm``;
    ``(x, v_device_V, i_A)`` at the waveform's own times (the NumPy side of the device curves).

    scipy's LSODA on the model's ``state_rate_per_s`` (stiff at large |V|), never stepping over a
    corner of the waveform."""
    from scipy.integrate import solve_ivp

    t, v_source = _check_waveform(t_s, v_source_V)
    low, high = model.state_bounds

    def rate(time, state):
        v_dev = model.device_voltage_V(state, np.interp(time, t, v_source), r_series_ohm)
        return model.state_rate_per_s(state, v_dev)

    solution = solve_ivp(rate, (t[0], t[-1]), [float(x0)], method="LSODA", t_eval=t,
                         max_step=float(np.min(np.diff(t))), rtol=rtol, atol=atol)
    if not solution.success:
        raise RuntimeError(f"state integration failed: {solution.message}")
    x = np.clip(solution.y[0], low, high)
    v_dev = model.device_voltage_V(x, v_source, r_series_ohm)
    return x, v_dev, model.current_A(x, v_dev)


def integrate_waveform(model: DeviceModel, x0: float, t_s, v_source_V, r_series_ohm: float = 0.0,
                       rtol: float = 1e-9, atol: float = 1e-12):
    """Drive one device from state ``x0`` with a piecewise-linear source through ``r_series_ohm``.

    The reference the contract tests hold ``pulse_response`` to: scipy's Radau on the model's own
    ``state_rate_per_s`` (stiff rates), the device voltage from its divider, and the energies
    ∫V·I dt as extra integrated states. Returns ``(x, energy_device_J, energy_source_J)`` at the
    waveform's last time.
    """
    from scipy.integrate import solve_ivp

    t, v_source = _check_waveform(t_s, v_source_V)

    def rate(time, y):
        s = float(np.interp(time, t, v_source))
        x = float(y[0])
        v = float(model.device_voltage_V(x, s, r_series_ohm))
        i = float(model.current_A(x, v))
        return [float(model.state_rate_per_s(x, v)), v * i, s * i]

    # Never step over a corner of the waveform.
    y, start = [float(x0), 0.0, 0.0], t[0]
    for stop in t[1:]:
        solution = solve_ivp(rate, (start, stop), y, method="Radau", rtol=rtol, atol=[atol, 1e-30, 1e-30])
        if not solution.success:
            raise RuntimeError(f"state integration failed: {solution.message}")
        y, start = list(solution.y[:, -1]), stop
    return y[0], y[1], y[2]
