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
        super().__init__(f"{path} = {_shown(value)} is invalid: allowed {allowed}")


def _shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` on one line, shortened past ``limit`` characters (a 400-digit number, a
    pasted paragraph), so an error message stays one readable line."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"<an integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 20]}... ({len(text)} characters)"


class NetlistError(CircuitnnError, ValueError):
    """A name or value cannot be written into a netlist, or ngspice could not parse the circuit."""


class NgspiceNotFoundError(CircuitnnError, FileNotFoundError):
    """ngspice is not installed: the ``ngspice`` executable or libngspice is missing. The message
    says what to install."""


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
