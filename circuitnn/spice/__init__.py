"""ngspice engines: in-process libngspice in a supervised worker, and the ``ngspice -b`` batch path."""
