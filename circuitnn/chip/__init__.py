"""The chip: device states plus the circuit around them, behind one small protocol.

Trainers, sweeps and reports talk to a ``Chip``; ``SpiceChip`` simulates it in ngspice, and the
surrogate backend (``SurrogateChip``) implements the same protocol in NumPy.
"""
