"""Device models: each exists as pure NumPy physics and as an ngspice subcircuit."""
