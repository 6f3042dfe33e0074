"""A thin ctypes binding to libngspice (shared mode).

Only the handful of entry points a training loop needs. This object lives inside a worker process
(see ``worker.py``): one ngspice instance per process is all the library supports, and a malformed
circuit can abort the whole process, so the experiment's process must never load it.

Why not PySpice/InSpice: they are GPL, slower through their object layers, and treat ngspice 39's
harmless stderr ``Note:`` lines as failures (reference/ngspice-binding.md §2).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os


class _VecInfo(ctypes.Structure):
    _fields_ = [
        ("v_name", ctypes.c_char_p),
        ("v_type", ctypes.c_int),
        ("v_flags", ctypes.c_short),
        ("v_realdata", ctypes.POINTER(ctypes.c_double)),
        ("v_compdata", ctypes.c_void_p),
        ("v_length", ctypes.c_int),
    ]


_SendChar = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p)
_SendStat = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p)
_ControlledExit = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_int, ctypes.c_bool, ctypes.c_bool, ctypes.c_int, ctypes.c_void_p
)
_BGThreadRunning = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_bool, ctypes.c_int, ctypes.c_void_p)


def find_library() -> str:
    """Path or soname of libngspice: ``CIRCUITNN_NGSPICE_LIBRARY`` if set, else the system's."""
    explicit = os.environ.get("CIRCUITNN_NGSPICE_LIBRARY")
    if explicit:
        return explicit
    found = ctypes.util.find_library("ngspice")
    if not found:
        raise OSError(
            "libngspice not found: install Debian's packages 'ngspice libngspice0' "
            "(scripts/setup.sh does this) or set CIRCUITNN_NGSPICE_LIBRARY"
        )
    return found


def library_not_found_message(path: str | None, error: OSError) -> str:
    """One line for a libngspice that cannot be found or opened (the worker's ``fatal`` message)."""
    name = path or os.environ.get("CIRCUITNN_NGSPICE_LIBRARY") or "libngspice.so.0"
    detail = f" ({error})" if path or os.environ.get("CIRCUITNN_NGSPICE_LIBRARY") else ""
    return (f"{name} not found: install libngspice0 (scripts/setup.sh does), or set "
            f"CIRCUITNN_NGSPICE_LIBRARY to its path{detail}")


class NgSpiceLibrary:
    """One loaded libngspice. ``output`` collects every line ngspice prints (stdout and stderr)."""

    def __init__(self, path: str | None = None):
        self.path = path or find_library()
        self._lib = ctypes.CDLL(self.path)
        self.output: list[str] = []
        # Set when ngspice asks to be detached (e.g. an undefined parameter): the library is then
        # dead for good and the worker must be replaced.
        self.exit_status: int | None = None
        # The same, where C code running ngspice can see it (spice/compiled.py).
        self.exited = ctypes.c_int(0)
        self._setup_signatures()
        self._get_vec_info = self._lib.ngGet_Vec_Info
        self._names: dict[str, bytes] = {}
        # Keep references: ngspice calls these for the life of the process.
        self._callbacks = (
            _SendChar(self._on_output),
            _SendStat(lambda _msg, _id, _user: 0),
            _ControlledExit(self._on_exit),
            _BGThreadRunning(lambda _not_running, _id, _user: 0),
        )
        send_char, send_stat, controlled_exit, bg_running = self._callbacks
        self._lib.ngSpice_Init(send_char, send_stat, controlled_exit, None, None, bg_running, None)

    def _setup_signatures(self) -> None:
        lib = self._lib
        lib.ngSpice_Init.argtypes = [
            _SendChar, _SendStat, _ControlledExit, ctypes.c_void_p, ctypes.c_void_p,
            _BGThreadRunning, ctypes.c_void_p,
        ]
        lib.ngSpice_Init.restype = ctypes.c_int
        lib.ngSpice_Circ.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        lib.ngSpice_Circ.restype = ctypes.c_int
        lib.ngSpice_Command.argtypes = [ctypes.c_char_p]
        lib.ngSpice_Command.restype = ctypes.c_int
        lib.ngGet_Vec_Info.argtypes = [ctypes.c_char_p]
        lib.ngGet_Vec_Info.restype = ctypes.POINTER(_VecInfo)
        lib.ngSpice_CurPlot.restype = ctypes.c_char_p
        lib.ngSpice_AllVecs.argtypes = [ctypes.c_char_p]
        lib.ngSpice_AllVecs.restype = ctypes.POINTER(ctypes.c_char_p)

    def _on_output(self, message: bytes, _ident: int, _user: object) -> int:
        text = message.decode(errors="replace")
        # ngspice prefixes each line with the stream it would have used.
        for prefix in ("stdout ", "stderr "):
            if text.startswith(prefix):
                text = text[len(prefix):]
                break
        self.output.append(text)
        return 0

    def _on_exit(self, status: int, _unload: bool, _quit: bool, _ident: int, _user: object) -> int:
        self.exit_status = status
        self.exited.value = 1
        return status

    def load_circuit(self, lines: list[str]) -> int:
        """Hand a netlist (one string per line, no continuation joining needed) to ngspice."""
        encoded = [line.encode() for line in lines if line.strip()]
        array = (ctypes.c_char_p * (len(encoded) + 1))(*encoded, None)
        return self._lib.ngSpice_Circ(array)

    @property
    def functions(self) -> ctypes.CDLL:
        """The loaded library itself (for C code that calls ngspice directly: spice/compiled.py)."""
        return self._lib

    def command(self, text: str | None) -> int:
        """Run one ngspice command. ``None`` clears the command history (it leaks ~300 B/command)."""
        return self._lib.ngSpice_Command(None if text is None else text.encode())

    def vector(self, name: str) -> bytes | float | None:
        """A copy of a real vector of the current plot as its bytes (float64 in this machine's order:
        ``np.frombuffer`` reads it; a float when it has one point: operating points), or None when
        ngspice has no such vector. Bytes are what the worker sends: a pickled array costs ~25 µs
        to pickle and ~20 µs to unpickle once a solve has left the caches cold, bytes a few µs."""
        encoded = self._names.get(name)
        if encoded is None:
            encoded = self._names[name] = name.encode()
        pointer = self._get_vec_info(encoded)
        if not pointer:
            return None
        info = pointer.contents
        length = info.v_length
        if not info.v_realdata or length <= 0:
            return None
        if length == 1:  # operating points: skip the buffer machinery (~10 µs a vector)
            return info.v_realdata[0]
        # addressof(contents), not ctypes.cast: ~0.2 µs instead of ~1.2 µs, and a pulse reads six waveforms.
        return ctypes.string_at(ctypes.addressof(info.v_realdata.contents), length * 8)

    def vector_names(self) -> list[str]:
        """Names of all vectors in the current plot."""
        plot = self._lib.ngSpice_CurPlot()
        names = self._lib.ngSpice_AllVecs(plot)
        result = []
        i = 0
        while names[i]:
            result.append(names[i].decode())
            i += 1
        return result
