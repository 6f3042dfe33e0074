"""Crossbar networks of memristive devices with op-amp neurons, rendered as ngspice netlists.

Any device model of ``circuitnn.devices`` (``DeviceModel``) can sit at the crosspoints.

Topology of one layer (N inputs × M neurons), as a designer would draw it:

    input DAC ─ R_driver ─ row line (R_line per crosspoint) ─┬─ S_sel ─ memristor ─┬─ column line ...
                                                              ...                     │
    column line (R_line per crosspoint) ─ R_sense ─ summing node ─ op-amp TIA (R_f) ─ activation ─►

* **Neuron**: an inverting transimpedance stage (finite open-loop gain A, input offset, output
  clamped to ±V_rail) followed by a behavioural activation stage (sigmoid, tanh or linear) whose
  full-scale output is the read voltage, so it drives the next layer's rows directly.
* **Negative weights** with one device per weight ("single"): each neuron also receives a reference
  current −G_ref·Σ v_i, made by a summing inverter of the layer's inputs feeding one resistor
  1/G_ref into the summing node. The net column current is Σ v_i (G_ij − G_ref), so a device above
  G_ref is a positive weight and one below it a negative weight. With "differential" weights each
  weight is a pair: G+ on the row, G− on an inverted copy of the row, giving Σ v_i (G+ − G−).
* **Selection switches**: every device sits behind its selection switch (an ngspice ``S`` element,
  on-resistance R_switch_on) driven by the select line, closed for inference. During programming
  the array side is opened and the device alone is connected to the pulse generator
  (``program.py``), which is why a write simulates one device and its driver, not the array.

The network the circuit computes, in the software units used by trainers, is
``z_j = R_f V_read Σ_i x_i (G_ij − G_ref)``, ``h_j = activation(k z_j)`` with inputs x in [0, 1]
scaled to volts by V_read and activations in [0, 1] (sigmoid) scaled back to V_read.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

import numpy as np

from ..devices.base import DeviceModel
from ..errors import ConfigError
from ..validation import check_choice
from ..validation import check_range as _check
from .netlist import MIN_MAGNITUDE, Netlist, name, number

ACTIVATIONS = ("sigmoid", "tanh", "linear")
WEIGHT_SCHEMES = ("single", "differential")


@dataclass(frozen=True)
class NeuronSpec:
    """The op-amp neuron: TIA with feedback ``r_feedback_ohm``, then the activation stage."""

    r_feedback_ohm: float
    open_loop_gain: float = 1e5
    v_rail_V: float = 2.5
    v_offset_V: float = 0.0
    activation: str = "sigmoid"
    activation_gain_per_V: float = 4.0

    def validate(self, path: str) -> None:
        _check(f"{path}.r_feedback_ohm", self.r_feedback_ohm, 0.0, 1e9)
        _check(f"{path}.open_loop_gain", self.open_loop_gain, 1.0, 1e9, True)
        _check(f"{path}.v_rail_V", self.v_rail_V, 0.0, 100.0)
        _check(f"{path}.v_offset_V", self.v_offset_V, -1.0, 1.0, True)
        _check(f"{path}.activation_gain_per_V", self.activation_gain_per_V, 0.0, 1e3)
        check_choice(f"{path}.activation", self.activation, ACTIVATIONS)


@dataclass(frozen=True)
class NeuronMismatch:
    """One chip's drawn deviations of each neuron of a layer from its nominal ``NeuronSpec``
    (a Monte-Carlo instance of the layer's neuron circuits), one value per neuron:

    * ``feedback_scale``: R_f of the TIA is ``r_feedback_ohm × feedback_scale`` (resistor tolerance,
      i.e. TIA gain);
    * ``offset_V``: op-amp input offset, added to the nominal ``v_offset_V``;
    * ``gain_scale``: the activation stage's gain is ``activation_gain_per_V × gain_scale``;
    * ``threshold_V``: the activation stage's threshold, f(k (z − threshold));
    * ``reference_scale``: the reference resistor 1/G_ref is ``× reference_scale`` ("single" weights).
    """

    feedback_scale: tuple[float, ...]
    offset_V: tuple[float, ...]
    gain_scale: tuple[float, ...]
    threshold_V: tuple[float, ...]
    reference_scale: tuple[float, ...]

    FIELDS = ("feedback_scale", "offset_V", "gain_scale", "threshold_V", "reference_scale")

    def validate(self, path: str, n_outputs: int) -> None:
        for name_ in self.FIELDS:
            values = getattr(self, name_)
            if len(values) != n_outputs:
                raise ConfigError(f"{path}.{name_}", f"{len(values)} values", f"one per neuron ({n_outputs})")
            scale = name_.endswith("scale")
            for j, value in enumerate(values):
                if scale:
                    _check(f"{path}.{name_}[{j}]", value, 0.05, 20.0, True)
                else:
                    _check(f"{path}.{name_}[{j}]", value, -1.0, 1.0, True)

    def array(self, name_: str) -> np.ndarray:
        return np.asarray(getattr(self, name_), dtype=float)

    @classmethod
    def draw(cls, n_outputs: int, rng: np.random.Generator, feedback_sigma: float = 0.0,
             offset_sigma_V: float = 0.0, gain_sigma: float = 0.0, threshold_sigma_V: float = 0.0,
             reference_sigma: float = 0.0) -> NeuronMismatch:
        """Gaussian deviations: relative ones (1 + σ N(0, 1), kept ≥ 0.05) for the scales, absolute
        ones (σ N(0, 1) V) for offset and threshold. Every field draws its own n values in a fixed
        order, so one σ changed leaves the other fields' draws as they were."""
        def relative(sigma):
            return tuple(float(v) for v in np.maximum(1.0 + sigma * rng.standard_normal(n_outputs), 0.05))

        def absolute(sigma):
            return tuple(float(v) for v in np.clip(sigma * rng.standard_normal(n_outputs), -1.0, 1.0))

        return cls(relative(feedback_sigma), absolute(offset_sigma_V), relative(gain_sigma),
                   absolute(threshold_sigma_V), relative(reference_sigma))


@dataclass(frozen=True)
class LayerSpec:
    n_inputs: int
    n_outputs: int
    neuron: NeuronSpec
    mismatch: NeuronMismatch | None = None   # None: every neuron is the nominal one

    def neuron_values(self, name_: str) -> np.ndarray:
        """Per neuron (n_outputs,): the mismatch field ``name_`` (1 / 0 when nominal)."""
        if self.mismatch is None:
            return np.full(self.n_outputs, 0.0 if name_ in ("offset_V", "threshold_V") else 1.0)
        return self.mismatch.array(name_)


@dataclass(frozen=True)
class CrossbarSpec:
    """A feed-forward network of crossbar layers built from one device medium."""

    name: str
    device: DeviceModel
    layers: tuple[LayerSpec, ...]
    weights: str = "single"
    g_ref_S: float | None = None  # None: the middle of the device window (symmetric weights)
    v_read_V: float = 0.1
    r_driver_ohm: float = 0.0
    r_line_ohm: float = 0.0
    r_sense_ohm: float = 0.0
    r_switch_on_ohm: float = 100.0
    seed: int | None = None

    def __post_init__(self) -> None:
        name(self.name, "circuit.name")
        if not isinstance(self.device, DeviceModel):
            raise ConfigError("device", type(self.device).__name__, "a device model (circuitnn.devices)")
        check_choice("circuit.weights", self.weights, WEIGHT_SCHEMES)
        if not self.layers:
            raise ConfigError("circuit.layers", self.layers, "at least one layer")
        for index, layer in enumerate(self.layers):
            path = f"circuit.layers[{index}]"
            for field_name in ("n_inputs", "n_outputs"):
                value = getattr(layer, field_name)
                if not isinstance(value, int) or not 1 <= value <= 1024:
                    raise ConfigError(f"{path}.{field_name}", value, "an integer in [1, 1024]")
            if index and layer.n_inputs != self.layers[index - 1].n_outputs:
                raise ConfigError(f"{path}.n_inputs", layer.n_inputs,
                                  f"equal to the previous layer's n_outputs ({self.layers[index - 1].n_outputs})")
            layer.neuron.validate(f"{path}.neuron")
            if layer.mismatch is not None:
                layer.mismatch.validate(f"{path}.mismatch", layer.n_outputs)
        _check("circuit.v_read_V", self.v_read_V, 0.0, 0.3)
        for field_name in ("r_driver_ohm", "r_line_ohm", "r_sense_ohm"):
            _check(f"circuit.{field_name}", getattr(self, field_name), 0.0, 1e6, True)
        _check("circuit.r_switch_on_ohm", self.r_switch_on_ohm, 0.0, 1e6)
        if self.g_ref_S is not None:
            _check("circuit.g_ref_S", self.g_ref_S, self.device.g_low_S, self.device.g_high_S, True)

    @property
    def has_mismatch(self) -> bool:
        return any(layer.mismatch is not None for layer in self.layers)

    def nominal(self) -> CrossbarSpec:
        """This circuit with every neuron at its nominal values (what a designer maps for)."""
        return dataclasses.replace(self, layers=tuple(dataclasses.replace(layer, mismatch=None)
                                                      for layer in self.layers))

    @property
    def reference_conductance_S(self) -> float:
        if self.g_ref_S is not None:
            return self.g_ref_S
        return 0.5 * (self.device.g_high_S + self.device.g_low_S)


@dataclass(frozen=True)
class DeviceSite:
    """Where device number ``index`` sits: layer (0-based), row, column, and its sign (+1/−1);
    ``state_source`` and ``internal_state_node`` name the model's state holder inside the instance."""

    index: int
    instance: str
    layer: int
    row: int
    column: int
    sign: int
    state_source: str = "vx0"
    internal_state_node: str = "x"

    @property
    def state_target(self) -> str:
        """What to ``alter`` to set this device's stored state."""
        return f"v.{self.instance}.{self.state_source}"

    @property
    def state_node(self) -> str:
        return f"{self.instance}.{self.internal_state_node}"

    def input_target(self, source: str) -> str:
        """What to ``alter`` to set one of the instance's inputs (its DC source ``source``)."""
        return f"v.{self.instance}.{source}"


@dataclass(frozen=True)
class Crossbar:
    """A rendered-able circuit: the spec plus the names of everything a chip needs to touch."""

    spec: CrossbarSpec
    sites: tuple[DeviceSite, ...] = field(init=False)

    def __post_init__(self) -> None:
        sub = self.spec.device.spice_subcircuit()
        holder = {"state_source": sub.inputs[0][1], "internal_state_node": sub.state_node}
        sites = []
        polarities = ((1, "p"), (-1, "n")) if self.spec.weights == "differential" else ((1, ""),)
        for layer_index, layer in enumerate(self.spec.layers):
            for row in range(layer.n_inputs):
                for column in range(layer.n_outputs):
                    for sign, suffix in polarities:
                        instance = f"xl{layer_index + 1}_{row}_{column}{suffix}"
                        sites.append(DeviceSite(len(sites), instance, layer_index, row, column, sign, **holder))
        object.__setattr__(self, "sites", tuple(sites))

    @property
    def n_devices(self) -> int:
        return len(self.sites)

    @property
    def n_inputs(self) -> int:
        return self.spec.layers[0].n_inputs

    @property
    def n_neurons(self) -> int:
        return sum(layer.n_outputs for layer in self.spec.layers)

    def input_source(self, row: int) -> str:
        return f"vin{row}"

    def activation_node(self, layer: int, column: int) -> str:
        return f"l{layer + 1}a{column}"

    def tia_output_node(self, layer: int, column: int) -> str:
        return f"l{layer + 1}o{column}"

    def sense_nodes(self, layer: int, column: int) -> tuple[str, str]:
        """(column end, summing node): the column current is their difference over R_sense."""
        tag = f"l{layer + 1}"
        n_rows = self.spec.layers[layer].n_inputs
        end = f"{tag}c{column}" if self.spec.r_line_ohm == 0 else f"{tag}c{column}_{n_rows - 1}"
        return end, f"{tag}s{column}"

    @property
    def sense_resistance_ohm(self) -> float:
        """R_sense as written into the netlist (0 is written as 1 mΩ)."""
        return max(self.spec.r_sense_ohm, 1e-3)

    def output_nodes(self) -> list[str]:
        last = len(self.spec.layers) - 1
        return [self.activation_node(last, j) for j in range(self.spec.layers[-1].n_outputs)]

    def neuron_nodes(self) -> list[str]:
        """TIA output and activation nodes of every neuron, layer by layer."""
        nodes = []
        for layer_index, layer in enumerate(self.spec.layers):
            for j in range(layer.n_outputs):
                nodes += [self.tia_output_node(layer_index, j), self.activation_node(layer_index, j)]
        return nodes

    def driver_power_vectors(self) -> list[tuple[str, str]]:
        """(node voltage, branch current) of every source that drives the array: the input
        drivers, the inverted-row and reference generators, and hidden activations driving the next
        layer. Power into the array is −Σ V·I (a branch current flows into the source's + node)."""
        pairs = [(f"in{i}", f"{self.input_source(i)}#branch") for i in range(self.n_inputs)]
        for l, layer in enumerate(self.spec.layers):
            tag = f"l{l + 1}"
            if self.spec.weights == "single":
                pairs.append((f"{tag}ref", f"@bref{tag}[i]"))
            else:
                pairs += [(f"{tag}inv{i}", f"@binv{tag}_{i}[i]") for i in range(layer.n_inputs)]
            if l < len(self.spec.layers) - 1:
                pairs += [(self.activation_node(l, j), f"@bact{tag}_{j}[i]") for j in range(layer.n_outputs)]
        return pairs

    # -- values that change between runs ---------------------------------------------------------
    def _validated_states(self, states) -> np.ndarray:
        values = _as_floats(states, "states")
        if values.shape != (self.n_devices,):
            raise ConfigError("states", f"shape {values.shape}", f"shape ({self.n_devices},)")
        low, high = self.spec.device.state_bounds
        bad = np.flatnonzero(~np.isfinite(values) | (values < low) | (values > high))
        if bad.size:
            raise ConfigError(f"states[{bad[0]}]", float(values[bad[0]]), f"[{low:g}, {high:g}]")
        return _flush_tiny(values)

    def _validated_device_inputs(self, device_inputs) -> dict[str, np.ndarray]:
        """Per-device read inputs of an ageing model (name → (n_devices,) array); {} for none."""
        if not device_inputs:
            return {}
        sub = self.spec.device.spice_subcircuit()
        names = [name_ for name_, _, _ in sub.inputs[1:]]
        result = {}
        for key, values in device_inputs.items():
            if key not in names:
                raise ConfigError(f"device_inputs.{key}", key, "one of " + ", ".join(names or ["(none)"]))
            array = _as_floats(values, f"device_inputs.{key}")
            if array.shape not in ((), (1,), (self.n_devices,)):
                raise ConfigError(f"device_inputs.{key}", f"shape {array.shape}", f"one value or shape ({self.n_devices},)")
            array = np.broadcast_to(array, (self.n_devices,))
            if not np.all(np.isfinite(array)):
                raise ConfigError(f"device_inputs.{key}", "non-finite values", "finite numbers")
            result[key] = array
        return result

    def device_input_alters(self, device_inputs, indices=None) -> dict[str, str]:
        """``alter`` targets and values for per-device read inputs (``DeviceModel.read_inputs``)."""
        inputs = self._validated_device_inputs(device_inputs)
        sub = self.spec.device.spice_subcircuit()
        chosen = range(self.n_devices) if indices is None else indices
        return {self.sites[i].input_target(sub.source_of(key)): f"dc={number(float(values[i]))}"
                for key, values in inputs.items() for i in chosen}

    def _validated_inputs(self, inputs) -> np.ndarray:
        values = _as_floats(inputs, "inputs")
        if values.shape != (self.n_inputs,):
            raise ConfigError("inputs", f"shape {values.shape}", f"shape ({self.n_inputs},)")
        bad = np.flatnonzero(~np.isfinite(values) | (np.abs(values) > 1.0))
        if bad.size:
            raise ConfigError(f"inputs[{bad[0]}]", float(values[bad[0]]), "[-1, 1]")
        return values

    def state_alters(self, states) -> dict[str, str]:
        """``alter`` targets and values that load ``states`` (one x in [0, 1] per device)."""
        values = self._validated_states(states)
        return {site.state_target: f"dc={number(float(x))}" for site, x in zip(self.sites, values)}

    def input_alters(self, inputs) -> dict[str, str]:
        """``alter`` targets and values that apply ``inputs`` (in [-1, 1], scaled by V_read)."""
        return self.input_alter_sets(self._validated_inputs(inputs)[None, :])[0]

    def input_alter_sets(self, inputs) -> list[dict[str, str]]:
        """``input_alters`` of every row of ``inputs`` (n, n_inputs), checked and written in one go
        (a test set is thousands of rows)."""
        sources = self._input_sources
        return [dict(zip(sources, [f"dc={v:.12g}" for v in row])) for row in self.input_volts(inputs).tolist()]

    def input_alter_changes(self, inputs) -> list[dict[str, str]]:
        """Per row of ``inputs`` (n, n_inputs), the alters that take the circuit there from the row
        before: every input for the first row, then only those that change. Alters accumulate (the
        circuit keeps what it was set to), so these set the very values ``input_alter_sets`` sets,
        with a test set in a few-changes order writing and sending a tenth of the text."""
        volts = self.input_volts(inputs)
        changed = np.ones(volts.shape, dtype=bool)
        changed[1:] = volts[1:] != volts[:-1]
        sources = self._input_sources
        sets: list[dict[str, str]] = [{} for _ in range(len(volts))]
        rows, columns = np.nonzero(changed)
        for row, column, value in zip(rows.tolist(), columns.tolist(), volts[changed].tolist()):
            sets[row][sources[column]] = f"dc={value:.12g}"
        return sets

    def input_volts(self, inputs) -> np.ndarray:
        """The source voltages of inputs (n, n_inputs) in [-1, 1], checked."""
        values = _as_floats(inputs, "inputs")
        if values.ndim != 2 or values.shape[1] != self.n_inputs:
            raise ConfigError("inputs", f"shape {values.shape}", f"shape (n, {self.n_inputs})")
        bad = np.argwhere(~np.isfinite(values) | (np.abs(values) > 1.0))
        if len(bad):
            row, column = bad[0]
            raise ConfigError(f"inputs[{row}, {column}]", float(values[row, column]), "[-1, 1]")
        # + 0.0 turns a negative zero into 0, so alters write 'dc=0' for it (the netlist keeps '-0').
        return _flush_tiny(values * self.spec.v_read_V) + 0.0

    @functools.cached_property
    def _input_sources(self) -> list[str]:
        return [self.input_source(i) for i in range(self.n_inputs)]

    # -- netlist text ----------------------------------------------------------------------------
    def netlist(self, states, inputs, models: str = "inline", device_inputs=None) -> str:
        """The full inference netlist. ``models`` is 'inline' (the subcircuit text is written in,
        as the in-process engine loads it) or a relative folder holding the model's library (then
        every instance also carries the model's parameters). ``device_inputs``: per-device read
        inputs of an ageing model (name → (n_devices,) values), default the model's defaults."""
        spec = self.spec
        states = self._validated_states(states)
        inputs = self._validated_inputs(inputs)
        per_device = self._validated_device_inputs(device_inputs)
        net = Netlist(f"{spec.name}: {len(spec.layers)}-layer crossbar, medium {spec.device.medium}")
        net.header("circuits.crossbar", _spec_summary(spec), spec.seed)
        if models == "inline":
            net.subcircuit(spec.device.spice_subcircuit())
        else:
            net.include(f"{models}/{spec.device.library_file}")
        net.card(".model", "swsel", "sw", f"vt=0.5 vh=0.1 ron={number(spec.r_switch_on_ohm)} roff=1e12")
        net.comment("select line: 1 V closes every array switch (inference configuration)")
        net.element("vsel", ["sel", "0"], "dc", "1")
        for i, volts in enumerate(_flush_tiny(inputs * spec.v_read_V)):
            net.element(self.input_source(i), [f"in{i}", "0"], "dc", number(float(volts)))
        sources = [f"in{i}" for i in range(self.n_inputs)]
        site_iter = iter(zip(self.sites, states))
        instance_inputs = (per_device, models != "inline")
        for layer_index, layer in enumerate(spec.layers):
            sources = self._render_layer(net, layer_index, layer, sources, site_iter, instance_inputs)
        net.card(".options", "method=gear")
        net.card(".op")
        return net.text()

    def _render_layer(self, net: Netlist, l: int, layer: LayerSpec, sources: list[str], site_iter,
                      instance_inputs) -> list[str]:
        spec, tag = self.spec, f"l{l + 1}"
        net.comment(f"layer {l + 1}: {layer.n_inputs} inputs x {layer.n_outputs} neurons")
        n_columns = layer.n_outputs
        rows = {+1: [self._row_line(net, tag, i, src, "", n_columns) for i, src in enumerate(sources)]}
        if spec.weights == "differential":
            for i, src in enumerate(sources):
                net.element(f"binv{tag}_{i}", [f"{tag}inv{i}", "0"], f"V = -V({src})")
            rows[-1] = [self._row_line(net, tag, i, f"{tag}inv{i}", "n", n_columns)
                        for i in range(len(sources))]
        columns = [self._column_line(net, tag, j, layer.n_inputs) for j in range(layer.n_outputs)]
        for i in range(layer.n_inputs):
            for j in range(layer.n_outputs):
                for _ in rows:
                    site, x = next(site_iter)
                    mid = f"{tag}m{i}_{j}{site.instance[-1] if spec.weights == 'differential' else ''}"
                    net.element(f"s{site.instance[1:]}", [rows[site.sign][i][j], mid, "sel", "0"], "swsel")
                    per_device, with_parameters = instance_inputs
                    values = spec.device.instance_values(
                        float(x), {key: v[site.index] for key, v in per_device.items()})
                    net.device(site.instance, [mid, columns[j][i]], spec.device, values, with_parameters)
        if spec.weights == "single":
            net.comment("reference current -G_ref * sum(v_in) into every summing node (negative weights)")
            net.element(f"bref{tag}", [f"{tag}ref", "0"], "V = -(" + "+".join(f"V({s})" for s in sources) + ")")
        outputs = []
        for j in range(layer.n_outputs):
            outputs.append(self._neuron(net, l, j, layer.neuron, columns[j][-1]))
        return outputs

    def _row_line(self, net: Netlist, tag: str, i: int, source: str, polarity: str,
                  n_columns: int) -> list[str]:
        """Crosspoint nodes of row i, one per column, through driver and line resistance."""
        spec = self.spec
        node = source
        if spec.r_driver_ohm > 0:
            node = f"{tag}r{polarity}{i}"
            net.element(f"rdrv{tag}{polarity}_{i}", [source, node], number(spec.r_driver_ohm))
        if spec.r_line_ohm == 0:
            return [node] * n_columns
        nodes = []
        for j in range(n_columns):
            nxt = f"{tag}r{polarity}{i}_{j}"
            net.element(f"rrow{tag}{polarity}_{i}_{j}", [node, nxt], number(spec.r_line_ohm))
            nodes.append(nxt)
            node = nxt
        return nodes

    def _column_line(self, net: Netlist, tag: str, j: int, n_rows: int) -> list[str]:
        """Crosspoint nodes of column j, one per row, plus the node where the column meets the neuron."""
        spec = self.spec
        if spec.r_line_ohm == 0:
            nodes = [f"{tag}c{j}"] * n_rows
        else:
            nodes = [f"{tag}c{j}_{i}" for i in range(n_rows)]
            for i in range(n_rows - 1):
                net.element(f"rcol{tag}_{j}_{i}", [nodes[i], nodes[i + 1]], number(spec.r_line_ohm))
        summing = f"{tag}s{j}"
        # R_sense = 0 is written as 1 mOhm so the summing node stays a node of its own.
        net.element(f"rsense{tag}_{j}", [nodes[-1], summing], number(self.sense_resistance_ohm))
        return nodes + [summing]

    def _neuron(self, net: Netlist, l: int, j: int, neuron: NeuronSpec, summing: str) -> str:
        spec, tag = self.spec, f"l{l + 1}"
        layer = spec.layers[l]
        out, act = self.tia_output_node(l, j), self.activation_node(l, j)
        if spec.weights == "single":
            r_ref = layer.neuron_values("reference_scale")[j] / spec.reference_conductance_S
            net.element(f"rref{tag}_{j}", [f"{tag}ref", summing], number(r_ref))
        # Linear op-amp (finite gain A, offset at the + input) closing the loop through R_f, then an
        # output stage clamped to the rails. Clamping inside the loop (one B-source with min/max or
        # tanh and gain 1e5) defeats ngspice's Newton iterations whenever a neuron saturates.
        unclamped, plus = f"{tag}u{j}", "0"
        offset = neuron.v_offset_V + layer.neuron_values("offset_V")[j]
        if offset != 0.0:
            plus = f"{tag}p{j}"
            net.element(f"vos{tag}_{j}", [plus, "0"], "dc", number(offset))
        net.element(f"eamp{tag}_{j}", [unclamped, "0", plus, summing], number(neuron.open_loop_gain))
        r_feedback = neuron.r_feedback_ohm * layer.neuron_values("feedback_scale")[j]
        net.element(f"rf{tag}_{j}", [unclamped, summing], number(r_feedback))
        rail = number(neuron.v_rail_V)
        net.element(f"bout{tag}_{j}", [out, "0"], f"V = min(max(V({unclamped}), -{rail}), {rail})")
        gain = neuron.activation_gain_per_V * layer.neuron_values("gain_scale")[j]
        k, full_scale = number(gain), number(spec.v_read_V)
        threshold = layer.neuron_values("threshold_V")[j]
        z = f"(-V({out}))" if threshold == 0.0 else f"(-V({out})-({number(threshold)}))"
        expression = {
            "sigmoid": f"{full_scale}/(1+exp(-{k}*{z}))",
            "tanh": f"{full_scale}*tanh({k}*{z})",
            "linear": f"{full_scale}*{k}*{z}",
        }[neuron.activation]
        net.element(f"bact{tag}_{j}", [act, "0"], f"V = {expression}")
        return act


def _spec_summary(spec: CrossbarSpec) -> dict:
    summary = {
        "medium": spec.device.medium,
        "layers": "-".join([str(spec.layers[0].n_inputs)] + [str(layer.n_outputs) for layer in spec.layers]),
        "weights": spec.weights,
        "g_ref_S": f"{spec.reference_conductance_S:.6g}",
        "v_read_V": spec.v_read_V,
        "r_driver_ohm": spec.r_driver_ohm,
        "r_line_ohm": spec.r_line_ohm,
        "r_sense_ohm": spec.r_sense_ohm,
        "r_switch_on_ohm": spec.r_switch_on_ohm,
    }
    for index, layer in enumerate(spec.layers):
        n = layer.neuron
        summary[f"layer{index + 1}.neuron"] = (
            f"R_f={n.r_feedback_ohm:g} A={n.open_loop_gain:g} rail={n.v_rail_V:g} "
            f"offset={n.v_offset_V:g} {n.activation} k={n.activation_gain_per_V:g}")
        if layer.mismatch is not None:
            m = layer.mismatch
            summary[f"layer{index + 1}.mismatch"] = (
                "per-neuron Monte-Carlo instance: "
                + " ".join(f"{name_}=[{','.join(f'{v:.4g}' for v in getattr(m, name_))}]"
                           for name_ in NeuronMismatch.FIELDS))
    return summary


def _as_floats(values, path: str) -> np.ndarray:
    """``values`` as a float array; ConfigError naming ``path`` for text, tables or ragged lists."""
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(path, values, "numbers") from None


def _flush_tiny(values: np.ndarray) -> np.ndarray:
    """``values`` with magnitudes below ``MIN_MAGNITUDE`` as 0: a state or input computed down to a
    subnormal (1e-310) is 0 for the circuit, and no netlist number (circuits.netlist.number) can hold
    it, nor its product with V_read."""
    tiny = (values != 0.0) & (np.abs(values) < MIN_MAGNITUDE)
    return np.where(tiny, 0.0, values) if tiny.any() else values
