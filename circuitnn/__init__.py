"""circuitnn: analog neural-network circuits in ngspice, on-chip training from Python,
and a calibrated NumPy surrogate for large networks."""

__version__ = "0.1.0"
