"""Energy and time ledger: every read, pulse and inference a chip performs, as simulated.

Energies come from the simulated currents and voltages; times from the pulse and read schedule plus
the controller's per-operation overhead. Operations are kept individually so totals can be broken
down per device and per phase (read / reset / program / inference / perturb: the temporary weight
changes of perturb-and-measure learning). Stored as columns, so that a
backend doing thousands of operations in one vectorised call records them in one ``add_many``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Codes are stored as int8 indices into PHASES: append, never reorder.
PHASES = ("read", "reset", "program", "inference", "perturb")
_COLUMNS = ("phase", "device", "energy_device_J", "energy_total_J", "time_s", "pulses")
_DTYPES = (np.int8, np.int32, float, float, float, np.int32)
_CODES = {phase: code for code, phase in enumerate(PHASES)}


@dataclass(frozen=True)
class LedgerEntry:
    phase: str
    device: int             # -1 for whole-array operations (inference)
    energy_device_J: float  # dissipated in the memristor(s)
    energy_total_J: float   # delivered by the drivers: devices plus driver, switch and sense losses
    time_s: float           # simulated operation time plus controller overhead
    pulses: int = 0


class Ledger:
    """The operations of one chip, in order.

    Storage: single operations (a SPICE backend's, one at a time) go into Python lists; a bulk add
    (thousands of operations from one vectorised call) is kept as one block of arrays, and the two
    are concatenated in order only when read. Converting every bulk add to Python scalars cost more
    than the surrogate's physics for a whole batch.
    """

    def __init__(self, entries: list[LedgerEntry] | None = None):
        self.clear()
        for entry in entries or ():
            self.add(entry)

    def add(self, entry: LedgerEntry) -> None:
        self.add_values(entry.phase, entry.device, entry.energy_device_J, entry.energy_total_J, entry.time_s,
                        entry.pulses)

    def add_values(self, phase: str, device: int, energy_device_J: float, energy_total_J: float, time_s: float,
                   pulses: int = 0) -> None:
        """``add`` of the entry these values make, without making it (a SPICE sequence charges ~16
        operations a device while the caller waits)."""
        code = _CODES.get(phase)
        if code is None:
            raise ValueError(f"unknown ledger phase {phase!r}; one of {PHASES}")
        pending = self._pending
        pending["phase"].append(code)
        pending["device"].append(device)
        pending["energy_device_J"].append(energy_device_J)
        pending["energy_total_J"].append(energy_total_J)
        pending["time_s"].append(time_s)
        pending["pulses"].append(pulses)

    def add_many(self, phase: str, devices, energy_device_J, energy_total_J, time_s, pulses) -> None:
        """Record one operation of ``phase`` per element of the (equally long) sequences, in order."""
        if phase not in PHASES:
            raise ValueError(f"unknown ledger phase {phase!r}; one of {PHASES}")
        columns = [np.array(v, dtype=dtype).ravel()  # copies: the caller may reuse its arrays
                   for v, dtype in zip((devices, energy_device_J, energy_total_J, time_s, pulses), _DTYPES[1:])]
        if any(len(c) != len(columns[0]) for c in columns):
            raise ValueError("ledger columns must be equally long")
        self._flush()
        phases = np.full(len(columns[0]), _CODES[phase], dtype=_DTYPES[0])
        self._blocks.append(dict(zip(_COLUMNS, [phases, *columns])))

    def _flush(self) -> None:
        """Move the single operations recorded so far into a block (keeps the order)."""
        if self._pending["phase"]:
            self._blocks.append({name: np.array(self._pending[name], dtype=dtype)
                                 for name, dtype in zip(_COLUMNS, _DTYPES)})
            for column in self._pending.values():
                column.clear()

    def clear(self) -> None:
        self._pending: dict[str, list] = {name: [] for name in _COLUMNS}
        self._blocks: list[dict[str, np.ndarray]] = []

    def __len__(self) -> int:
        return len(self._pending["phase"]) + sum(len(block["phase"]) for block in self._blocks)

    @property
    def entries(self) -> list[LedgerEntry]:
        """The operations as records (a copy; for inspection and tests)."""
        c = self.to_arrays()
        return [LedgerEntry(PHASES[p], int(d), float(ed), float(et), float(t), int(n))
                for p, d, ed, et, t, n in zip(*(c[name] for name in _COLUMNS))]

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The operations as columns, for storing (NPZ) and rebuilding (``from_arrays``). A copy."""
        self._flush()
        if len(self._blocks) > 1:  # concatenate once; later reads reuse the result
            self._blocks = [{name: np.concatenate([b[name] for b in self._blocks]) for name in _COLUMNS}]
        if not self._blocks:
            return {name: np.zeros(0, dtype=dtype) for name, dtype in zip(_COLUMNS, _DTYPES)}
        return {name: self._blocks[0][name].copy() for name in _COLUMNS}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Ledger:
        ledger = cls()
        block = {name: np.array(arrays[name], dtype=dtype).ravel() for name, dtype in zip(_COLUMNS, _DTYPES)}
        if len(block["phase"]):
            ledger._blocks.append(block)
        return ledger

    def _select(self, phases, device: int | None) -> tuple[dict[str, np.ndarray], np.ndarray]:
        arrays = self.to_arrays()
        chosen = np.isin(arrays["phase"], [PHASES.index(p) for p in phases])
        if device is not None:
            chosen &= arrays["device"] == device
        return arrays, chosen

    def totals(self, phases=PHASES, device: int | None = None) -> dict[str, float]:
        """Sums over the chosen phases (and one device, if given)."""
        arrays, chosen = self._select(phases, device)
        return {
            "energy_device_J": float(arrays["energy_device_J"][chosen].sum()),
            "energy_total_J": float(arrays["energy_total_J"][chosen].sum()),
            "time_s": float(arrays["time_s"][chosen].sum()),
            "pulses": int(arrays["pulses"][chosen].sum()),
            "operations": int(chosen.sum()),
        }

    def by_phase(self) -> dict[str, dict[str, float]]:
        return {phase: self.totals((phase,)) for phase in PHASES}

    def by_device(self, n_devices: int, phases=("read", "reset", "program")) -> dict[str, np.ndarray]:
        """Per-device columns (for a CSV): energies, time and pulse counts."""
        arrays, chosen = self._select(phases, None)
        chosen &= (arrays["device"] >= 0) & (arrays["device"] < n_devices)
        devices = arrays["device"][chosen]
        return {name: np.bincount(devices, weights=arrays[name][chosen], minlength=n_devices)
                for name in ("energy_device_J", "energy_total_J", "time_s", "pulses")}
