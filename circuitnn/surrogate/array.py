"""Crossbar currents and neuron transfer: the exact DC solution of the array circuit, in NumPy/SciPy.

The same circuit ``circuits/crossbar.py`` writes as a netlist, node for node:

    input source ─ R_driver ─ row line (R_line per crosspoint) ─ switch R_sw ─ device G(x) ─
    column line (R_line between crosspoints) ─ R_sense ─ summing node s ─ op-amp (gain A, offset
    V_os at its + input) with feedback R_f; "single" weights: a resistor 1/G_ref from the reference
    node (−Σ v_in) into s; "differential": an inverted copy of each row (−v_in).

Each layer is a linear resistive network once the device states are fixed (I = G(x)·V),
driven by ideal sources (the layer's inputs, inverted rows, reference node), so its node voltages
solve ``Y V = M v_sources + b``: nodal analysis with the sources as known voltages. The switch and
device are one series conductance ``G/(1 + R_sw G)`` (their middle node carries no other branch).
The op-amp output is u = A (V_os − V_s); substituting it into KCL at s makes the feedback branch a
conductance g_f (1 + A) on s's diagonal and g_f A V_os on the right-hand side, so Y stays
symmetric. Y depends on the states only: it is factorised once (``scipy.sparse.linalg.splu``) per
change of states and reused for every input of a batch (a 2-D right-hand side).

After the loop, as in the netlist: the TIA output is u clamped to ±V_rail, then the activation
stage gives V_read·f(k·z) with z = −V(out). Layers are solved in order (an activation is an ideal
source driving the next layer's rows).

Power drawn from the driving sources, SpiceChip's definition (−Σ V·I of every source that drives
the array: input drivers, reference and inverted-row generators, hidden activations driving the
next layer): Σ_k v_k · i_k per layer, where i_k is the current source k pushes into the network.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.linalg import lu_factor, lu_solve
from scipy.sparse.linalg import splu
from scipy.special import expit

from ..circuits.crossbar import Crossbar, LayerSpec
from ..errors import ConfigError
from .inverse_rows import InverseRows

# The netlist writes R_sense = 0 as 1 mΩ (circuits/crossbar.py) and R_driver = 0 as no resistor.
MIN_SENSE_OHM = 1e-3
# From this many unknowns a layer is factorised in a nested-dissection order (METIS) computed once
# from its sparsity pattern: a 256×256 tile with line resistance fills in a third less than with
# the minimum-degree order and factorises and solves ~2× faster. Smaller circuits keep the minimum
# degree order (no METIS call, the same numbers as before to the last bit).
NESTED_DISSECTION_MIN_UNKNOWNS = 5000


class _OrderedFactorisation:
    """``splu`` of Y[order][:, order] (Y symmetric), solving Y x = b in the original numbering."""

    def __init__(self, lu, order: np.ndarray, inverse: np.ndarray):
        self._lu, self._order, self._inverse = lu, order, inverse

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        return self._lu.solve(np.ascontiguousarray(rhs[self._order]))[self._inverse]

    def inverse_rows(self) -> InverseRows | None:
        """Rows of Y⁻¹u read apart (``inverse_rows.py``), or None where they cannot be."""
        return InverseRows.of(self._lu, self._order, self._inverse)


def nested_dissection_order(pattern: sparse.csc_matrix) -> np.ndarray:
    """METIS's fill-reducing nested-dissection order of a symmetric sparsity pattern (pymetis;
    deterministic: METIS seeds its own generator)."""
    import pymetis

    graph = sparse.csr_matrix((np.ones(pattern.nnz), pattern.indices, pattern.indptr), shape=pattern.shape).T.tocsr()
    graph.setdiag(0)   # the pattern's values may all be 0 (not filled yet): only the structure counts
    graph.eliminate_zeros()
    graph.sort_indices()
    order, _ = pymetis.nested_dissection(pymetis.CSRAdjacency(graph.indptr, graph.indices))
    return np.asarray(order, dtype=np.int64)


@functools.cache
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController  # installed with scikit-learn
    except ImportError:
        return None
    return ThreadpoolController()


def _one_blas_thread():
    """SuperLU solves a many-column right-hand side with BLAS per supernode; the supernodes of a
    crossbar are tiny, and OpenBLAS's threads then only wait on each other: on a busy 2-core
    machine a 66-node system with 200 columns took 16–60 ms threaded against 0.2 ms on one
    thread. Limit BLAS to one thread around the solves (threadpoolctl, ~8 µs), if available."""
    controller = _blas_controller()
    return controller.limit(limits=1, user_api="blas") if controller is not None else contextlib.nullcontext()


def check_linear(device) -> None:
    """The surrogate solves the array as a linear network: each device must be a conductance at fixed
    state (``DeviceModel.linear_at_fixed_state``; an M-SDC device with diode terms, phi < 1, is not)."""
    if not device.linear_at_fixed_state:
        raise ConfigError("device.phi" if hasattr(device, "phi") else "device", getattr(device, "phi", device.medium),
                          "a device that is linear at fixed state (M-SDC: phi = 1); use SpiceChip for "
                          "devices with diode terms")


@dataclass(frozen=True)
class ArrayResponse:
    """The array's DC response to a batch of n inputs. Per-layer lists of (n, n_outputs) arrays."""

    tia_outputs_V: list[np.ndarray]       # V(out): the op-amp output after the rail clamp
    activations_V: list[np.ndarray]       # V_read · f(k · z), z = −V(out)
    column_currents_A: list[np.ndarray]   # through each column's sense resistor into the summing node
    power_W: np.ndarray                   # (n,) drawn from the array's driving sources


class _LayerNetwork:
    """The nodal system of one layer: fixed structure, device conductances filled in per state."""

    def __init__(self, crossbar: Crossbar, layer_index: int, layer: LayerSpec, first_device: int,
                 gain_scale: float):
        spec = crossbar.spec
        self.layer, self.n_in, self.n_out = layer, layer.n_inputs, layer.n_outputs
        polarities = (1, -1) if spec.weights == "differential" else (1,)
        self.n_pol = len(polarities)
        self.device_slice = slice(first_device, first_device + self.n_in * self.n_out * self.n_pol)

        # Known voltages ("sources"): the layer inputs, then the inverted rows or the reference node.
        # ``source_map`` (n_sources, n_in) gives them from the layer's input voltages.
        self.n_unknown = 0
        self._rows: list[int] = []       # COO entries of Y (row, column, static value, device, sign)
        self._cols: list[int] = []
        self._vals: list[float] = []
        self._devs: list[int] = []
        self._m_rows: list[int] = []     # COO entries of M (unknown, source, static value, device)
        self._m_cols: list[int] = []
        self._m_vals: list[float] = []
        self._m_devs: list[int] = []
        n_src = self.n_in * (2 if spec.weights == "differential" else 1) + (spec.weights == "single")
        self.n_sources = n_src
        source_map = np.zeros((n_src, self.n_in))
        source_map[:self.n_in] = np.eye(self.n_in)
        if spec.weights == "differential":
            source_map[self.n_in:] = -np.eye(self.n_in)
        else:
            source_map[self.n_in] = -1.0
            reference = self.n_in
        self.source_map = source_map

        rows = {}
        for pol in polarities:
            first = 0 if pol == 1 else self.n_in
            rows[pol] = [self._row_line(("src", first + i), spec.r_driver_ohm, spec.r_line_ohm)
                         for i in range(self.n_in)]
        columns, self.sense_nodes, self.summing_nodes = [], [], []
        for _ in range(self.n_out):
            if spec.r_line_ohm == 0:
                nodes = [self._new()] * self.n_in
            else:
                nodes = [self._new() for _ in range(self.n_in)]
                for a, b in itertools.pairwise(nodes):
                    self._edge(a, b, 1.0 / spec.r_line_ohm)
            summing = self._new()
            g_sense = 1.0 / max(spec.r_sense_ohm, MIN_SENSE_OHM)
            self._edge(nodes[-1], summing, g_sense)
            columns.append(nodes)
            self.sense_nodes.append(nodes[-1])
            self.summing_nodes.append(summing)
        self.g_sense = 1.0 / max(spec.r_sense_ohm, MIN_SENSE_OHM)
        # Devices, in Crossbar.sites order: row i, column j, polarity (+ then −).
        device = 0
        terminals = []
        for i in range(self.n_in):
            for j in range(self.n_out):
                for pol in polarities:
                    self._edge(rows[pol][i][j], columns[j][i], 0.0, device)
                    terminals.append((rows[pol][i][j], columns[j][i]))
                    device += 1
        # A device between two unknown nodes changes Y alone (by a rank-1 term); one touching a
        # source (no driver, no line resistance) changes M too, and is not updated in low rank.
        self.low_rank_ok = all(not isinstance(a, tuple) and not isinstance(b, tuple) for a, b in terminals)
        self._terminal_a = np.array([a if not isinstance(a, tuple) else -1 for a, _ in terminals], dtype=int)
        self._terminal_b = np.array([b if not isinstance(b, tuple) else -1 for _, b in terminals], dtype=int)
        if spec.weights == "single":
            g_ref = spec.reference_conductance_S / layer.neuron_values("reference_scale")
            for s, g in zip(self.summing_nodes, g_ref):
                self._edge(("src", reference), s, float(g))
        # Feedback: u = A (V_os − V_s) substituted into KCL at s; per neuron (a drawn mismatch).
        neuron = layer.neuron
        self.gain = neuron.open_loop_gain
        self.offset_V = neuron.v_offset_V + layer.neuron_values("offset_V")[:, None]   # (n_out, 1)
        g_f = 1.0 / (neuron.r_feedback_ohm * gain_scale * layer.neuron_values("feedback_scale"))
        self.constant_rhs = np.zeros(self.n_unknown)
        for j, s in enumerate(self.summing_nodes):
            self._entry(s, s, g_f[j] * (1.0 + self.gain))
            self.constant_rhs[s] += g_f[j] * self.gain * self.offset_V[j, 0]
        self._freeze()

    # -- building ---------------------------------------------------------------------------------
    def _new(self) -> int:
        self.n_unknown += 1
        return self.n_unknown - 1

    def _row_line(self, source, r_driver: float, r_line: float) -> list:
        node = source
        if r_driver > 0:
            node = self._new()
            self._edge(source, node, 1.0 / r_driver)
        if r_line == 0:
            return [node] * self.n_out
        nodes = []
        for _ in range(self.n_out):
            nxt = self._new()
            self._edge(node, nxt, 1.0 / r_line)
            nodes.append(nxt)
            node = nxt
        return nodes

    def _entry(self, a: int, b: int, value: float, device: int = -1, sign: float = 1.0) -> None:
        self._rows.append(a)
        self._cols.append(b)
        self._vals.append(value if device < 0 else sign)
        self._devs.append(device)

    def _edge(self, a, b, g: float, device: int = -1) -> None:
        """A conductance between two nodes (an int is an unknown, ("src", k) a known voltage)."""
        known_a, known_b = isinstance(a, tuple), isinstance(b, tuple)
        if known_a and known_b:
            raise AssertionError("a branch between two sources")  # the topology never has one
        if known_a:
            a, b = b, a
            known_a, known_b = known_b, known_a
        self._entry(a, a, g, device, 1.0)
        if known_b:
            self._m_rows.append(a)
            self._m_cols.append(b[1])
            self._m_vals.append(g if device < 0 else 1.0)
            self._m_devs.append(device)
        else:
            self._entry(b, b, g, device, 1.0)
            self._entry(a, b, -g, device, -1.0)
            self._entry(b, a, -g, device, -1.0)

    def _freeze(self) -> None:
        """Fix the sparsity patterns once; a change of states then only refills their values."""
        devs = np.array(self._devs, dtype=int)
        self._static = devs < 0
        vals = np.array(self._vals, dtype=float)
        self._y_static = np.where(self._static, vals, 0.0)
        self._y_sign = np.where(self._static, 0.0, vals)
        self._y_dev = np.where(self._static, 0, devs)
        n = self.n_unknown
        rows, cols = np.array(self._rows, dtype=int), np.array(self._cols, dtype=int)
        self._y, self._y_slot = _pattern(rows, cols, (n, n))
        self._order = None
        if n >= NESTED_DISSECTION_MIN_UNKNOWNS:
            self._order = nested_dissection_order(self._y)
            self._inverse = np.argsort(self._order)
            # The reordered matrix's own pattern: a change of states refills it directly.
            self._y_ordered, self._y_ordered_slot = _pattern(self._inverse[rows], self._inverse[cols], (n, n))
        m_devs = np.array(self._m_devs, dtype=int)
        self._m_static = m_devs < 0
        self._m_static_vals = np.where(self._m_static, np.array(self._m_vals, dtype=float), 0.0)
        self._m_dev = np.where(self._m_static, 0, m_devs)
        self._m_cols_a = np.array(self._m_cols, dtype=int)
        # Mᵀ (sources × unknowns) in CSC; M is its transpose, a CSR view of the same arrays, so one
        # in-place refill of the data serves both (M for the right-hand side, Mᵀ for source currents).
        self._m_t, self._m_slot = _pattern(self._m_cols_a, np.array(self._m_rows, dtype=int),
                                           (self.n_sources, n))
        self.m = self._m_t.T  # a CSR view over the same data
        self._m_support = np.unique(np.array(self._m_rows, dtype=int))   # the unknowns M touches

    # -- per state ----------------------------------------------------------------------------------
    def factorize(self, branch_conductances_S: np.ndarray) -> None:
        """Fill in the switch+device conductances (this layer's slice, site order) and factorise."""
        g = branch_conductances_S
        values = self._y_static + np.where(self._static, 0.0, self._y_sign * g[self._y_dev])
        self._y.data[:] = np.bincount(self._y_slot, weights=values, minlength=self._y.nnz)
        if self._order is None:
            # Y is symmetric: a minimum-degree ordering on Y + Yᵀ fills in ~35 % less than COLAMD
            # on large arrays with line resistance.
            self.lu = splu(self._y, permc_spec="MMD_AT_PLUS_A")
        else:
            ordered = self._y_ordered
            ordered.data[:] = np.bincount(self._y_ordered_slot, weights=values, minlength=ordered.nnz)
            # Symmetric mode keeps the order on the diagonal (Y is diagonally dominant).
            self.lu = _OrderedFactorisation(splu(ordered, permc_spec="NATURAL", options={"SymmetricMode": True}),
                                            self._order, self._inverse)
        self._base_branch = np.array(g, dtype=float)
        self._reader = False   # rows of the new factors' inverse: made at the first update (_inverse_rows)
        self._reset_low_rank()
        m_values = np.where(self._m_static, self._m_static_vals, g[self._m_dev])
        self._m_t.data[:] = np.bincount(self._m_slot, weights=m_values, minlength=self._m_t.nnz)
        # Total conductance at each source node, for the current it delivers.
        self.source_conductance = np.bincount(self._m_cols_a, weights=m_values, minlength=self.n_sources)

    def solve(self, inputs_V: np.ndarray,
              current_noise: Callable[[np.ndarray], np.ndarray] | None = None):
        """Node voltages for inputs (n, n_in) in V: (summing-node V, sense current, power, op-amp u)."""
        sources = self.source_map @ inputs_V.T                          # (n_sources, n)
        rhs = self.m @ sources + self.constant_rhs[:, None]
        voltages = self._solve_y(rhs)
        sense, summing = self.sense_nodes, self.summing_nodes
        column = self.g_sense * (voltages[sense] - voltages[summing])   # (n_out, n)
        if current_noise is not None:
            # A noise current in parallel with each column, injected at its summing node.
            rhs[summing] += current_noise(column.T).T
            voltages = self._solve_y(rhs)
            column = self.g_sense * (voltages[sense] - voltages[summing])
        delivered = self.source_conductance[:, None] * sources - self._m_t @ voltages
        power = np.sum(sources * delivered, axis=0)
        u = self.gain * (self.offset_V - voltages[summing])
        return u.T, column.T, power

    def transfer_S(self) -> np.ndarray:
        """(n_in, n_out): the column currents per volt of each input, all sources at zero otherwise.

        The layer is linear, so this matrix is its whole read response (offset aside): column currents
        = inputs_V @ T + (response at zero input). Computed from whichever side is smaller: n_in
        solves with unit inputs, or n_out adjoint solves Y w_j = c_j with c_j the sense-current
        functional of column j (Y is symmetric, so Y⁻ᵀ = Y⁻¹), T[:, j] = source_mapᵀ Mᵀ w_j.
        """
        sense, summing = self.sense_nodes, self.summing_nodes
        chunk = 64  # right-hand sides per solve: bounds the dense block at 64 × n_unknown floats
        with _one_blas_thread():
            if self.n_in <= self.n_out:
                blocks = []
                for first in range(0, self.n_in, chunk):
                    unit = np.eye(self.n_in)[first:first + chunk]
                    voltages = self._solve_y(np.asarray(self.m @ (self.source_map @ unit.T)))
                    blocks.append((self.g_sense * (voltages[sense] - voltages[summing])).T)
                return np.vstack(blocks)
            blocks = []
            for first in range(0, self.n_out, chunk):
                columns = np.arange(first, min(first + chunk, self.n_out))
                functional = np.zeros((self.n_unknown, len(columns)))
                functional[np.asarray(sense)[columns], np.arange(len(columns))] = self.g_sense
                functional[np.asarray(summing)[columns], np.arange(len(columns))] = -self.g_sense
                w = self._solve_y(functional)
                blocks.append(self.source_map.T @ np.asarray(self._m_t @ w))
            return np.hstack(blocks)

    # -- low-rank updates (Woodbury) -------------------------------------------------------------------
    # Y = Y0 + U D Uᵀ with U the incidence vectors (e_a − e_b) of the devices changed since the
    # factorisation and D their conductance changes. With W = Y0⁻¹ U, Y⁻¹ r = Y0⁻¹ r − W (I + D UᵀW)⁻¹
    # D Uᵀ Y0⁻¹ r, and the transfer matrix T = Pᵀ Y⁻¹ C = T0 − (PᵀW) (I + D UᵀW)⁻¹ D (WᵀC): a few dense
    # products of size n × k. A batch solve needs W in full (one solve per changed device); the
    # transfer matrix needs it only at the source, sense and summing nodes and the changed terminals,
    # which a large layer reads apart without the full solve (``inverse_rows.py``). An update only
    # records the change: whichever is asked for next does its part, once per device.
    def _reset_low_rank(self) -> None:
        self._changed = np.zeros(0, dtype=int)   # devices (layer order) in U
        self._delta = np.zeros(0)
        self._w = np.zeros((self.n_unknown, 0))   # W in full, for the changed devices solved so far
        self._z = np.zeros((self.n_unknown, 0))   # L⁻¹U, for those read apart so far
        self._terminal_rows = sparse.csr_matrix((0, self.n_unknown))   # their terminals' rows a₀, b₀, a₁, …
        self._capacitance_lu = None               # LU of (I + D UᵀW), made when first needed
        self._transfer0 = None

    def discard_updates(self) -> None:
        """Back to the factorised conductances (the factorised states' transfer matrix is kept)."""
        transfer0 = self._transfer0
        self._reset_low_rank()
        self._transfer0 = transfer0

    @property
    def low_rank_size(self) -> int:
        """How many devices differ from the factorised states (the rank of the correction)."""
        return len(self._changed)

    def update_devices(self, devices: np.ndarray, branch_S: np.ndarray) -> None:
        """Set the branch conductances of ``devices`` (layer order) without refactorising."""
        if not self.low_rank_ok:
            raise ValueError("devices touching a source (no driver or line resistance) change M: refactorise")
        devices = np.asarray(devices, dtype=int)
        branch = np.asarray(branch_S, dtype=float)
        new = np.setdiff1d(np.unique(devices), self._changed)
        self._changed = np.concatenate([self._changed, new])
        self._delta = np.concatenate([self._delta, np.zeros(len(new))])
        position = {d: k for k, d in enumerate(self._changed)}
        for d, value in zip(devices, branch):
            self._delta[position[int(d)]] = value - self._base_branch[d]
        self._capacitance_lu = None

    def _incidence(self, devices: np.ndarray) -> np.ndarray:
        u = np.zeros((self.n_unknown, len(devices)))
        columns = np.arange(len(devices))
        u[self._terminal_a[devices], columns] = 1.0
        u[self._terminal_b[devices], columns] = -1.0
        return u

    def _full_w(self) -> np.ndarray:
        """W in full, solving now for the changed devices not solved yet."""
        if self._w.shape[1] < len(self._changed):
            with _one_blas_thread():
                solved = self.lu.solve(self._incidence(self._changed[self._w.shape[1]:]))
            self._w = np.hstack([self._w, solved])
        return self._w

    def _inverse_rows(self) -> InverseRows | None:
        """The reader of rows of Y0⁻¹ for this factorisation (made when first asked for), or None: a
        small layer, no C compiler, or a pivot off the diagonal. Then W is solved in full."""
        if self._reader is False:
            self._reader = self.lu.inverse_rows() if isinstance(self.lu, _OrderedFactorisation) else None
        return self._reader

    def _read_apart(self) -> InverseRows | None:
        """The reader with L⁻¹U and the terminals' rows brought up to every changed device (None: W is
        to be solved in full, or already is)."""
        if self._w.shape[1] == len(self._changed):
            return None
        rows = self._inverse_rows()
        new = self._changed[self._z.shape[1]:]
        if rows is not None and len(new):
            z = rows.forward(self._terminal_a[new], self._terminal_b[new])
            terminal_rows = rows.operator(np.column_stack([self._terminal_a[new], self._terminal_b[new]]).ravel())
            # Both or neither: an interruption between them would pair one device's z with another's rows.
            self._z = np.hstack([self._z, z])
            self._terminal_rows = sparse.vstack([self._terminal_rows, terminal_rows], format="csr")
        return rows

    def _correction(self, z: np.ndarray) -> np.ndarray:
        """(I + D UᵀW)⁻¹ D z for z (k × m)."""
        if self._capacitance_lu is None:
            if self._read_apart() is not None:
                at_terminals = np.asarray(self._terminal_rows @ self._z)   # W at a₀, b₀, a₁, b₁, …
                utw = at_terminals[0::2] - at_terminals[1::2]
            else:
                w = self._full_w()
                utw = w[self._terminal_a[self._changed]] - w[self._terminal_b[self._changed]]
            self._capacitance_lu = lu_factor(np.eye(len(self._changed)) + self._delta[:, None] * utw)
        return lu_solve(self._capacitance_lu, self._delta[:, None] * z)

    def _solve_y(self, rhs: np.ndarray) -> np.ndarray:
        """Y⁻¹ rhs at the current conductances: the factorisation, corrected in low rank."""
        x = self.lu.solve(rhs)
        if len(self._changed):
            a, b = self._terminal_a[self._changed], self._terminal_b[self._changed]
            columns = x[:, None] if x.ndim == 1 else x
            w = self._full_w()
            columns = columns - w @ self._correction(columns[a] - columns[b])
            x = columns[:, 0] if x.ndim == 1 else columns
        return x

    def _fixed_rows(self) -> np.ndarray:
        """The unknowns a transfer matrix reads W at: the source nodes (M's columns), then the sense
        and the summing nodes."""
        return np.concatenate([self._m_support, np.asarray(self.sense_nodes), np.asarray(self.summing_nodes)])

    def transfer_updated_S(self) -> np.ndarray:
        """``transfer_S`` at the current conductances from the one at the factorised states (computed
        once per factorisation) and the low-rank correction: no new solve, or one per changed device
        where rows cannot be read apart."""
        if self._transfer0 is None:
            changed, delta = self._changed, self._delta
            self._changed, self._delta = np.zeros(0, dtype=int), np.zeros(0)
            try:
                self._transfer0 = self.transfer_S()
            finally:
                self._changed, self._delta = changed, delta
        if not len(self._changed):
            return self._transfer0.copy()
        fixed = self._fixed_rows()
        rows = self._read_apart()
        w_fixed = rows.rows(fixed, self._z) if rows is not None else self._full_w()[fixed]
        n_m, n_out = len(self._m_support), self.n_out
        p_t_w = self.source_map.T @ np.asarray(self._m_t[:, self._m_support] @ w_fixed[:n_m])   # (n_in × k)
        w_t_c = self.g_sense * (w_fixed[n_m:n_m + n_out] - w_fixed[n_m + n_out:]).T        # (k × n_out)
        # A thin (n_in × k)(k × n_out) product: BLAS threads only wait on each other for it, 4× slower
        # beside a CPU-bound process on 2 cores.
        with _one_blas_thread():
            return self._transfer0 - p_t_w @ self._correction(w_t_c)

    def own_sensitivities(self) -> np.ndarray:
        """∂T[i, j]/∂β_k for every device k = (row i, column j, polarity) at the factorised states:
        how the transfer matrix entry a device feeds moves with its own branch conductance β
        (site order, S/S). From Woodbury's rank-1 term, −(v_iᵀu_k)(u_kᵀw_j), with v_i = Y⁻¹p_i the node
        voltages per volt of input i (n_in solves) and w_j = Y⁻¹c_j the sense functional's adjoint
        (n_out solves): twice the cost of ``transfer_S``, and memory O(devices)."""
        if len(self._changed):
            raise RuntimeError("own_sensitivities needs the factorised states (discard_updates first)")
        chunk = 64
        a = self._terminal_a.reshape(self.n_in, self.n_out, self.n_pol)
        b = self._terminal_b.reshape(self.n_in, self.n_out, self.n_pol)
        across = np.empty((self.n_in, self.n_out, self.n_pol))   # v_i[a_k] − v_i[b_k]
        adjoint = np.empty((self.n_in, self.n_out, self.n_pol))  # w_j[a_k] − w_j[b_k]
        sense, summing = np.asarray(self.sense_nodes), np.asarray(self.summing_nodes)
        with _one_blas_thread():
            for first in range(0, self.n_in, chunk):
                rows = np.arange(first, min(first + chunk, self.n_in))
                unit = np.eye(self.n_in)[rows]
                v = self.lu.solve(np.asarray(self.m @ (self.source_map @ unit.T)))   # (n, len(rows))
                columns = np.arange(len(rows))[:, None, None]
                across[rows] = v[a[rows], columns] - v[b[rows], columns]
            for first in range(0, self.n_out, chunk):
                cols = np.arange(first, min(first + chunk, self.n_out))
                functional = np.zeros((self.n_unknown, len(cols)))
                functional[sense[cols], np.arange(len(cols))] = self.g_sense
                functional[summing[cols], np.arange(len(cols))] = -self.g_sense
                w = self.lu.solve(functional)
                columns = np.arange(len(cols))[None, :, None]
                adjoint[:, cols] = w[a[:, cols], columns] - w[b[:, cols], columns]
        return (-(across * adjoint)).ravel()


def _pattern(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]):
    """A CSC matrix with the sparsity of the COO entries (rows, cols), and for each entry the slot
    of ``matrix.data`` it adds into (duplicates share a slot)."""
    keys = cols * shape[0] + rows                     # column-major: CSC order after sorting
    unique, slot = np.unique(keys, return_inverse=True)
    indices = (unique % shape[0]).astype(np.int32)
    indptr = np.searchsorted(unique // shape[0], np.arange(shape[1] + 1)).astype(np.int32)
    matrix = sparse.csc_matrix((np.zeros(len(unique)), indices, indptr), shape=shape)
    return matrix, slot


class ArrayModel:
    """The whole crossbar network: layers solved in order, factorised per change of states."""

    def __init__(self, crossbar: Crossbar, gain_scale: float = 1.0):
        check_linear(crossbar.spec.device)
        self.crossbar = crossbar
        self.layers: list[_LayerNetwork] = []
        first = 0
        for index, layer in enumerate(crossbar.spec.layers):
            network = _LayerNetwork(crossbar, index, layer, first, gain_scale)
            self.layers.append(network)
            first = network.device_slice.stop
        self._factorized = False

    def factorize(self, device_conductances_S) -> None:
        """Set every device's conductance (``crossbar.sites`` order, S) and factorise each layer."""
        g = np.asarray(device_conductances_S, dtype=float)
        if g.shape != (self.crossbar.n_devices,):
            raise ConfigError("conductances", f"shape {g.shape}", f"shape ({self.crossbar.n_devices},)")
        r_switch = self.crossbar.spec.r_switch_on_ohm
        branch = g / (1.0 + r_switch * g)   # the selection switch in series with the device
        for network in self.layers:
            network.factorize(branch[network.device_slice])
        self._factorized = True

    @property
    def n_unknowns(self) -> int:
        """Unknown node voltages over all layers (the size of what a factorisation solves)."""
        return sum(network.n_unknown for network in self.layers)

    def update(self, device_indices, device_conductances_S, max_rank: int = 64) -> None:
        """Change a few devices' conductances (``crossbar.sites`` indices, S) without refactorising:
        each layer keeps its factorisation and corrects it in low rank (Woodbury): the next batch
        solve pays one sparse solve per newly changed device, the next ``transfer_matrix_updated_S``
        of a large layer two short forward substitutions (``inverse_rows.py``). A layer whose
        correction would exceed ``max_rank`` devices, or whose devices touch a source directly, is
        refactorised instead."""
        if not self._factorized:
            raise RuntimeError("ArrayModel.factorize(conductances) must be called before update()")
        idx = np.asarray(device_indices, dtype=int)
        g = np.asarray(device_conductances_S, dtype=float)
        r_switch = self.crossbar.spec.r_switch_on_ohm
        branch = g / (1.0 + r_switch * g)
        for network in self.layers:
            start, stop = network.device_slice.start, network.device_slice.stop
            mine = (idx >= start) & (idx < stop)
            if not np.any(mine):
                continue
            local = idx[mine] - start
            if not network.low_rank_ok or len(np.union1d(network._changed, local)) > max_rank:
                full = network._base_branch.copy()
                if len(network._changed):
                    full[network._changed] += network._delta
                full[local] = branch[mine]
                network.factorize(full)
            else:
                network.update_devices(local, branch[mine])

    def discard_updates(self) -> None:
        """Forget every ``update``: the conductances are those of the last ``factorize`` again."""
        for network in self.layers:
            network.discard_updates()

    def transfer_matrix_updated_S(self, layer: int = 0) -> np.ndarray:
        """``transfer_matrix_S`` at the conductances of the latest ``update``: the factorised states'
        matrix (computed once) with the low-rank correction, instead of min(n_in, n_out) new solves."""
        if not self._factorized:
            raise RuntimeError("ArrayModel.factorize(conductances) must be called before transfer_matrix_updated_S()")
        return self.layers[layer].transfer_updated_S()

    def solve(self, inputs_V,
              current_noise: Callable[[np.ndarray], np.ndarray] | None = None,
              quantize_output: Callable[[np.ndarray, float], np.ndarray] | None = None) -> ArrayResponse:
        """The DC response to input voltages (n, n_inputs) in V (already scaled by V_read).

        ``current_noise(column_currents (n, n_out)) -> extra currents`` models read noise on the
        column currents; ``quantize_output(tia_outputs, v_rail)`` an ADC on the TIA outputs, whose
        result feeds the activation.
        """
        if not self._factorized:
            raise RuntimeError("ArrayModel.factorize(conductances) must be called before solve()")
        spec = self.crossbar.spec
        v = np.atleast_2d(np.asarray(inputs_V, dtype=float))
        tia, activations, currents = [], [], []
        power = np.zeros(len(v))
        for network in self.layers:
            with _one_blas_thread():
                u, column, layer_power = network.solve(v, current_noise)
            neuron = network.layer.neuron
            out = np.clip(u, -neuron.v_rail_V, neuron.v_rail_V)
            if quantize_output is not None:
                out = quantize_output(out, neuron.v_rail_V)
            layer = network.layer
            act = activation_V(out, neuron.activation, neuron.activation_gain_per_V * layer.neuron_values("gain_scale"),
                               spec.v_read_V, layer.neuron_values("threshold_V"))
            tia.append(out)
            activations.append(act)
            currents.append(column)
            power += layer_power
            v = act
        return ArrayResponse(tia, activations, currents, power)

    def layer_transfer(self, layer: int, device_conductances_S) -> tuple[np.ndarray, np.ndarray]:
        """The op-amp outputs of ``layer`` as an affine function of its input voltages, with that
        layer's devices at ``device_conductances_S`` (its slice of site order, S):
        ``u = inputs_V @ T + u0``, T (n_in, n_out) in V/V, u0 (n_out,) in V; before the rail clamp.

        Factorises that layer alone (n_in + 1 solves), so it can be called inside a fit of the
        layer's conductances (``training/mapping.py``). Leaves the layer factorised at them.
        """
        network = self.layers[layer]
        g = np.asarray(device_conductances_S, dtype=float)
        r_switch = self.crossbar.spec.r_switch_on_ohm
        network.factorize(g / (1.0 + r_switch * g))
        inputs = np.vstack([np.zeros(network.n_in), np.eye(network.n_in)])
        with _one_blas_thread():
            u, _, _ = network.solve(inputs)
        return u[1:] - u[0], u[0]

    def transfer_matrix_S(self, layer: int = 0) -> np.ndarray:
        """(n_in, n_out) column current per input volt of ``layer`` at the factorised states (S).

        Exact for the linear network (phi = 1, op-amps in their linear range): a layer's column
        currents are ``inputs_V @ T`` plus its zero-input response (op-amp offsets). Costs
        min(n_in, n_out) solves; a tile of 256 × 256 differential pairs with line resistance takes
        seconds, once per change of states, after which every read is one matrix product.
        """
        if not self._factorized:
            raise RuntimeError("ArrayModel.factorize(conductances) must be called before transfer_matrix_S()")
        return self.layers[layer].transfer_S()


def activation_V(tia_output_V, activation: str, gain_per_V, v_read_V: float, threshold_V=0.0) -> np.ndarray:
    """The activation stage: V_read · f(k · (z − θ)), z = −V(out) (the netlist's ``bact`` source);
    ``gain_per_V`` and ``threshold_V`` are scalars or one value per neuron (the last axis)."""
    kz = gain_per_V * (-np.asarray(tia_output_V) - threshold_V)
    if activation == "sigmoid":
        return v_read_V * expit(kz)
    if activation == "tanh":
        return v_read_V * np.tanh(kz)
    return v_read_V * kz
