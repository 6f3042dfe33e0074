"""The exceptions circuitnn raises. Each message says what to change."""


class CircuitnnError(Exception):
    """Base of every circuitnn error."""


class ConfigError(CircuitnnError, ValueError):
    """A configuration or parameter value is invalid.

    ``path`` is the dotted path of the field (``device.r_on_ohm``), so a user can find it in their
    TOML file; the message also gives the value and the allowed range.
    """

    def __init__(self, path: str, value: object, allowed: str):
        self.path, self.value, self.allowed = path, value, allowed
        super().__init__(f"{path} = {value!r} is invalid: allowed {allowed}")


class NetlistError(CircuitnnError, ValueError):
    """A name or value cannot be written into a netlist, or ngspice could not parse the circuit."""


class SimulationError(CircuitnnError, RuntimeError):
    """ngspice failed to simulate; names the circuit and the analysis or step."""

    def __init__(self, message: str, circuit: str = "?", step: str = "?", output: str = ""):
        self.circuit, self.step, self.output = circuit, step, output
        text = f"circuit {circuit!r}, {step}: {message}"
        if output:
            text += "\n--- ngspice said ---\n" + output
        super().__init__(text)


class CircuitRejectedError(SimulationError):
    """ngspice would not parse or set up the circuit (unknown subcircuit, model, parameter)."""


class ConvergenceError(SimulationError):
    """The operating point or transient did not converge (singular matrix, timestep too small)."""


class EngineCrashedError(SimulationError):
    """The ngspice worker died (or hung) and the retry after a restart failed as well."""
