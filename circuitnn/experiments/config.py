"""Configuration: TOML files loaded into frozen dataclasses, with a preset per medium.

A preset (``circuitnn/presets/<medium>.toml``) holds every value of a run; a user file names a
preset and overrides what it wants. Unknown keys, wrong types and out-of-range values fail with a
``ConfigError`` giving the dotted path, the value and the allowed range.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ..circuits.crossbar import CrossbarSpec, LayerSpec, NeuronMismatch, NeuronSpec
from ..circuits.default import feedback_resistance_ohm
from ..chip.protocol import ChipTiming
from ..circuits.program import ProgrammingPath, PulseSpec
from ..devices.base import DeviceModel, presets
from ..devices.base import preset as device_preset
from ..errors import ConfigError
from ..training.software import SoftwareTrainingConfig
from ..training.trainer import Trainer
from ..training.trainer import trainer as trainer_class
from ..training.tuning import TuningConfig
from ..validation import check_range, read_bounded_text


@dataclass(frozen=True)
class DeviceConfig:
    medium: str = "Cr"
    # Any parameter of the medium's model, e.g. r_on_ohm = 4800.0, replaces the preset's value.
    overrides: dict = field(default_factory=dict)

    def params(self) -> DeviceModel:
        base = device_preset(self.medium)
        fields = base.parameter_fields
        for key in self.overrides:
            if key not in fields:
                raise ConfigError(_join("device.overrides", key), self.overrides[key],
                                  f"a model field of {base.medium}: " + ", ".join(fields))
        if not self.overrides:
            return base
        note = ", ".join(f"{k}={v}" for k, v in self.overrides.items())
        try:
            return base.replace(**self.overrides, provenance=f"{base.provenance}; overridden: {note}")
        except ConfigError as exc:  # name the field where the user wrote it
            field_name = exc.path.rsplit(".", 1)[-1]
            raise ConfigError(f"device.overrides.{field_name}", exc.value, exc.allowed) from None


@dataclass(frozen=True)
class NeuronConfig:
    r_feedback_ohm: float | None = None  # None: the design rule of circuits/default.py
    open_loop_gain: float = 1e5
    v_rail_V: float = 2.5
    v_offset_V: float = 0.0
    activation: str = "sigmoid"
    activation_gain_per_V: float = 4.0
    w_full_scale: float = 4.0


@dataclass(frozen=True)
class MismatchConfig:
    """Neuron-circuit mismatch, drawn per chip (a Monte-Carlo instance of every neuron circuit).

    The σ's are our choice of scale (no source gives them for this circuit): 1 % resistor
    tolerance and a few mV of offset are ordinary for discrete parts and large for matched on-chip
    ones. ``instance`` picks the chip: the same seed and instance draw the same deviations.
    Ex-situ mapping never sees them (it programs nominal targets); what is measured on the chip does.
    """

    feedback_sigma: float = 0.0        # relative σ of each TIA feedback resistor (TIA gain)
    offset_sigma_V: float = 0.0        # σ of each op-amp's input offset voltage
    gain_sigma: float = 0.0            # relative σ of each activation stage's gain
    threshold_sigma_V: float = 0.0     # σ of each activation stage's threshold
    reference_sigma: float = 0.0       # relative σ of each reference resistor ("single" weights)
    instance: int = 0

    def __post_init__(self) -> None:
        for name in ("feedback_sigma", "gain_sigma", "reference_sigma"):
            check_range(f"circuit.mismatch.{name}", getattr(self, name), 0.0, 1.0, True)
        for name in ("offset_sigma_V", "threshold_sigma_V"):
            check_range(f"circuit.mismatch.{name}", getattr(self, name), 0.0, 0.5, True)
        check_range("circuit.mismatch.instance", self.instance, 0, 2**31 - 1, True)

    @property
    def any(self) -> bool:
        return any(getattr(self, name) > 0 for name in ("feedback_sigma", "offset_sigma_V", "gain_sigma",
                                                         "threshold_sigma_V", "reference_sigma"))

    def scaled(self, level: float) -> MismatchConfig:
        """Every σ × ``level`` (a mismatch sweep)."""
        return dataclasses.replace(self, **{name: getattr(self, name) * level for name in (
            "feedback_sigma", "offset_sigma_V", "gain_sigma", "threshold_sigma_V", "reference_sigma")})

    def draw(self, layer_sizes, seed: int) -> list:
        """Per layer, its ``NeuronMismatch`` (None for all when every σ is 0)."""
        if not self.any:
            return [None] * len(layer_sizes)
        rngs = [np.random.default_rng([seed, 5, self.instance, l]) for l in range(len(layer_sizes))]
        return [NeuronMismatch.draw(n, rng, self.feedback_sigma, self.offset_sigma_V, self.gain_sigma,
                                    self.threshold_sigma_V, self.reference_sigma)
                for n, rng in zip(layer_sizes, rngs)]


@dataclass(frozen=True)
class CircuitConfig:
    layers: tuple[int, ...] = (9, 3, 1)
    weights: str = "single"
    v_read_V: float = 0.1
    r_driver_ohm: float = 10.0
    r_line_ohm: float = 1.0
    r_sense_ohm: float = 10.0
    r_switch_on_ohm: float = 100.0
    g_ref_S: float | None = None
    neuron: NeuronConfig = NeuronConfig()
    mismatch: MismatchConfig = MismatchConfig()


MAPPINGS = ("circuit", "switch")


@dataclass(frozen=True)
class OnChipConfig:
    """The on-chip training reproduction: data sizes, the mapping and the sweeps."""

    n_test_per_class: int = 100
    test_noise: float = 0.10             # pixel-flip probability of the test set
    target_margin: float = 0.05          # keep targets this fraction of the window from its ends
    mapping: str = "circuit"             # "circuit": targets solved through the array; "switch": switch only
    initial_state_low: float = 0.0       # devices start at seeded random states in [low, high]
    initial_state_high: float = 1.0      # (their as-found state before any tuning)
    conductance_errors: tuple[float, ...] = (0.0, 0.025, 0.05, 0.075, 0.10, 0.125, 0.15, 0.175, 0.20)
    error_draws: int = 5
    noise_levels: tuple[float, ...] = (0.0, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30)


@dataclass(frozen=True)
class TrainerConfig:
    """Which on-chip trainer runs (``kind``, a module of ``circuitnn/training/``) and its own
    settings (``[trainer.settings]``, that trainer's dataclass; checked at load time)."""

    kind: str = "write-verify"
    settings: dict = field(default_factory=dict)
    variants: tuple[str, ...] = ()     # which of the trainer's variants run; empty: all of them


@dataclass(frozen=True)
class CurvesConfig:
    sweep_amplitude_V: float = 1.0
    sweep_frequency_Hz: float = 100.0
    sweep_cycles: int = 2
    points_per_cycle: int = 400
    pulses: int = 20


@dataclass(frozen=True)
class Config:
    seed: int = 0
    device: DeviceConfig = DeviceConfig()
    circuit: CircuitConfig = CircuitConfig()
    programming: ProgrammingPath = ProgrammingPath()
    tuning: TuningConfig = TuningConfig()
    timing: ChipTiming = ChipTiming()
    training: SoftwareTrainingConfig = SoftwareTrainingConfig()
    onchip: OnChipConfig = OnChipConfig()
    curves: CurvesConfig = CurvesConfig()
    trainer: TrainerConfig = TrainerConfig()

    def __post_init__(self) -> None:
        check_range("seed", self.seed, 0, 2**32 - 1, True)
        c = self.curves
        check_range("curves.sweep_amplitude_V", c.sweep_amplitude_V, 0.0, 10.0)
        # At least 1 mHz: a slower sweep would simulate longer than the engine's transient limit.
        check_range("curves.sweep_frequency_Hz", c.sweep_frequency_Hz, 1e-3, 1e9, True)
        check_range("curves.sweep_cycles", c.sweep_cycles, 0, 100)
        check_range("curves.points_per_cycle", c.points_per_cycle, 20, 100_000, True)
        check_range("curves.pulses", c.pulses, 0, 10_000)
        check_range("circuit.neuron.w_full_scale", self.circuit.neuron.w_full_scale, 0.0, 1e3)
        o = self.onchip
        check_range("onchip.n_test_per_class", o.n_test_per_class, 1, 1_000_000, True)
        check_range("onchip.test_noise", o.test_noise, 0.0, 0.5, True)
        check_range("onchip.target_margin", o.target_margin, 0.0, 0.49, True)
        if o.mapping not in MAPPINGS:
            raise ConfigError("onchip.mapping", o.mapping, "one of " + ", ".join(MAPPINGS))
        check_range("onchip.initial_state_low", o.initial_state_low, 0.0, 1.0, True)
        check_range("onchip.initial_state_high", o.initial_state_high, o.initial_state_low, 1.0, True)
        check_range("onchip.error_draws", o.error_draws, 1, 10_000, True)
        for path, values in (("onchip.conductance_errors", o.conductance_errors),
                             ("onchip.noise_levels", o.noise_levels)):
            if not 1 <= len(values) <= 100:
                raise ConfigError(path, list(values), "a list of 1 to 100 values")
        for i, value in enumerate(o.conductance_errors):
            check_range(f"onchip.conductance_errors[{i}]", value, 0.0, 1.0, True)
        for i, value in enumerate(o.noise_levels):
            check_range(f"onchip.noise_levels[{i}]", value, 0.0, 0.5, True)
        # Build everything once so an invalid value fails at load time, not mid-experiment.
        self.crossbar_spec()
        self.software_training()
        self.make_trainer()

    # -- the objects the library works with ---------------------------------------------------------
    def crossbar_spec(self, name: str | None = None) -> CrossbarSpec:
        """The circuit of this config; with ``circuit.mismatch`` σ's its neurons are this chip's
        drawn instance (``CrossbarSpec.nominal()`` is what an ex-situ mapping designs for)."""
        device, c = self.device.params(), self.circuit
        if not 2 <= len(c.layers) <= 16:
            raise ConfigError("circuit.layers", list(c.layers), "2 to 16 sizes (inputs, then each layer's outputs)")
        n = c.neuron
        # Only an omitted value means "the design rule"; an explicit one (0 included) is checked as given.
        r_f = n.r_feedback_ohm
        if r_f is None:
            r_f = feedback_resistance_ohm(device, c.v_read_V, n.activation_gain_per_V, n.w_full_scale)
        neuron = NeuronSpec(r_f, n.open_loop_gain, n.v_rail_V, n.v_offset_V, n.activation,
                            n.activation_gain_per_V)
        neuron.validate("circuit.neuron")
        mismatch = c.mismatch.draw(c.layers[1:], self.seed)
        layers = tuple(LayerSpec(a, b, neuron, m) for a, b, m in zip(c.layers[:-1], c.layers[1:], mismatch))
        return CrossbarSpec(
            name=name or f"default_{device.medium.lower()}", device=device, layers=layers,
            weights=c.weights, g_ref_S=c.g_ref_S, v_read_V=c.v_read_V, r_driver_ohm=c.r_driver_ohm,
            r_line_ohm=c.r_line_ohm, r_sense_ohm=c.r_sense_ohm, r_switch_on_ohm=c.r_switch_on_ohm,
            seed=self.seed)

    def make_trainer(self) -> Trainer:
        """The configured trainer, with its settings checked (``trainer.settings.<field>``)."""
        cls = trainer_class(self.trainer.kind)
        if not dataclasses.fields(cls.settings_type) and self.trainer.settings:
            key = next(iter(self.trainer.settings))
            raise ConfigError(_join("trainer.settings", key), self.trainer.settings[key],
                              f"nothing: trainer {cls.name} has no settings of its own (set trainer.kind?)")
        settings = from_dict(cls.settings_type, self.trainer.settings, "trainer.settings")
        for i, variant in enumerate(self.trainer.variants):
            if variant not in cls.variants or variant in self.trainer.variants[:i]:
                raise ConfigError(f"trainer.variants[{i}]", variant,
                                  f"one of {', '.join(cls.variants)} (trainer {cls.name}), each once")
        return cls(settings, self.tuning, self.seed)

    def trainer_variants(self) -> tuple[str, ...]:
        """The variants a run trains, in the trainer's order."""
        chosen = self.trainer.variants or trainer_class(self.trainer.kind).variants
        return tuple(v for v in trainer_class(self.trainer.kind).variants if v in chosen)

    def programming_path(self) -> ProgrammingPath:
        return self.programming

    def set_pulse(self) -> PulseSpec:
        return self.tuning.pulse(+1, self.tuning.pulse_width_s)

    def reset_pulse(self) -> PulseSpec:
        return self.tuning.pulse(-1, self.tuning.width_s(-1, 0))

    def software_training(self) -> SoftwareTrainingConfig:
        """The software trainer's settings, for this circuit's layer sizes and this seed."""
        return dataclasses.replace(self.training, layer_sizes=tuple(self.circuit.layers), seed=self.seed)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# -- loading -------------------------------------------------------------------------------------------
def preset_names() -> list[str]:
    return list(presets())


def preset_text(name: str) -> str:
    """The TOML text of a medium's preset."""
    key = device_preset(name).medium
    return resources.files("circuitnn.presets").joinpath(f"{key}.toml").read_text()


def load_config(path: str | Path | None = None, medium_name: str | None = None,
                trainer_kind: str | None = None) -> Config:
    """A ``Config`` from a TOML file, a preset (``medium_name``), or both (file overrides preset).

    A file may name its preset with ``preset = "W"``; with neither, the Cr preset is used. With
    ``medium_name`` the file's ``preset`` and ``device.medium`` are still checked (they are replaced,
    never ignored unread). ``trainer_kind`` replaces ``trainer.kind`` likewise.
    """
    return config_from_table(_read_toml(Path(path)) if path is not None else {}, medium_name, trainer_kind)


def config_from_table(table: dict, medium_name: str | None = None, trainer_kind: str | None = None) -> Config:
    """A ``Config`` from the contents of a config file (a dict as TOML reads it), as ``load_config``
    builds it: ``preset`` (or ``medium_name``) chooses the preset, every other key overrides it."""
    user = dict(table)
    file_preset = user.pop("preset", None)
    if file_preset is not None:
        _medium_name(file_preset, "preset")
    device = user.get("device")
    if device is not None and not isinstance(device, dict):
        raise ConfigError("device", device, "a table")
    if device is not None and "medium" in device:
        _medium_name(device["medium"], "device.medium")
    preset = _medium_name(medium_name, "device.medium") if medium_name else file_preset or "Cr"
    base = tomllib.loads(preset_text(preset))
    merged = _merge(base, user)
    if medium_name:
        merged.setdefault("device", {})["medium"] = preset
    if trainer_kind:  # the command line's choice, before the file's [trainer.settings] are checked
        trainer_table = merged.setdefault("trainer", {})
        if not isinstance(trainer_table, dict):
            raise ConfigError("trainer", trainer_table, "a table")
        trainer_table["kind"] = trainer_kind
    return from_dict(Config, merged, "")


MAX_CONFIG_BYTES = 2**20


def _read_toml(path: Path) -> dict:
    """The TOML document at ``path``; ConfigError naming the file if it cannot be read or parsed."""
    # Bounded: --config /dev/zero must not fill the memory. utf-8-sig: a byte-order mark (Windows
    # editors write one) is not part of the document.
    text = read_bounded_text(
        path, MAX_CONFIG_BYTES, "utf-8-sig",
        unreadable=lambda reason: ConfigError(str(path), "(file)", f"a readable file ({reason})"),
        too_large=lambda: ConfigError(str(path), "(file)", f"a config file of at most {MAX_CONFIG_BYTES // 2**20} MiB"),
        not_text=lambda byte: ConfigError(str(path), "(file)", f"UTF-8 text (byte {byte} is not UTF-8)"))
    try:
        return tomllib.loads(text)
    except (ValueError, RecursionError) as exc:  # TOMLDecodeError, or an integer past Python's digit limit
        raise ConfigError(str(path), "(file)", f"valid TOML ({str(exc).splitlines()[0][:120]})") from None


def _medium_name(value, path: str) -> str:
    """The canonical name of a registered preset ('W', 'Cr', 'PCM', ...); ConfigError naming ``path`` otherwise."""
    names = presets()
    if not isinstance(value, str) or not any(value.lower() == key.lower() for key in names):
        raise ConfigError(path, value, "one of " + ", ".join(names))
    return device_preset(value).medium


def _merge(base: dict, override: dict) -> dict:
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict) and key != "overrides":
            result[key] = _merge(result[key], value)
        else:
            result[key] = value
    return result


def from_dict(cls, data: dict, path: str):
    """Build dataclass ``cls`` from a dict, checking keys and types; errors carry dotted paths."""
    if not isinstance(data, dict):
        raise ConfigError(path or "(root)", data, "a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            raise ConfigError(_join(path, key), data[key], "a known field: " + ", ".join(sorted(known)))
    values = {}
    for name in known & data.keys():
        values[name] = _convert(hints[name], data[name], _join(path, name))
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(path or "(root)", data, str(exc)) from None


def _convert(hint, value, path: str):
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, path)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if value is None else _convert(options[0], value, path)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(path, value, "a list")
        if len(value) > 10_000:
            raise ConfigError(path, f"a list of {len(value)} values", "at most 10000 values")
        item = typing.get_args(hint)[0]
        return tuple(_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(path, value, "a table")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, value, "true or false")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, value, "a number")
        try:
            return float(value)
        except OverflowError:  # an integer of hundreds of digits
            raise ConfigError(path, value, "a number of magnitude at most 1e308") from None
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, value, "an integer")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(path, value, "a string")
        return value
    raise TypeError(f"unsupported config type {hint!r} at {path}")


def _join(path: str, key: str) -> str:
    """``path.key``; a key that is not a plain name (a line break, a quote, a dot) is shown quoted
    and escaped, ``path["a b"]``, so the dotted path stays one unambiguous line."""
    if isinstance(key, str) and _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(str(key))[:80]}]"


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
