"""Circuit topologies rendered to ngspice netlists: the only code that writes netlist text."""
