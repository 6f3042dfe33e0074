"""Runs on disk: one directory per experiment run; no kill at any moment leaves a run unreadable.

``<root>/<run_id>/`` holds::

    run.json            the record: id, kind, name, created (UTC ISO 8601), status ("running" |
                        "complete" | "failed" | "interrupted"), config, seed, labels, versions, files
                        (relative path → {"size": bytes, "sha256": hex} of every file written through
                        the run), checkpoints, summary, error
    .lock               held (flock) by the process writing the run, with its PID
    netlists/*.cir      the netlists the run simulated
    anything.csv/.npz/.png/.json/.txt   results and figures, at relative paths the experiment chooses
    checkpoints/*.npz   resumable state (``Run.checkpoint``)

Writing. A file goes to a hidden temporary file, reaches the disk, and is renamed into place; run.json
(rewritten the same way) records it afterwards. Overwriting a recorded file (a checkpoint saved again,
a summary rewritten) takes one more step: run.json first records the new content *with the old one
as an accepted "previous" state*, then the file is renamed into place, then run.json drops the old
state. So at every instant run.json accepts what is on disk, and a kill anywhere leaves a run that
opens, reports and resumes (an interrupted overwrite reads as the old or the new file, never as a
damaged run); ``resume`` settles it. Only whole files are ever visible.

Reading. Every path read comes from run.json or a caller and must stay inside the run directory
(no absolute paths, no '..', no symbolic link leading out). Every recorded file is checked against
its size and SHA-256 when the run is opened and again when it is read: a changed byte is a
CorruptRunError naming the file. Runs written before hashes were recorded (``files`` maps a path to
its size alone) stay readable, checked by size only.

Locking. ``create`` and ``resume`` take an exclusive lock on ``.lock`` (``fcntl.flock``) held until
the run is completed, failed or closed, or the process ends (the OS drops it however the process
dies: there are no stale locks). A second writer gets RunLockedError naming the run and the PID of
the holder. Only a locked Run writes; ``open`` gives a read-only Run.

The directories are the truth; ``index.sqlite`` (index.py) only speeds up listing. The store never
deletes or repairs a finished run: a damaged run raises CorruptRunError naming its directory.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import os
import platform
import re
import secrets
import shutil
import signal
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePath
from typing import BinaryIO, Self

import numpy as np

from .. import __version__
from ..errors import CircuitnnError
from .index import RunIndex

RUN_FILE = "run.json"
INDEX_FILE = "index.sqlite"
CHECKPOINTS = "checkpoints"
LOCK_FILE = ".lock"
STATUSES = ("running", "complete", "failed", "interrupted")
_REQUIRED = {"id": str, "kind": str, "created": str, "status": str, "config": dict, "seed": int,
             "labels": dict, "versions": dict, "files": dict}
_STATE_KEY = "__state_json__"  # the checkpoint's JSON state, stored beside its arrays in one .npz
_CHECKPOINT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_LOOKS = 5  # reads of a run being written before a mismatch counts as damage (each after run.json changed)
_TEMPORARY = re.compile(r"\..+\.[0-9a-f]{8}\.tmp")  # write_atomic's hidden temporary files


class StoreError(CircuitnnError):
    """The store cannot do what was asked: a path outside the run, a finished run written or resumed,
    an unknown run id. The message says what to do instead."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped a run while it was being written. The run is marked "interrupted",
    keeps everything it saved and resumes from its checkpoints; ``run`` is that Run. (Held while the
    run's completion was recorded, Ctrl-C arrives after it: ``run`` is then complete.)"""

    def __init__(self, run: Run):
        super().__init__(f"run {run.id} interrupted")
        self.run = run


class CorruptRunError(StoreError):
    """A run directory is damaged: run.json missing, unparseable or incomplete, or a file it records
    missing or truncated. ``run_dir`` and ``problem`` say where and what; nothing was changed."""

    def __init__(self, run_dir: Path, problem: str):
        self.run_dir, self.problem = Path(run_dir), problem
        super().__init__(f"corrupt run directory {self.run_dir}: {problem}")


class RunExistsError(StoreError):
    """``RunStore.create`` was given a run id that is already a run in the store."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        super().__init__(f"run {self.run_dir.name} exists already in {self.run_dir.parent}; open or resume it")


class RunLockedError(StoreError):
    """Another process is writing the run: it holds the run's lock. ``pid`` is that process (None if
    it has not written its PID yet)."""

    def __init__(self, run_dir: Path, pid: int | None):
        self.run_dir, self.pid = Path(run_dir), pid
        super().__init__(f"run {self.run_dir.name} is being written by {holder_text(pid)} (lock "
                         f"{self.run_dir / LOCK_FILE}); wait for it to end, or stop it, then resume")


class RunLock:
    """The exclusive lock of one run directory, held by the process writing it.

    ``fcntl.flock`` on ``<run>/.lock``, taken without waiting; the holder's PID is written into the
    file for the error message of the next writer. The OS releases the lock when the file is closed
    or the process ends, whatever ends it; the descriptor is close-on-exec, so worker processes
    never inherit (and so never prolong) it.
    """

    def __init__(self, run_dir: Path):
        self._fd: int | None = None
        self.path = Path(run_dir) / LOCK_FILE
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise StoreError(f"cannot lock run {Path(run_dir).name} for writing: {self.path}: "
                             f"{err.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise RunLockedError(run_dir, holder) from None
        except OSError as err:  # a filesystem without locks (some network mounts)
            os.close(fd)
            raise StoreError(f"cannot lock run {Path(run_dir).name} for writing: {self.path}: "
                             f"{err.strerror}") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give the lock up (closing the file releases the flock); the file itself stays."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __del__(self) -> None:
        self.release()


def _lock_holder(fd: int) -> int | None:
    """The PID the holder of a run's lock wrote into the lock file (None if not written yet)."""
    holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(holder) if holder.isdigit() else None


def holder_text(pid: int | None) -> str:
    """A lock holder as a message names it."""
    return f"process {pid}" if pid else "another process"


def writer_of(run_dir: Path) -> int | bool | None:
    """Who writes ``run_dir`` now: False if no process holds its lock (a "running" run whose process
    was killed), else the holder's PID (None if it has not written it yet).

    Probed with a shared lock taken and dropped at once, so a listing never holds a run; a writer
    starting in that same instant is the only one that could notice it."""
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False  # never locked (or not readable): nobody holds it
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _lock_holder(fd)
        except OSError:
            return None  # no locks on this filesystem: say nothing certain
        return False
    finally:
        os.close(fd)  # drops the shared lock if it was taken


# -- writing files ---------------------------------------------------------------------------------------
def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> int:
    """Write ``path`` through ``write(handle)`` atomically; returns the file's size in bytes.

    The bytes go to a hidden temporary file in the same directory (a rename is atomic only within one
    filesystem), reach the disk (fsync), and only then replace ``path``. A reader, or a run
    interrupted at any point, sees the old file or the new one, never a part; if ``write`` raises,
    the temporary file is removed and ``path`` is untouched.
    """
    temporary, size = _write_temporary(path, write)
    _replace(temporary, path)
    return size


def _write_temporary(path: Path, write: Callable[[BinaryIO], object]) -> tuple[Path, int]:
    """The new content of ``path`` in a hidden temporary file beside it, on disk: (its path, size)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        with open(temporary, "xb") as handle:  # "x": never reuse a file; mode follows the umask
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
            size = os.fstat(handle.fileno()).st_size
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary, size


def _replace(temporary: Path, path: Path) -> None:
    """Rename ``temporary`` over ``path`` and make the rename itself durable (the folder's fsync)."""
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _deferred_interrupt():
    """Hold Ctrl-C (SIGINT), SIGTERM and SIGHUP until the block is done, then deliver them.

    A file and run.json's record of it are two writes; interrupted between them, the record would
    name another size than the file has and the run could not be opened again (or, stopped between
    writing run.json and taking its contents, the failure record would drop the checkpoint just
    saved). Only the main thread receives signals, so elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    held = [number for number in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None))
            if number and signal.getsignal(number) is not None]  # None: set outside Python, cannot be restored
    previous = {number: signal.signal(number, lambda number, frame: received.append(number)) for number in held}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    for number in dict.fromkeys(received):
        signal.raise_signal(number)  # to the handler restored above (KeyboardInterrupt for SIGINT by default)


def _jsonable(value):
    """NumPy scalars and arrays, and paths, as JSON values (configs and summaries often hold them)."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, PurePath):
        return str(value)
    raise TypeError(f"{type(value).__name__} {value!r:.60} is not JSON-serializable")


def _json_bytes(obj, what: str) -> bytes:
    try:
        return json.dumps(obj, indent=2, default=_jsonable).encode()
    except (TypeError, ValueError) as err:
        raise StoreError(f"{what}: {err}; store dicts, lists, strings, numbers, booleans or None") from None


def _fingerprint(record: dict, digests: Mapping[str, str]) -> str:
    """SHA-256 of what fixes a run's results: kind, config, seed, labels and the content (SHA-256
    ``digests``) of the files it is created with (its plan); not its id, name, time or versions."""
    what = {key: record[key] for key in ("kind", "config", "seed", "labels")}
    what["files"] = dict(sorted(digests.items()))
    return hashlib.sha256(json.dumps(what, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


# -- the record ------------------------------------------------------------------------------------------
def collect_versions() -> dict[str, str]:
    """Versions of everything that shapes a result: circuitnn, ngspice, Python, numpy, scipy, matplotlib."""
    from ..spice import batch  # here, not at the top: listing runs should not load the SPICE layer

    try:
        ngspice = batch.ngspice_version()
    except Exception:  # noqa: BLE001 - a missing or odd ngspice must not stop a run (surrogate runs never use it)
        ngspice = "unavailable"
    versions = {"circuitnn": __version__, "ngspice": ngspice, "python": platform.python_version()}
    for package in ("numpy", "scipy", "matplotlib"):
        try:  # the installed metadata, so recording a version never imports a package
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def read_record(run_dir: Path) -> dict:
    """run.json of ``run_dir`` as a dict, checked for every field (CorruptRunError if not)."""
    try:
        record = json.loads((run_dir / RUN_FILE).read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise CorruptRunError(run_dir, f"{RUN_FILE} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise CorruptRunError(run_dir, f"{RUN_FILE} cannot be read: {err}") from None
    check_record(record, run_dir)
    return record


def check_record(record, run_dir: Path) -> None:
    """CorruptRunError unless ``record`` is a run.json of ``run_dir`` as the store writes it: every
    field of the right type, and every file and checkpoint it names a plain path inside the run."""
    if not isinstance(record, dict):
        raise CorruptRunError(run_dir, f"{RUN_FILE} holds a {type(record).__name__}, not an object")
    missing = [key for key in _REQUIRED if key not in record]
    if missing:
        raise CorruptRunError(run_dir, f"{RUN_FILE} is incomplete: it lacks {', '.join(missing)}")
    wrong = [f"{key} is {type(record[key]).__name__}, not {kind.__name__}"
             for key, kind in _REQUIRED.items() if not isinstance(record[key], kind)]
    if wrong:
        raise CorruptRunError(run_dir, f"{RUN_FILE} is invalid: {'; '.join(wrong)}")
    if isinstance(record["seed"], bool):
        wrong.append("seed is bool, not int")
    if record["status"] not in STATUSES:
        wrong.append(f"status {record['status']!r:.40} is not one of {', '.join(STATUSES)}")
    if record["id"] != run_dir.name:
        wrong.append(f"id {record['id']!r:.80} is not the directory's name")
    for key, kinds in (("name", str), ("summary", dict), ("error", str), ("latest_checkpoint", str),
                       ("checkpoints", dict), ("fingerprint", str)):
        if record.get(key) is not None and not isinstance(record[key], kinds):
            wrong.append(f"{key} is {type(record[key]).__name__}, not {kinds.__name__} or null")
    for what in ("labels", "versions"):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in record[what].items()):
            wrong.append(f"{what} must map text to text")
    try:
        datetime.fromisoformat(record["created"])
    except ValueError:
        wrong.append(f"created {record['created']!r:.40} is not an ISO 8601 time")
    for rel, entry in record["files"].items():
        problem = _path_problem(rel) or _entry_problem(entry)
        if problem:
            wrong.append(f"files entry {rel!r:.80} {problem}")
    checkpoints = record.get("checkpoints") or {}
    for name in checkpoints:
        if not _CHECKPOINT_NAME.fullmatch(name):
            wrong.append(f"checkpoint name {name!r:.80} is not a plain name")
    latest = record.get("latest_checkpoint")
    if isinstance(latest, str) and latest not in checkpoints:
        wrong.append(f"latest_checkpoint {latest!r:.80} is not among the checkpoints")
    if wrong:
        raise CorruptRunError(run_dir, f"{RUN_FILE} is invalid: {'; '.join(wrong)}")


def _path_problem(rel) -> str | None:
    """Why ``rel`` (from run.json or a caller) is not a plain relative path inside a run, or None."""
    if not isinstance(rel, str) or not rel:
        return "is not a relative path"
    relative = PurePath(rel)
    if relative.anchor or "\\" in rel:
        return "is absolute"
    if ".." in relative.parts:
        return "climbs out with '..'"
    if any(part.startswith(".") for part in relative.parts):
        return "has a part starting with '.', kept for the store's own files"
    if any(ord(ch) < 32 for ch in rel):
        return "holds a control character"
    return None


def _entry_problem(entry) -> str | None:
    """Why a run.json 'files' entry is not {"size", "sha256"[, "previous"]} (or an old run's size)."""
    def plain(value) -> bool:
        if isinstance(value, int) and not isinstance(value, bool):  # written before hashes were recorded
            return value >= 0
        return (isinstance(value, dict) and set(value) <= {"size", "sha256"} and isinstance(value.get("size"), int)
                and not isinstance(value["size"], bool) and value["size"] >= 0
                and isinstance(value.get("sha256"), str) and bool(_DIGEST.fullmatch(value["sha256"])))

    if isinstance(entry, dict) and "previous" in entry:
        if plain({k: v for k, v in entry.items() if k != "previous"}) and plain(entry["previous"]):
            return None
    elif plain(entry):
        return None
    return "is not a size and SHA-256"


def _accepted(entry) -> list[dict]:
    """The states of a file run.json accepts: [{"size"[, "sha256"]}], the new one first."""
    def state(value) -> dict:
        return {"size": value} if isinstance(value, int) else {k: value[k] for k in ("size", "sha256") if k in value}

    if isinstance(entry, dict) and "previous" in entry:
        return [state(entry), state(entry["previous"])]
    return [state(entry)]


def _size(entry) -> int:
    return entry if isinstance(entry, int) else entry["size"]


def _inside(run_dir: Path, rel: str) -> Path:
    """The path of ``rel`` in ``run_dir`` after following links; CorruptRunError if a symbolic link
    leads it outside the run."""
    path = run_dir / rel
    if not path.resolve().is_relative_to(run_dir.resolve()):
        raise CorruptRunError(run_dir, f"{rel} leads outside the run through a symbolic link")
    return path


def _check_file(run_dir: Path, rel: str, entry, data: bytes | None = None) -> str | None:
    """Why the file ``rel`` does not match its run.json entry (size, then SHA-256), or None.
    ``data``: its bytes, if already read."""
    path = _inside(run_dir, rel)
    try:
        size = len(data) if data is not None else path.stat().st_size
    except OSError:
        return f"{rel} is missing"
    states = _accepted(entry)
    if not any(state["size"] == size for state in states):
        return f"{rel} has {size} bytes, {states[0]['size']} were written"
    with_hash = [state for state in states if state["size"] == size and "sha256" in state]
    if len(with_hash) < len([state for state in states if state["size"] == size]):
        return None  # an old run's entry: its size is all there is to check
    digest = hashlib.sha256(data).hexdigest() if data is not None else _sha256(path)
    if not any(state["sha256"] == digest for state in with_hash):
        return f"{rel} has changed since it was written (its SHA-256 is not the one recorded)"
    return None


def _check_files(run_dir: Path, record: dict) -> None:
    """CorruptRunError if a file run.json records is missing, outside the run, or not what was written."""
    problems = [problem for rel, entry in record["files"].items()
                if (problem := _check_file(run_dir, rel, entry)) is not None]
    if problems:
        raise CorruptRunError(run_dir, "; ".join(problems) + " (restore the files from a copy, or start "
                              "a new run; the record of what the run wrote is run.json 'files')")


@dataclass(frozen=True)
class RunInfo:
    """What a run's run.json said when read: enough to list, filter and report the run."""

    id: str
    path: Path                 # the run directory
    kind: str                  # "train", "compare-media", ...
    name: str | None
    created: str               # UTC, ISO 8601 with microseconds
    status: str                # "running" | "complete" | "failed" | "interrupted"
    config: dict
    seed: int
    labels: dict[str, str]     # e.g. {"medium": "Cr"}
    versions: dict[str, str]
    summary: dict | None       # given to Run.complete
    error: str | None          # given to Run.fail
    latest_checkpoint: str | None
    fingerprint: str | None = None  # equal for runs of the same kind, config, seed, labels and plan

    @classmethod
    def from_record(cls, record: dict, path: Path) -> RunInfo:
        return cls(record["id"], Path(path), record["kind"], record.get("name"), record["created"],
                   record["status"], record["config"], record["seed"], record["labels"],
                   record["versions"], record.get("summary"), record.get("error"),
                   record.get("latest_checkpoint"), record.get("fingerprint"))


class RunListing(list):
    """A list of RunInfo, newest first, plus ``skipped``: a CorruptRunError per damaged run."""

    def __init__(self, infos: Iterable[RunInfo], skipped: Iterable[CorruptRunError] = ()):
        super().__init__(infos)
        self.skipped = list(skipped)


# -- one run ----------------------------------------------------------------------------------------------
class Run:
    """One run directory: write results while it is "running" and locked, read them at any status.

    Paths are relative to the run directory (``"figures/loss.png"``); absolute paths, ``..``, names
    starting with "." (the store's own files) and run.json itself are refused. Each write is atomic
    and then recorded in run.json's ``files`` with its size and SHA-256, so a later read notices a
    missing or changed file. A Run from ``RunStore.create`` or ``resume`` holds the run's lock until
    ``complete``, ``fail``, ``interrupt`` or ``close`` (or the end of the process); one from ``open``
    only reads. Used as a context manager, an exception leaving the block marks the run failed, and
    Ctrl-C (KeyboardInterrupt) marks it interrupted and raises ``RunInterrupted``; both resume, and
    leaving the block releases the lock.
    """

    def __init__(self, path: Path, record: dict, lock: RunLock | None = None):
        self.path = Path(path)
        self._record = record
        self._lock = lock

    @property
    def id(self) -> str:
        return self._record["id"]

    @property
    def status(self) -> str:
        return self._record["status"]

    @property
    def info(self) -> RunInfo:
        return RunInfo.from_record(self._record, self.path)

    @property
    def files(self) -> dict[str, int]:
        """Relative path → size in bytes of every file written through this run."""
        return {rel: _size(entry) for rel, entry in self._record["files"].items()}

    @property
    def writable(self) -> bool:
        """True while this Run holds the run's lock and the run is "running"."""
        return self._lock is not None and self._lock.held and self.status == "running"

    def __repr__(self) -> str:
        return f"Run({self.id!r}, status={self.status!r}, path={str(self.path)!r})"

    # -- writing -----------------------------------------------------------------------------------------
    def write_bytes(self, rel: str | PurePath, data: bytes) -> Path:
        return self._write(rel, lambda handle: handle.write(data))

    def write_text(self, rel: str | PurePath, text: str) -> Path:
        return self.write_bytes(rel, text.encode("utf-8"))

    def write_json(self, rel: str | PurePath, obj) -> Path:
        """``obj`` as indented JSON; NumPy values become lists and numbers."""
        return self.write_bytes(rel, _json_bytes(obj, f"{self.id}/{rel}"))

    def write_netlists(self, texts: Mapping[str, str]) -> list[Path]:
        """``netlists/<file name>`` for each file name → netlist text (``SpiceChip.netlists()``)."""
        return [self.write_text(PurePath("netlists", name), text) for name, text in texts.items()]

    def write_csv(self, rel: str | PurePath, table: Mapping[str, Sequence] | Sequence[Mapping]) -> Path:
        """A CSV with one header row, from columns (name → 1-D array-like, all equally long) or from
        rows (a sequence of dicts: the header is their keys in first-seen order, gaps left empty)."""
        header, rows = _table_rows(table, f"{self.id}/{rel}")
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        return self.write_text(rel, buffer.getvalue())

    def write_npz(self, rel: str | PurePath, /, **arrays) -> Path:
        """Arrays of any shapes and dtypes (no Python objects) in one uncompressed ``.npz``."""
        return self._write(rel, lambda handle: np.savez(handle, **arrays))

    def save_figure(self, rel: str | PurePath, figure, dpi: int = 150) -> Path:
        """A matplotlib Figure as PNG at ``dpi`` dots per inch; ``rel`` must end in .png."""
        if PurePath(rel).suffix.lower() != ".png":
            raise StoreError(f"figures are saved as PNG: name {rel!r} with a .png suffix")
        return self._write(rel, lambda handle: figure.savefig(handle, format="png", dpi=dpi))

    # -- reading -----------------------------------------------------------------------------------------
    def read_bytes(self, rel: str | PurePath) -> bytes:
        """The bytes of a file the run recorded, checked against its size and SHA-256.

        A Run opened for reading while another process writes the run may hold a record older than
        a file it reads (the writer overwrote it since): the check then reads run.json again and
        looks once more, so only a file that run.json, as it is now, does not accept is corrupt."""
        key, path = self._resolve(rel, reserved_ok=True)
        for attempt in range(_LOOKS):
            entry = self._record["files"].get(key)
            if entry is None and key != RUN_FILE:
                written = sorted(self._record["files"])
                raise StoreError(f"run {self.id} has no file {key!r}; it wrote {written}")
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise CorruptRunError(self.path, f"{key} is missing (run.json records it)") from None
            except OSError as err:
                raise CorruptRunError(self.path, f"{key} cannot be read: {err.strerror}") from None
            problem = _check_file(self.path, key, entry, data) if entry is not None else None
            if problem is None:
                return data
            if self._lock is not None or attempt + 1 == _LOOKS or not self._refresh():
                raise CorruptRunError(self.path, problem)
        raise AssertionError("unreachable")

    def _refresh(self) -> bool:
        """Read run.json again (a reader's record, after the writer changed it); True if it changed."""
        record = read_record(self.path)
        if record == self._record:
            return False
        self._record = record
        return True

    def read_text(self, rel: str | PurePath) -> str:
        try:
            return self.read_bytes(rel).decode("utf-8")
        except UnicodeDecodeError as err:
            raise CorruptRunError(self.path, f"{rel} is not UTF-8 text: {err}") from None

    def read_json(self, rel: str | PurePath):
        try:
            return json.loads(self.read_bytes(rel))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
            raise CorruptRunError(self.path, f"{rel} is not valid JSON: {err}") from None

    def read_csv(self, rel: str | PurePath, numeric: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """Column name → 1-D array: float64 where every cell is a number (empty cells are NaN), else str.

        ``numeric``: columns the caller computes with; each must exist and hold only numbers. A
        missing column (here or on a later lookup) or a text cell in one is a CorruptRunError naming
        the file, the column and the row."""
        rows = list(csv.reader(io.StringIO(self.read_text(rel))))
        if not rows or any(len(row) != len(rows[0]) for row in rows):
            raise CorruptRunError(self.path, f"{rel} is not a CSV table with one header row and equal rows")
        header, body = rows[0], rows[1:]
        columns = zip(*body, strict=True) if body else [()] * len(header)
        table = _Table({name: _column(cells) for name, cells in zip(header, columns, strict=True)},
                       self.path, str(rel))
        for name in numeric:
            values = table[name]
            if values.dtype.kind != "f":
                row = next(i for i, cell in enumerate(values) if not _is_number_text(cell))
                raise CorruptRunError(self.path, f"{rel}, column {name!r}, row {row + 2}: "
                                      f"{str(values[row])[:40]!r} is not a number")
        return table

    def read_npz(self, rel: str | PurePath) -> dict[str, np.ndarray]:
        """Name → array, all loaded into memory (the file is closed on return)."""
        try:
            with np.load(io.BytesIO(self.read_bytes(rel)), allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        except (ValueError, OSError, EOFError) as err:
            raise CorruptRunError(self.path, f"{rel} is not a readable .npz: {err}") from None

    def json_part(self, rel: str | PurePath, compute: Callable[[], object]):
        """The JSON stored at ``rel``, or ``compute()`` stored there first: one step of a run that
        ``resume`` skips once it is written."""
        if str(PurePath(rel)) not in self.files:
            self.write_json(rel, compute())
        return self.read_json(rel)

    # -- checkpoints -------------------------------------------------------------------------------------
    @property
    def latest_checkpoint(self) -> str | None:
        """Name of the checkpoint saved last, the one ``resume`` continues from; None before the first."""
        return self._record.get("latest_checkpoint")

    def checkpoint(self, name: str, state: Mapping, arrays: Mapping[str, np.ndarray] | None = None) -> Path:
        """Save resumable state as ``checkpoints/<name>.npz`` and make it the latest checkpoint.

        ``state`` is JSON-able (epoch, step, learning rate, RNG state); ``arrays`` are NumPy arrays
        of any shape (device states, weights). Both go into one file, so no crash can pair the state
        of one save with the arrays of another. The run.json rewrite that names the latest checkpoint
        comes last: interrupted before it, the previous checkpoint stays the latest. Saving under an
        existing name replaces that checkpoint as atomically as a new one is written: a kill at any
        point leaves the old checkpoint or the new one, both resumable (see the module docstring).
        """
        if not isinstance(name, str) or not _CHECKPOINT_NAME.fullmatch(name):
            raise StoreError(f"checkpoint name {name!r}: use letters, digits, '_', '.', '-' ('epoch-0005')")
        arrays = dict(arrays or {})
        if _STATE_KEY in arrays:
            raise StoreError(f"checkpoint {name!r}: {_STATE_KEY!r} is reserved; rename that array")
        state_json = _json_bytes(dict(state), f"checkpoint {name!r} state").decode()
        self._require_running(f"save checkpoint {name!r}")
        key, path = self._resolve(PurePath(CHECKPOINTS, f"{name}.npz"), reserved_ok=True)
        contents = {_STATE_KEY: np.array(state_json), **arrays}
        with _deferred_interrupt():
            self._put(key, path, lambda handle: np.savez(handle, **contents), latest_checkpoint=name,
                      checkpoints={**self._record.get("checkpoints", {}), name: _now()})
        return path

    def load_checkpoint(self, name: str | None = None) -> tuple[dict, dict[str, np.ndarray]] | None:
        """(state, arrays) of checkpoint ``name`` (default: the latest), or None if there is none."""
        name = self.latest_checkpoint if name is None else name
        if name is None or name not in self._record.get("checkpoints", {}):
            return None
        arrays = self.read_npz(PurePath(CHECKPOINTS, f"{name}.npz"))
        if _STATE_KEY not in arrays:
            raise CorruptRunError(self.path, f"checkpoint {name!r} has no state ({_STATE_KEY!r})")
        return json.loads(str(arrays.pop(_STATE_KEY))), arrays

    # -- status ------------------------------------------------------------------------------------------
    def complete(self, summary: Mapping) -> None:
        """Mark the run complete with ``summary`` (JSON-able: final accuracy, energy_J, ...); this
        releases the lock."""
        self._require_running("complete it")
        self._save_record(status="complete", summary=dict(summary), finished=_now())
        self.close()

    def fail(self, message: str) -> None:
        """Mark the run failed with ``message`` (what went wrong); it can then be resumed. This
        releases the lock."""
        self._require_running("mark it failed")
        self._save_record(status="failed", error=str(message), finished=_now())
        self.close()

    def close(self) -> None:
        """Stop writing: release the run's lock (a "running" run stays resumable). Reading goes on."""
        if self._lock is not None:
            self._lock.release()

    def interrupt(self) -> None:
        """Mark the run interrupted (stopped by the user, not by an error); it can then be resumed.
        This releases the lock."""
        self._require_running("mark it interrupted")
        self._save_record(status="interrupted", error="interrupted by the user (Ctrl-C)", finished=_now())
        self.close()

    def __enter__(self) -> Self:
        """Used as a context manager, an error leaving the block marks the run failed (Ctrl-C:
        interrupted) and carries it as the error's ``stored_run``."""
        return self

    def __exit__(self, kind, error, traceback) -> None:
        try:
            if error is not None and self.writable:
                if isinstance(error, KeyboardInterrupt):
                    self.interrupt()
                    if not isinstance(error, RunInterrupted):
                        raise RunInterrupted(self) from error
                    return
                self.fail(f"{kind.__name__}: {error}")
            elif isinstance(error, KeyboardInterrupt) and not isinstance(error, RunInterrupted) \
                    and self.status == "complete":
                # Ctrl-C held while the run completed: it is done, and the interrupt names it.
                raise RunInterrupted(self) from error
            if error is not None and getattr(error, "stored_run", None) is None:
                # Whoever reports the error (the CLI's one line) can name the run and how it resumes.
                with contextlib.suppress(AttributeError, TypeError):
                    error.stored_run = self
        finally:
            self.close()

    # -- internals ---------------------------------------------------------------------------------------
    def _reopen(self) -> None:
        """Set a failed, interrupted or still-"running" (killed) run running again, keeping what
        happened, and settle what an interrupted writer left: an overwrite half done (keep the state
        on disk) and its temporary files."""
        files = {}
        for rel, entry in self._record["files"].items():
            if isinstance(entry, dict) and "previous" in entry:
                new = {"size": entry["size"], "sha256": entry["sha256"]}
                entry = new if _check_file(self.path, rel, new) is None else entry["previous"]
            files[rel] = entry
        resumed = {"at": _now(), "status": self.status, "error": self._record.get("error")}
        self._save_record(status="running", error=None, finished=None, files=files,
                          resumed=[*self._record.get("resumed", []), resumed])
        for folder, _, names in os.walk(self.path):
            for name in names:
                if _TEMPORARY.fullmatch(name):
                    Path(folder, name).unlink(missing_ok=True)

    def _require_running(self, action: str) -> None:
        if self.status != "running":
            raise StoreError(f"cannot {action}: run {self.id} is {self.status}; "
                             "its files are final (start a new run, or resume an interrupted or failed one)")
        if self._lock is None or not self._lock.held:
            raise StoreError(f"cannot {action}: run {self.id} is not open for writing here "
                             f"(RunStore.resume({self.id!r}) opens it for writing)")

    def _resolve(self, rel: str | PurePath, reserved_ok: bool = False) -> tuple[str, Path]:
        """(key in run.json 'files', absolute path) of ``rel``, refused unless it stays in the run.
        ``reserved_ok`` admits run.json and checkpoints/ (for reading, and for Run.checkpoint)."""
        relative = PurePath(rel)
        reason = None
        if relative.anchor:
            reason = "is absolute"
        elif not relative.parts:
            reason = "is empty"
        elif ".." in relative.parts:
            reason = "climbs out with '..'"
        elif any(part.startswith(".") for part in relative.parts):
            reason = "has a part starting with '.', kept for the store's temporary files"
        elif relative.parts == (RUN_FILE,) and not reserved_ok:
            reason = "is the run's record, written only by the store"
        elif relative.parts[0] == CHECKPOINTS and not reserved_ok:
            reason = "is in checkpoints/, written only by Run.checkpoint"
        elif not (self.path / relative).resolve().is_relative_to(self.path.resolve()):
            reason = "leads outside the run through a symbolic link"
        if reason:
            raise StoreError(f"path {str(rel)!r} {reason}: give a path relative to the run directory "
                             f"{self.path}, such as 'results/loss.csv'")
        return relative.as_posix(), self.path / relative

    def _write(self, rel: str | PurePath, write: Callable[[BinaryIO], object]) -> Path:
        self._require_running(f"write {rel}")
        key, path = self._resolve(rel)
        with _deferred_interrupt():
            self._put(key, path, write)
        return path

    def _put(self, key: str, path: Path, write: Callable[[BinaryIO], object], **changes) -> None:
        """Write a file and record it (with ``changes`` to the record), so that every kill point
        leaves run.json accepting what is on disk: a new file is recorded after it is in place; an
        overwrite is announced first, with the old content still accepted, then done, then recorded."""
        temporary, size = _write_temporary(path, write)
        try:
            entry = {"size": size, "sha256": _sha256(temporary)}
            old = self._record["files"].get(key)
            if old is not None and path.exists():
                # The state on disk: after an overwrite that failed half-way, the old entry accepts two.
                states = _accepted(old)
                previous = next((state for state in states
                                 if len(states) == 1 or _check_file(self.path, key, state) is None), states[0])
                if "sha256" not in previous:  # an old run's entry: a size alone
                    previous = previous["size"]
                self._save_record(files={**self._record["files"], key: {**entry, "previous": previous}})
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        _replace(temporary, path)
        self._save_record(files={**self._record["files"], key: entry}, **changes)

    def _save_record(self, **changes) -> None:
        """Write run.json with ``changes`` applied; the object changes only once the file has, and
        then holds what the file says (NumPy values as plain numbers), as a later ``open`` would."""
        data = _json_bytes({**self._record, **changes}, RUN_FILE)
        with _deferred_interrupt():
            write_atomic(self.path / RUN_FILE, lambda handle: handle.write(data))
            self._record = json.loads(data)


def _table_rows(table, what: str) -> tuple[list[str], list[list]]:
    """Header and rows of columns or of row dicts, with NumPy scalars as Python numbers (so the CSV
    says ``0.1``, not ``np.float64(0.1)``)."""
    def cell(value):
        return "" if value is None else value.item() if isinstance(value, np.generic) else value

    if isinstance(table, Mapping):
        columns = {str(name): np.asarray(values) for name, values in table.items()}
        shapes = {name: column.shape for name, column in columns.items()}
        if any(len(shape) != 1 for shape in shapes.values()) or len({s[0] for s in shapes.values()}) > 1:
            raise StoreError(f"{what}: CSV columns must be 1-D and equally long; got shapes {shapes}")
        return list(columns), [[cell(v) for v in row] for row in zip(*columns.values(), strict=True)]
    header = list(dict.fromkeys(str(key) for row in table for key in row))
    return header, [[cell(row.get(key)) for key in header] for row in ({str(k): v for k, v in r.items()}
                                                                           for r in table)]


class _Table(dict):
    """A CSV's columns; a lookup of a column it lacks names the file instead of raising KeyError."""

    def __init__(self, columns: dict, run_dir: Path, rel: str):
        super().__init__(columns)
        self._run_dir, self._rel = run_dir, rel

    def __missing__(self, name):
        raise CorruptRunError(self._run_dir, f"{self._rel} has no column {name!r} (it has {list(self)[:12]})")


def _is_number_text(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return cell == ""
    return True


def _column(cells: Sequence[str]) -> np.ndarray:
    try:
        return np.array([float(cell) if cell != "" else np.nan for cell in cells], dtype=float)
    except ValueError:
        return np.array(cells, dtype=str)


def _slug(text: str, length: int) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:length].strip("-")


_KIND = re.compile(r"[a-z][a-z0-9-]{0,19}")


def new_run_id(kind: str, label: str, created: datetime) -> str:
    """``20261123-124501-train-cr-3f9a``: UTC time (so ids sort by age), kind, a short label and a
    random suffix (so runs started in the same second stay apart)."""
    parts = [created.strftime("%Y%m%d-%H%M%S"), _slug(kind, 20) or "run", _slug(label, 24)]
    return "-".join(part for part in parts if part) + "-" + secrets.token_hex(2)


# -- the store ------------------------------------------------------------------------------------------
class RunStore:
    """All runs under ``root``: create, open, resume and list them.

    ``on_repeat(run, earlier)``, if given, is called when ``create`` has made a run that repeats
    runs already stored: ``earlier`` (RunInfo, newest first) have the same fingerprint (kind,
    config, seed, labels and initial files), so the new run computes what they computed or, if
    unfinished, would have computed when resumed. The CLI says so in one line; the run goes on.
    """

    def __init__(self, root: Path | str, on_repeat: Callable[[Run, list[RunInfo]], None] | None = None):
        self.root = Path(root)
        self._index = RunIndex(self.root / INDEX_FILE)
        self._on_repeat = on_repeat

    def create(self, kind: str, config: Mapping, seed: int, labels: Mapping[str, object] | None = None,
               name: str | None = None, run_id: str | None = None,
               files: Mapping[str, object] | None = None) -> Run:
        """A new run with status "running", its run.json written, and its directory named by a new id.

        ``config`` is the experiment's configuration as a dict (``Config.as_dict()``), ``labels``
        the values to filter by (``{"medium": "Cr"}``; stored as strings), ``name`` a human title
        (also the id's label; default: the label values). ``run_id`` names the run instead of a new
        time-stamped id (a sweep derives it from the run's config, so the same point is one run):
        RunExistsError if that run is there already, whoever made it.

        ``files`` (relative path → JSON-able object, or bytes written as they are) are written and
        recorded before the run appears: what a resume needs before anything else (an experiment's
        ``plan.json``) is there from the run's first instant, so no kill can leave a run that
        exists but cannot be resumed.
        """
        # The kind is matched by `circuitnn runs --kind` and chooses the report: one plain word.
        if not isinstance(kind, str) or not _KIND.fullmatch(kind):
            raise StoreError(f"run kind {kind!r:.60}: give a word such as 'train' or 'compare-media' (lower-case "
                             "letters, digits and '-', at most 20)")
        if run_id is not None and not (isinstance(run_id, str) and _CHECKPOINT_NAME.fullmatch(run_id)):
            raise StoreError(f"run id {run_id!r}: use letters, digits, '_', '.', '-', starting with a letter or digit")
        if run_id is not None and (self.root / run_id).exists():
            raise RunExistsError(self.root / run_id)
        if not isinstance(config, Mapping):
            raise StoreError(f"run config must be a dict (Config.as_dict()), not {type(config).__name__}")
        labels = {str(key): str(value) for key, value in (labels or {}).items()}
        created = datetime.now(UTC)
        created_text = created.isoformat(timespec="microseconds")
        record = {"id": None, "kind": kind, "name": name, "created": created_text,
                  "status": "running", "config": dict(config), "seed": int(seed), "labels": labels,
                  "versions": collect_versions(), "files": {}, "checkpoints": {}, "latest_checkpoint": None,
                  "summary": None, "error": None}
        # Fails before anything is made if the config is not JSON-able; after it, the record holds
        # what run.json will say (NumPy values as plain numbers).
        record = json.loads(_json_bytes(record, f"config of a new {kind!r} run"))
        initial = {}
        for rel, content in (files or {}).items():
            problem = _path_problem(str(rel)) or (
                "is reserved for the store" if PurePath(rel).parts[0] in (RUN_FILE, CHECKPOINTS) else None)
            if problem:
                raise StoreError(f"initial file {str(rel)!r:.80} of a new {kind!r} run {problem}")
            initial[PurePath(rel).as_posix()] = (
                bytes(content) if isinstance(content, (bytes, bytearray))
                else _json_bytes(content, f"{rel} of a new {kind!r} run"))
        digests = {rel: hashlib.sha256(data).hexdigest() for rel, data in initial.items()}
        record["fingerprint"] = _fingerprint(record, digests)
        # Built under a hidden name, then renamed: the run appears whole, with its run.json, at once.
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            staging = self.root / f".creating-{secrets.token_hex(8)}"
            staging.mkdir()
        except OSError as err:
            raise StoreError(f"cannot create a run in {self.root}: {err.strerror}") from None
        lock = RunLock(staging)  # taken before the run appears: no other process can ever resume it first
        try:
            for rel, data in initial.items():
                size = write_atomic(staging / rel, lambda handle, data=data: handle.write(data))
                record["files"][rel] = {"size": size, "sha256": digests[rel]}
            fixed = run_id
            while True:
                record["id"] = run_id = fixed or new_run_id(kind, name or "-".join(labels.values()), created)
                write_atomic(staging / RUN_FILE, lambda handle: handle.write(_json_bytes(record, RUN_FILE)))
                try:
                    os.rename(staging, self.root / run_id)
                    run = Run(self.root / run_id, record, lock)
                    break
                except OSError:
                    if not (self.root / run_id).exists():
                        raise
                    if fixed:  # another process made this very run first: it is theirs
                        shutil.rmtree(staging, ignore_errors=True)
                        raise RunExistsError(self.root / run_id) from None
                    # Another process took this id in the same second: draw another suffix.
        except BaseException:
            lock.release()
            shutil.rmtree(staging, ignore_errors=True)  # it never appeared (Ctrl-C, an error): leave nothing
            raise
        if self._on_repeat is not None:
            try:
                try:
                    listing = self.list(kind=kind)
                except (StoreError, OSError, sqlite3.Error):
                    listing = []  # the note is advice: an index busy too long must not stop the run
                earlier = [info for info in listing if info.fingerprint == record["fingerprint"] and info.id != run.id]
                if earlier:
                    self._on_repeat(run, earlier)
            except BaseException:
                run.close()  # the caller never gets it: it stays "running", resumable by id
                raise
        return run

    def open(self, run_id: str) -> Run:
        """The run ``run_id`` for reading, checked (CorruptRunError if run.json or a file it records
        is damaged, changed or outside the run)."""
        run_dir = self._run_dir(run_id)
        record = read_record(run_dir)
        for attempt in range(_LOOKS):
            try:
                _check_files(run_dir, record)
                return Run(run_dir, record)
            except CorruptRunError:
                # A process writing the run may have overwritten a file (and run.json) since run.json
                # was read: damage is what stays when run.json has not changed.
                fresh = read_record(run_dir)
                if attempt + 1 == _LOOKS or fresh == record:
                    raise
                record = fresh
        raise AssertionError("unreachable")

    def resume(self, run_id: str) -> Run:
        """Reopen an "interrupted", "failed" or still-"running" (killed) run for writing, holding its
        lock; continue from ``run.load_checkpoint()``. A complete run is final: StoreError. A run
        another process is writing: RunLockedError (naming that process)."""
        run_dir = self._run_dir(run_id)
        lock = RunLock(run_dir)
        try:
            record = read_record(run_dir)
            _check_files(run_dir, record)
            if record["status"] == "complete":
                raise StoreError(f"run {run_id} is complete and cannot be resumed; start a new run "
                                 "(only interrupted, failed or running runs resume from their checkpoints)")
            run = Run(run_dir, record, lock)
            run._reopen()
        except BaseException:
            lock.release()
            raise
        return run

    def list(self, kind: str | None = None, status: str | None = None,
             labels: Mapping[str, object] | None = None) -> RunListing:
        """Runs matching every filter given (kind, status, each label key=value), newest first.
        Damaged runs are left out and reported in the listing's ``skipped``; a root that does not
        exist yet holds no runs, one that is not a folder is a StoreError."""
        if status is not None and status not in STATUSES:
            raise StoreError(f"status {status!r}: filter by one of {', '.join(STATUSES)}")
        if not self.root.exists():
            return RunListing([])
        if not self.root.is_dir():
            raise StoreError(f"store {self.root} is not a folder of runs (give the folder --store points at)")
        try:
            records, problems = self._index.query(self._stamps(), self._load, kind, status, labels)
        except OSError as err:
            raise StoreError(f"cannot list the runs in {self.root}: {err.strerror}") from None
        infos, skipped = [], [CorruptRunError(self.root / run_id, problem) for run_id, problem in problems]
        for record in records:
            run_dir = self.root / str(record.get("id") if isinstance(record, dict) else "?")
            try:
                # The index is a cache: a row that is not a valid record is read again from its run.
                try:
                    check_record(record, run_dir)
                except CorruptRunError:
                    record = read_record(run_dir)
                infos.append(RunInfo.from_record(record, run_dir))
            except CorruptRunError as err:
                skipped.append(err)
        return RunListing(infos, skipped)

    def reindex(self) -> RunListing:
        """Rebuild the index from the run directories; returns the listing of every run."""
        if self.root.is_dir():
            self._index.clear()
        return self.list()

    def close(self) -> None:
        """Close the index file (it reopens on the next listing)."""
        self._index.close()

    def _run_dir(self, run_id: str) -> Path:
        run_dir = self.root / str(run_id)
        if not run_id or run_id.startswith(".") or PurePath(run_id).name != run_id or not run_dir.is_dir():
            raise StoreError(f"no run {run_id!r} in {self.root}; `circuitnn runs` lists the run ids")
        return run_dir

    def _stamps(self) -> dict[str, str]:
        """Run id → a stamp of its run.json that changes with every rewrite (mtime, size, inode)."""
        stamps = {}
        with os.scandir(self.root) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_dir():
                    continue  # hidden: runs being created; files: the index
                try:
                    stat = os.stat(os.path.join(entry.path, RUN_FILE))
                    stamps[entry.name] = f"{stat.st_mtime_ns}:{stat.st_size}:{stat.st_ino}"
                except OSError:
                    stamps[entry.name] = "unreadable"
        return stamps

    def _load(self, run_id: str) -> dict | str:
        try:
            return read_record(self.root / run_id)
        except CorruptRunError as err:
            return err.problem


# -- for the CLI ------------------------------------------------------------------------------------------
def _one_line(text: str) -> str:
    """``text`` on one line: a table row per run, whatever a record's texts hold."""
    return re.sub(r"\s+", " ", re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", " ", str(text)))


def format_run_table(infos: Iterable[RunInfo], skipped: Iterable[CorruptRunError] = (),
                     summary_fields: int = 3) -> str:
    """A plain-text table of runs (id, kind, status, created, labels, the first ``summary_fields``
    scalar summary values, or the error of a failed run), then a line per skipped damaged run."""
    def summary_text(info: RunInfo) -> str:
        if info.status == "failed":
            return f"error: {info.error or '?'}"[:70]
        if info.status == "interrupted":
            return f"interrupted; latest checkpoint: {info.latest_checkpoint or 'none'}"
        if info.status == "running":
            holder = writer_of(info.path)
            if holder is False:
                return "stopped: no process writes it (killed); it resumes with --resume"
            return f"being written by process {holder}" if holder else "being written"
        scalars = [(key, value) for key, value in (info.summary or {}).items()
                   if isinstance(value, (int, float, str, bool))]
        return " ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                        for key, value in scalars[:summary_fields])

    header = ("id", "kind", "status", "created (UTC)", "labels", "summary")
    rows = [tuple(_one_line(cell) for cell in (
                info.id, info.kind, info.status, info.created[:19].replace("T", " "),
                " ".join(f"{key}={value}" for key, value in info.labels.items()), summary_text(info)))
            for info in infos]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    if not rows:
        lines = ["no runs"]
    lines += [_one_line(f"skipped {error.run_dir.name}: {error.problem}") for error in skipped]
    return "\n".join(lines)
