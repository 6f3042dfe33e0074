"""The surrogate's free parameters: the few knobs a calibration against SPICE may turn.

Every parameter is at its identity value by default, so an uncalibrated surrogate is the circuit's
exact physics as written in ``circuits/`` and ``devices/``. A fitted set (``surrogate/calibrate.py``)
says where it came from in ``name`` and ``source``, and every surrogate chip carries the set it
used (``SurrogateChip.calibration``, ``SurrogateChip.describe()``), so a surrogate result can always
name its calibration.

Where each parameter acts:

* ``pulse_width_scale_set`` / ``pulse_width_scale_reset``: multiply the flat-top width a device
  experiences for pulses of positive / negative amplitude (the device physics and its energies;
  the ledger keeps the nominal pulse schedule, which is what the controller spends in time).
* ``series_resistance_offset_ohm``: added to the programming path's series resistance in the
  physics of pulses and verify reads (the controller still infers G with the nominal path).
* ``gain_scale``: multiplies every neuron's feedback resistance R_f (the TIA's transimpedance).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..validation import check_range


@dataclass(frozen=True)
class SurrogateCalibration:
    name: str = "identity"
    source: str = "uncalibrated: every free parameter at its identity value"
    pulse_width_scale_set: float = 1.0
    pulse_width_scale_reset: float = 1.0
    series_resistance_offset_ohm: float = 0.0
    gain_scale: float = 1.0

    def __post_init__(self) -> None:
        check_range("calibration.pulse_width_scale_set", self.pulse_width_scale_set, 0.0, 100.0)
        check_range("calibration.pulse_width_scale_reset", self.pulse_width_scale_reset, 0.0, 100.0)
        check_range("calibration.series_resistance_offset_ohm", self.series_resistance_offset_ohm,
                    -1e6, 1e6, True)
        check_range("calibration.gain_scale", self.gain_scale, 0.0, 100.0)

    @property
    def is_identity(self) -> bool:
        return (self.pulse_width_scale_set == 1.0 and self.pulse_width_scale_reset == 1.0
                and self.series_resistance_offset_ohm == 0.0 and self.gain_scale == 1.0)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


IDENTITY = SurrogateCalibration()
