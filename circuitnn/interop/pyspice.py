"""Hand circuitnn netlists to PySpice, for users who script their simulations in PySpice.

PySpice is an **optional** extra (``pip install 'circuitnn[pyspice]'``, pinned to PySpice 1.5) and
only this module touches it, lazily, inside its functions; importing ``circuitnn`` or this module
never imports PySpice. It stays optional because:

* it is GPL-3.0 (circuitnn is MIT), so it must not become a dependency of the core;
* it is unmaintained (1.5 is the last release) and does not know ngspice 39: it logs
  "Unsupported Ngspice version 39" and falls back to its ngspice-34 vector-type table;
* its shared-mode simulator treats every stderr line that does not start with ``Warning:`` as a
  failure, so ngspice 39's harmless ``Note:`` lines (e.g. "Note: vin0: dc value used for op instead
  of transient time=0 value.", "Note: Starting dynamic gmin stepping") make a valid run raise
  ``NgSpiceCommandError``;
* by default it loads ``libngspice.so``, the unversioned symlink that only Debian's
  ``libngspice0-dev`` ships; with only ``libngspice0`` installed it cannot find the library.
  (docs/reference/ngspice-binding.md §1-2.)

Why the netlist is carried as raw SPICE text: PySpice's own ``SpiceParser`` cannot read circuitnn
netlists. It rejects the 4-node selection switches (``s... n+ n- nc+ nc- swsel``: "Bad element line")
and fails on the B-sources (``V = expr`` written with spaces: "Unknown argument =").
So ``to_pyspice`` puts the netlist body into ``Circuit.raw_spice``: ``str(circuit)`` is circuitnn's
netlist line for line (the M-SDC ``.subckt ... params:``, ``.model swsel sw``, ``S`` switches,
B-sources and E-source op-amps all untouched), with three changes PySpice needs: the title line
becomes ``.title``, the analysis cards (``.op``, ``.tran`` ...) are dropped because PySpice's
simulator writes the analysis you ask for, and ``.end`` is left to PySpice.

``operating_point`` runs a ``.op`` through PySpice's ngspice-shared simulator and works around the
two problems above: it points PySpice at ``libngspice.so.0`` when ``libngspice.so`` is missing, and
it accepts a run whose only "errors" were ``Note:`` lines (it then reads the finished plot itself).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import sys
from pathlib import Path

from ..circuits.netlist import check_library_file, check_netlist, included_paths
from ..errors import NetlistError
from ..spice.init_files import init_environment, private_init_folder

log = logging.getLogger("circuitnn.interop.pyspice")

INSTALL_HINT = "pip install 'circuitnn[pyspice]'"

# Analysis cards circuitnn may write; PySpice's simulator adds the analysis it is asked to run.
ANALYSIS_CARDS = (".op", ".tran", ".ac", ".dc", ".noise", ".tf", ".pz", ".sens", ".disto")

_PYSPICE_SHARED_LOGGER = "PySpice.Spice.NgSpice.Shared.NgSpiceShared"


def _import_error(exc: ImportError) -> ImportError:
    error = ImportError(
        f"PySpice is not installed (it is an optional extra): {INSTALL_HINT}. "
        "PySpice is GPL-3.0 and unmaintained, so circuitnn's own engine (circuitnn.spice) never needs it."
    )
    error.__cause__ = exc
    return error


def _can_load(library: str) -> bool:
    try:
        ctypes.CDLL(library)
    except OSError:
        return False
    return True


def configure_ngspice_library() -> str:
    """Make sure PySpice's shared simulator can find libngspice; return the name it will load.

    PySpice 1.5 loads ``libngspice.so`` unless ``NGSPICE_LIBRARY_PATH`` is set, and that unversioned
    name exists only with Debian's ``libngspice0-dev``. When it cannot be loaded, this sets
    ``NGSPICE_LIBRARY_PATH`` to the library circuitnn itself uses (``CIRCUITNN_NGSPICE_LIBRARY`` or
    the system's ``libngspice.so.0``). A value you set yourself is kept. Call it before PySpice
    creates its first ngspice instance (``operating_point`` does).
    """
    chosen = os.environ.get("NGSPICE_LIBRARY_PATH")
    if not chosen:
        chosen = "libngspice.so"
        if not _can_load(chosen):
            from ..spice.ngspice import find_library

            chosen = find_library()
            os.environ["NGSPICE_LIBRARY_PATH"] = chosen
    # PySpice reads the variable once, when PySpice.Spice.NgSpice.Shared is first imported; if that
    # already happened and no ngspice instance exists yet, update the class it configured.
    shared_module = sys.modules.get("PySpice.Spice.NgSpice.Shared")
    if shared_module is not None:
        shared = shared_module.NgSpiceShared
        if not shared._instances and shared.LIBRARY_PATH != chosen:
            shared.LIBRARY_PATH = chosen
    return chosen


def to_pyspice(netlist_text: str, *, include_dir: str | os.PathLike | None = None):
    """A ``PySpice.Spice.Netlist.Circuit`` holding a circuitnn netlist (e.g. ``Crossbar.netlist``).

    The first line of ``netlist_text`` is the title (as ngspice reads it). The body goes into the
    circuit's ``raw_spice`` unchanged, except that analysis cards (``.op``, ``.tran`` ...) and
    ``.end`` are dropped: run the analysis through PySpice's simulator instead. ``.include`` lines
    become ``circuit.include(...)`` with the path resolved against ``include_dir`` (default: the
    current directory), because ngspice would otherwise resolve it against wherever PySpice runs.
    Netlists made with ``models="inline"`` (the default) need no include.

    Raises ImportError (with the install command) when PySpice is absent.
    """
    try:
        from PySpice.Spice.Netlist import Circuit
    except ImportError as exc:
        raise _import_error(exc) from exc

    lines = netlist_text.splitlines() if isinstance(netlist_text, str) else []
    if not lines or not lines[0].strip():
        raise NetlistError("netlist text is empty or has no title line (ngspice reads line 1 as the title)")
    # Only what circuitnn writes reaches ngspice: a '.control' block or a '*#' command would run.
    check_netlist(netlist_text, "netlist for PySpice")
    base = Path(include_dir) if include_dir is not None else Path.cwd()
    includes = [(base / target).resolve() for target in included_paths(netlist_text)]
    for path in includes:
        check_library_file(path, "netlist for PySpice: include")
    title, body = lines[0].strip(), []
    for line in lines[1:]:
        stripped = line.strip()
        keyword = stripped.split(None, 1)[0].lower() if stripped else ""
        if keyword == ".end":
            break
        if keyword in ANALYSIS_CARDS or keyword == ".include":
            continue
        body.append(line)

    circuit = Circuit(title)
    for path in includes:
        circuit.include(path)
    circuit.raw_spice = "\n".join(body)
    return circuit


class _DropNgspice39Noise(logging.Filter):
    """Hide PySpice's false alarms: 'Note:' lines logged as ERROR and the version-39 warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.getMessage()).strip()
        if message.startswith("Note:") or message.startswith("Unsupported Ngspice version"):
            log.debug("PySpice logged (ignored): %s", message)
            return False
        return True


@contextlib.contextmanager
def _quiet_pyspice_false_alarms():
    logger, noise = logging.getLogger(_PYSPICE_SHARED_LOGGER), _DropNgspice39Noise()
    logger.addFilter(noise)
    try:
        yield
    finally:
        logger.removeFilter(noise)


def _only_notes(ngspice) -> bool:
    """True when the failed command's output holds nothing worse than Note:/Warning: lines."""
    if ngspice._error_in_stdout:
        return False
    return all(not line.strip() or line.lstrip().startswith(("Note:", "Warning:"))
               for line in ngspice._stderr)


def shared_ngspice():
    """PySpice's process-wide ngspice-shared instance, created with the library fix applied.

    libngspice reads its init files (``spinit``, ``.spiceinit``) when the instance is created, from
    the current folder, HOME and SPICE_SCRIPTS: for that moment they all name a private folder
    holding circuitnn's own (spice/init_files.py), so no init file of the user's folder, home or
    environment runs. That folder is made once per process, for the one instance; later calls get
    that instance, which reads no init file again. (An instance PySpice made before, outside
    circuitnn, is returned as it is.)"""
    configure_ngspice_library()
    try:
        from PySpice.Spice.NgSpice.Shared import NgSpiceShared
    except ImportError as exc:
        raise _import_error(exc) from exc
    configure_ngspice_library()
    if 0 in NgSpiceShared._instances:  # new_instance's default id: it returns the instance it made
        return NgSpiceShared.new_instance()
    with _quiet_pyspice_false_alarms(), _private_init_files():
        return NgSpiceShared.new_instance()


@contextlib.contextmanager
def _private_init_files():
    """The current folder and the init-file variables pointing at a private folder, then restored."""
    folder, previous_folder = private_init_folder(), os.getcwd()
    previous = {name: os.environ.get(name) for name in init_environment(folder)}
    try:
        os.environ.update(init_environment(folder))
        os.chdir(folder)
        yield
    finally:
        os.chdir(previous_folder)
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(folder, ignore_errors=True)


def check_circuit(circuit) -> None:
    """NetlistError unless ``circuit`` (a PySpice ``Circuit``) reads as circuitnn's netlists do:
    its title, elements and ``raw_spice`` pass ``check_netlist`` and each file it includes holds
    model statements only. ``operating_point`` runs nothing else."""
    lines = str(circuit).splitlines()
    if not lines or not lines[0].lower().startswith(".title"):
        raise NetlistError("PySpice circuit: its text does not start with a '.title' line")
    title, body = lines[0][len(".title"):].strip(), []
    for line in lines[1:]:
        if line.strip().lower().split(None, 1)[:1] == [".include"]:
            check_library_file(line.strip()[len(".include"):].strip().strip("'\""), "PySpice circuit: include")
        else:
            body.append(line)
    check_netlist("\n".join([title or "circuit", *body, ".end"]) + "\n", "PySpice circuit", allow_include=False)


def operating_point(circuit) -> dict[str, float]:
    """Run ``.op`` on a PySpice circuit with PySpice's ngspice-shared simulator.

    Returns ngspice's vector names: each node voltage under its node name (``l1o0``,
    ``xl1_0_0.x``) and each voltage-source branch current under ``<source>#branch`` (``vin0#branch``),
    as floats; the same names circuitnn's ``SpiceEngine.run`` uses.

    Workarounds for PySpice 1.5 on ngspice 39 (see the module docstring): the library name is fixed
    up, and when PySpice raises ``NgSpiceCommandError`` only because ngspice printed ``Note:`` lines,
    the finished operating point is read from ngspice directly. Any other error is re-raised.
    After reading, the circuit and its plots are removed from ngspice (``remcirc``/``destroy``),
    otherwise every simulation leaves ~2.5 MB behind in the shared library.
    """
    check_circuit(circuit)
    ngspice = shared_ngspice()
    from PySpice.Spice.NgSpice.Shared import NgSpiceCommandError

    # PySpice writes '.options TEMP = 27C' and 'TNOM = 27C': ngspice's own defaults, as circuitnn uses.
    simulation = circuit.simulator(simulator="ngspice-shared", ngspice_shared=ngspice)
    with _quiet_pyspice_false_alarms():
        try:
            analysis = simulation.operating_point()
        except NgSpiceCommandError:
            if not _only_notes(ngspice):
                raise
            log.debug("PySpice rejected a run whose stderr held only notes: %s", ngspice.stderr)
            simulation.reset_analysis()
            plot_name = ngspice.last_plot
            if plot_name == "const":
                raise
            analysis = ngspice.plot(simulation, plot_name).to_analysis()
        finally:
            with contextlib.suppress(Exception):
                ngspice.remove_circuit()
                ngspice.destroy()
    values = {str(name): float(wave[0]) for name, wave in analysis.nodes.items()}
    values.update({f"{name}#branch": float(wave[0]) for name, wave in analysis.branches.items()})
    return values
