"""A NumPy reader for ngspice raw files (``ngspice -b -r out.raw``), binary or ASCII.

ngspice writes binary raw files by default and ASCII ones when ``SPICE_ASCIIRAWFILE=1`` is set. A
file holds one or more plots, one per analysis, each a text header followed by its data::

    Title: <first line of the netlist>
    Date: <when it ran>
    Plotname: Operating Point | Transient Analysis | AC Analysis | ...
    Flags: real | complex
    No. Variables: N
    No. Points: P
    Variables:
        0   v(l2a0)     voltage
        ...
    Binary:     then P x N little-endian float64 (complex: P x N pairs of float64, real then imag)
    Values:     or, in ASCII, per point: its index, then N values (complex: ``re,im``), one a line

Vector names. Every variable is stored under its name lower-cased as the file spells it
(``time``, ``frequency``, ``v(l2a0)``, ``v(xdut.x)``, ``i(vprog)``), and also under the name the
in-process engine uses for the same vector (ngspice's own vector name), so both paths are read with
the same keys:

* ``v(<node>)`` → ``<node>``          e.g. ``v(l2a0)`` → ``l2a0``, ``v(xdut.x)`` → ``xdut.x``
* ``i(<source>)`` → ``<source>#branch``  e.g. ``i(vprog)`` → ``vprog#branch``

An alias never replaces a name that the file itself contains; both keys hold the same array.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_VOLTAGE = re.compile(r"^v\(([^,()]+)\)$")
_CURRENT = re.compile(r"^i\(([^,()]+)\)$")


@dataclass(frozen=True)
class RawPlot:
    """One analysis result: vector name → array of shape (n_points,), float64 or complex128.

    Units are SPICE's: V for node voltages, A for branch currents, s for ``time``, Hz for
    ``frequency``. In a complex (AC) plot every vector is complex128 except the ``frequency`` scale,
    which is float64.
    """

    plotname: str
    title: str
    date: str
    flags: str
    variables: dict[str, np.ndarray]

    @property
    def n_points(self) -> int:
        return len(next(iter(self.variables.values()))) if self.variables else 0


def engine_name(raw_name: str) -> str | None:
    """The in-process (ngspice vector) name of a raw-file variable, or None if it is the same."""
    if match := _VOLTAGE.match(raw_name):
        return match.group(1)
    if match := _CURRENT.match(raw_name):
        return f"{match.group(1)}#branch"
    return None


def read_raw(path: str | Path) -> tuple[RawPlot, ...]:
    """All plots of an ngspice raw file, in file order. Raises ValueError if the file is malformed."""
    path = Path(path)
    data = path.read_bytes()
    plots: list[RawPlot] = []
    position = _skip_blank(data, 0)
    if position == len(data):
        raise _malformed(path, "the file is empty (no plot)")
    while position < len(data):
        plot, position = _read_plot(data, position, path, len(plots))
        plots.append(plot)
        position = _skip_blank(data, position)
    return tuple(plots)


def _read_plot(data: bytes, position: int, path: Path, index: int) -> tuple[RawPlot, int]:
    where = f"plot {index}"
    header: dict[str, str] = {}
    names: list[str] = []
    kinds: list[str] = []  # voltage, current, time, frequency, ...
    while True:
        line, position = _next_line(data, position)
        if line is None:
            raise _malformed(path, f"{where}: the header ends before 'Binary:' or 'Values:'")
        key, colon, value = line.partition(":")
        key = key.strip().lower()
        if not colon:
            raise _malformed(path, f"{where}: unexpected header line {line!r}")
        if key in ("binary", "values"):
            break
        if key == "variables":
            n_variables = _count(header, "No. Variables", path, where)
            for number in range(n_variables):
                line, position = _next_line(data, position)
                fields = (line or "").split()
                if len(fields) < 3 or fields[0] != str(number):
                    found = "the end of the file" if line is None else repr(line)
                    raise _malformed(path, f"{where}: variable {number} of {n_variables} should read "
                                           f"'<index> <name> <type>', found {found}")
                names.append(fields[1].lower())
                kinds.append(fields[2].lower())
        else:
            header[key] = value.strip()
    n_variables = _count(header, "No. Variables", path, where)
    n_points = _count(header, "No. Points", path, where)
    if len(names) != n_variables:
        raise _malformed(path, f"{where}: no 'Variables:' list before the data")
    if len(set(names)) != len(names):
        raise _malformed(path, f"{where}: a variable name appears twice in {names}")
    is_complex = "complex" in header.get("flags", "").lower().split()
    if key == "binary":
        values, position = _binary_values(data, position, n_points, n_variables, is_complex, path, where)
    else:
        values, position = _ascii_values(data, position, n_points, n_variables, is_complex, path, where)
    variables = {name: values[:, k].copy() for k, name in enumerate(names)}  # owned, writable
    for name, kind in zip(names, kinds):
        if kind == "frequency" and is_complex:
            # ngspice leaves the imaginary half of the frequency scale unset (garbage such as
            # 6e-243 or -1.5e186 was seen), so only the real part means anything.
            variables[name] = variables[name].real.copy()
    for name in names:
        alias = engine_name(name)
        if alias is not None and alias not in variables:
            variables[alias] = variables[name]
    plot = RawPlot(plotname=header.get("plotname", ""), title=header.get("title", ""),
                   date=header.get("date", ""), flags=header.get("flags", ""), variables=variables)
    return plot, position


def _binary_values(data, position, n_points, n_variables, is_complex, path, where):
    # ngspice fwrite()s native doubles; every platform it runs on for us is little-endian.
    dtype = np.dtype("<c16" if is_complex else "<f8")
    size = n_points * n_variables * dtype.itemsize
    block = data[position:position + size]
    if len(block) != size:
        raise _malformed(path, f"{where}: binary data is truncated: {n_points} points x {n_variables} "
                               f"variables need {size} bytes, the file has {len(block)}")
    return np.frombuffer(block, dtype=dtype).reshape(n_points, n_variables), position + size


def _ascii_values(data, position, n_points, n_variables, is_complex, path, where):
    # The section runs to the next plot's header (ngspice starts every plot with 'Title:') or EOF.
    end = data.find(b"\nTitle:", position)
    end = len(data) if end < 0 else end + 1
    tokens = data[position:end].decode("ascii", errors="replace").replace(",", " ").split()
    per_point = 1 + n_variables * (2 if is_complex else 1)  # the point's index, then its values
    if len(tokens) != n_points * per_point:
        raise _malformed(path, f"{where}: 'Values:' holds {len(tokens)} numbers, expected {n_points} "
                               f"points x {per_point} (index + {'re,im per' if is_complex else 'one per'}"
                               f" variable) = {n_points * per_point}")
    try:
        table = np.array(tokens, dtype=np.float64).reshape(n_points, per_point)[:, 1:]
    except ValueError as exc:
        raise _malformed(path, f"{where}: non-numeric text in 'Values:' ({exc})") from None
    if is_complex:
        table = table[:, 0::2] + 1j * table[:, 1::2]
    return table, end


def _next_line(data: bytes, position: int) -> tuple[str | None, int]:
    """The text line starting at ``position`` (without its newline) and where the next one starts."""
    if position >= len(data):
        return None, position
    end = data.find(b"\n", position)
    end = len(data) if end < 0 else end
    return data[position:end].decode("utf-8", errors="replace").rstrip("\r"), end + 1


def _skip_blank(data: bytes, position: int) -> int:
    while position < len(data) and data[position] in b" \t\r\n":
        position += 1
    return position


def _count(header: dict[str, str], key: str, path: Path, where: str) -> int:
    text = header.get(key.lower())
    if text is None:
        raise _malformed(path, f"{where}: the header has no '{key}:' line")
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise _malformed(path, f"{where}: '{key}: {text}' is not a count")
    return value


def _malformed(path: Path, what: str) -> ValueError:
    return ValueError(f"malformed ngspice raw file {str(path)!r}: {what}")
