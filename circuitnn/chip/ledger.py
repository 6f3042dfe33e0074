"""Energy and time ledger: every read, pulse and inference a chip performs, as simulated.

Energies come from the simulated currents and voltages; times from the pulse and read schedule plus
the controller's per-operation overhead. Operations are kept individually so totals can be broken
down per device and per phase (read / reset / program / inference). Stored as columns, so that a
backend doing thousands of operations in one vectorised call records them in one ``add_many``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PHASES = ("read", "reset", "program", "inference")
_COLUMNS = ("phase", "device", "energy_device_J", "energy_total_J", "time_s", "pulses")
_DTYPES = (np.int8, np.int32, float, float, float, np.int32)


@dataclass(frozen=True)
class LedgerEntry:
    phase: str
    device: int             # -1 for whole-array operations (inference)
    energy_device_J: float  # dissipated in the memristor(s)
    energy_total_J: float   # delivered by the drivers: devices plus driver, switch and sense losses
    time_s: float           # simulated operation time plus controller overhead
    pulses: int = 0


class Ledger:
    def __init__(self, entries: list[LedgerEntry] | None = None):
        self._columns: dict[str, list] = {name: [] for name in _COLUMNS}
        for entry in entries or ():
            self.add(entry)

    def add(self, entry: LedgerEntry) -> None:
        self.add_many(entry.phase, [entry.device], [entry.energy_device_J], [entry.energy_total_J],
                      [entry.time_s], [entry.pulses])

    def add_many(self, phase: str, devices, energy_device_J, energy_total_J, time_s, pulses) -> None:
        """Record one operation per element of the (equally long) sequences, in order."""
        if phase not in PHASES:
            raise ValueError(f"unknown ledger phase {phase!r}; one of {PHASES}")
        devices = np.asarray(devices).ravel().tolist()
        values = [np.asarray(v).ravel().tolist() for v in (energy_device_J, energy_total_J, time_s, pulses)]
        if any(len(v) != len(devices) for v in values):
            raise ValueError("ledger columns must be equally long")
        columns = self._columns
        columns["phase"].extend([PHASES.index(phase)] * len(devices))
        columns["device"].extend(devices)
        for name, column in zip(_COLUMNS[2:], values):
            columns[name].extend(column)

    def clear(self) -> None:
        for column in self._columns.values():
            column.clear()

    def __len__(self) -> int:
        return len(self._columns["phase"])

    @property
    def entries(self) -> list[LedgerEntry]:
        """The operations as records (a copy; for inspection and tests)."""
        c = self._columns
        return [LedgerEntry(PHASES[p], int(d), float(ed), float(et), float(t), int(n))
                for p, d, ed, et, t, n in zip(*(c[name] for name in _COLUMNS))]

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The operations as columns, for storing (NPZ) and rebuilding (``from_arrays``)."""
        return {name: np.array(self._columns[name], dtype=dtype) for name, dtype in zip(_COLUMNS, _DTYPES)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Ledger:
        ledger = cls()
        for name in _COLUMNS:
            ledger._columns[name] = np.asarray(arrays[name]).tolist()
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
