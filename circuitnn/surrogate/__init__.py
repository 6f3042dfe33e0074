"""The NumPy surrogate of the chip: the same circuit as ``SpiceChip`` simulates, solved in NumPy/SciPy.

* ``array.py``: the crossbar at DC (drivers, line resistance, switches, devices, sense resistors,
  reference current, finite-gain op-amps with offset) as a sparse nodal system, factorised once
  per change of device states and solved for a whole batch of inputs; the output clamp and the
  activation stage after it; the power drawn from the driving sources.
* ``pulses.py``: a programming pulse through the programming path, vectorised over devices: the
  state after it (exponential-integrator sub-steps, the device voltage from the series divider)
  and the device and source energies; verify reads in closed form.
* ``effects.py``: optional non-idealities (read and programming noise, device-to-device
  variation, stuck devices, DAC/ADC quantisation), all off by default, all seeded.
* ``calibration_params.py``: ``SurrogateCalibration``, the free parameters a fit against SPICE may
  set (identity by default); ``calibrate.py`` fits them.

The backend itself is ``circuitnn.chip.surrogate_chip.SurrogateChip``. The surrogate supports the
purely memristive device (``phi = 1``): at fixed state it is then a linear conductance, which is
what makes the DC solution of the array a linear solve.
"""

from .calibration_params import SurrogateCalibration

__all__ = ["SurrogateCalibration"]
