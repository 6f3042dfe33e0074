"""Energy and time ledger: every read, pulse and inference a chip performs, as simulated.

Energies come from the simulated currents and voltages; times from the pulse and read schedule plus
the controller's per-operation overhead. Entries are kept individually so totals can be broken
down per device and per phase (read / reset / program / inference).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PHASES = ("read", "reset", "program", "inference")


@dataclass(frozen=True)
class LedgerEntry:
    phase: str
    device: int             # -1 for whole-array operations (inference)
    energy_device_J: float  # dissipated in the memristor(s)
    energy_total_J: float   # delivered by the drivers: devices plus driver, switch and sense losses
    time_s: float           # simulated operation time plus controller overhead
    pulses: int = 0


@dataclass
class Ledger:
    entries: list[LedgerEntry] = field(default_factory=list)

    def add(self, entry: LedgerEntry) -> None:
        if entry.phase not in PHASES:
            raise ValueError(f"unknown ledger phase {entry.phase!r}; one of {PHASES}")
        self.entries.append(entry)

    def totals(self, phases=PHASES, device: int | None = None) -> dict[str, float]:
        """Sums over the chosen phases (and one device, if given)."""
        chosen = [e for e in self.entries if e.phase in phases and (device is None or e.device == device)]
        return {
            "energy_device_J": float(sum(e.energy_device_J for e in chosen)),
            "energy_total_J": float(sum(e.energy_total_J for e in chosen)),
            "time_s": float(sum(e.time_s for e in chosen)),
            "pulses": int(sum(e.pulses for e in chosen)),
            "operations": len(chosen),
        }

    def by_phase(self) -> dict[str, dict[str, float]]:
        return {phase: self.totals((phase,)) for phase in PHASES}

    def by_device(self, n_devices: int, phases=("read", "reset", "program")) -> dict[str, np.ndarray]:
        """Per-device columns (for a CSV): energies, time and pulse counts."""
        columns = {k: np.zeros(n_devices) for k in ("energy_device_J", "energy_total_J", "time_s", "pulses")}
        for e in self.entries:
            if e.phase in phases and 0 <= e.device < n_devices:
                columns["energy_device_J"][e.device] += e.energy_device_J
                columns["energy_total_J"][e.device] += e.energy_total_J
                columns["time_s"][e.device] += e.time_s
                columns["pulses"][e.device] += e.pulses
        return columns

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The entries as columns, for storing (NPZ) and rebuilding (``from_arrays``)."""
        return {
            "phase": np.array([PHASES.index(e.phase) for e in self.entries], dtype=np.int8),
            "device": np.array([e.device for e in self.entries], dtype=np.int32),
            "energy_device_J": np.array([e.energy_device_J for e in self.entries]),
            "energy_total_J": np.array([e.energy_total_J for e in self.entries]),
            "time_s": np.array([e.time_s for e in self.entries]),
            "pulses": np.array([e.pulses for e in self.entries], dtype=np.int32),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Ledger:
        entries = [LedgerEntry(PHASES[int(p)], int(d), float(ed), float(et), float(t), int(n))
                   for p, d, ed, et, t, n in zip(arrays["phase"], arrays["device"], arrays["energy_device_J"],
                                                 arrays["energy_total_J"], arrays["time_s"], arrays["pulses"])]
        return cls(entries)
