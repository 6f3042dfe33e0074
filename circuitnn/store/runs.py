"""Runs on disk: one directory per experiment run, every file in it written by an atomic replace.

``<root>/<run_id>/`` holds::

    run.json            the record: id, kind, name, created (UTC ISO 8601), status ("running" |
                        "complete" | "failed" | "interrupted"), config, seed, labels, versions, files (relative path →
                        bytes, every file written through the run), checkpoints, summary, error
    netlists/*.cir      the netlists the run simulated
    anything.csv/.npz/.png/.json/.txt   results and figures, at relative paths the experiment chooses
    checkpoints/*.npz   resumable state (``Run.checkpoint``)

The directories are the truth; ``index.sqlite`` (index.py) only speeds up listing. The store never
deletes or repairs anything in a run: a damaged run raises CorruptRunError naming its directory.
It does not lock runs either: one process writes a run at a time (resume a run only once its
writer has stopped).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import platform
import re
import secrets
import signal
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
STATUSES = ("running", "complete", "failed", "interrupted")
_REQUIRED = {"id": str, "kind": str, "created": str, "status": str, "config": dict, "seed": int,
             "labels": dict, "versions": dict, "files": dict}
_STATE_KEY = "__state_json__"  # the checkpoint's JSON state, stored beside its arrays in one .npz
_CHECKPOINT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class StoreError(CircuitnnError):
    """The store cannot do what was asked: a path outside the run, a finished run written or resumed,
    an unknown run id. The message says what to do instead."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped a run while it was being written. The run is marked "interrupted",
    keeps everything it saved and resumes from its checkpoints; ``run`` is that Run."""

    def __init__(self, run: Run):
        super().__init__(f"run {run.id} interrupted")
        self.run = run


class CorruptRunError(StoreError):
    """A run directory is damaged: run.json missing, unparseable or incomplete, or a file it records
    missing or truncated. ``run_dir`` and ``problem`` say where and what; nothing was changed."""

    def __init__(self, run_dir: Path, problem: str):
        self.run_dir, self.problem = Path(run_dir), problem
        super().__init__(f"corrupt run directory {self.run_dir}: {problem}")


# -- writing files ---------------------------------------------------------------------------------------
def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> int:
    """Write ``path`` through ``write(handle)`` atomically; returns the file's size in bytes.

    The bytes go to a hidden temporary file in the same directory (a rename is atomic only within one
    filesystem), reach the disk (fsync), and only then replace ``path``. A reader, or a run
    interrupted at any point, sees the old file or the new one, never a part; if ``write`` raises,
    the temporary file is removed and ``path`` is untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        with open(temporary, "xb") as handle:  # "x": never reuse a file; mode follows the umask
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
            size = os.fstat(handle.fileno()).st_size
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return size


@contextlib.contextmanager
def _deferred_interrupt():
    """Hold Ctrl-C (SIGINT) until the block is done, then deliver it.

    A file and run.json's record of it are two writes; interrupted between them, the record would
    name another size than the file has and the run could not be opened again. Only the main thread
    receives signals, so elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: received.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        signal.raise_signal(signal.SIGINT)  # to the handler restored above (KeyboardInterrupt by default)


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
    """run.json of ``run_dir`` as a dict, checked for every required field (CorruptRunError if not)."""
    try:
        record = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorruptRunError(run_dir, f"{RUN_FILE} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptRunError(run_dir, f"{RUN_FILE} cannot be read: {err}") from None
    if not isinstance(record, dict):
        raise CorruptRunError(run_dir, f"{RUN_FILE} holds a {type(record).__name__}, not an object")
    missing = [key for key in _REQUIRED if key not in record]
    if missing:
        raise CorruptRunError(run_dir, f"{RUN_FILE} is incomplete: it lacks {', '.join(missing)}")
    wrong = [f"{key} is {type(record[key]).__name__}, not {kind.__name__}"
             for key, kind in _REQUIRED.items() if not isinstance(record[key], kind)]
    if record["status"] not in STATUSES:
        wrong.append(f"status {record['status']!r} is not one of {', '.join(STATUSES)}")
    if record["id"] != run_dir.name:
        wrong.append(f"id {record['id']!r} is not the directory's name")
    if wrong:
        raise CorruptRunError(run_dir, f"{RUN_FILE} is invalid: {'; '.join(wrong)}")
    return record


def _check_files(run_dir: Path, record: dict) -> None:
    """CorruptRunError if a file run.json records is missing or has another size than written."""
    problems = []
    for rel, size in record["files"].items():
        try:
            found = (run_dir / rel).stat().st_size
        except OSError:
            problems.append(f"{rel} is missing")
            continue
        if found != size:
            problems.append(f"{rel} has {found} bytes, {size} were written")
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

    @classmethod
    def from_record(cls, record: dict, path: Path) -> RunInfo:
        return cls(record["id"], Path(path), record["kind"], record.get("name"), record["created"],
                   record["status"], record["config"], record["seed"], record["labels"],
                   record["versions"], record.get("summary"), record.get("error"),
                   record.get("latest_checkpoint"))


class RunListing(list):
    """A list of RunInfo, newest first, plus ``skipped``: a CorruptRunError per damaged run."""

    def __init__(self, infos: Iterable[RunInfo], skipped: Iterable[CorruptRunError] = ()):
        super().__init__(infos)
        self.skipped = list(skipped)


# -- one run ----------------------------------------------------------------------------------------------
class Run:
    """One run directory: write results while it is "running", read them at any status.

    Paths are relative to the run directory (``"figures/loss.png"``); absolute paths, ``..``, names
    starting with "." (the store's temporary files) and run.json itself are refused. Each write is
    atomic and then recorded in run.json's ``files``, so a later ``open`` notices missing files.
    Used as a context manager, an exception leaving the block marks the run failed, and Ctrl-C
    (KeyboardInterrupt) marks it interrupted and raises ``RunInterrupted``; both resume.
    """

    def __init__(self, path: Path, record: dict):
        self.path = Path(path)
        self._record = record

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
        return dict(self._record["files"])

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
        key, path = self._resolve(rel, reserved_ok=True)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            if key in self._record["files"]:
                raise CorruptRunError(self.path, f"{key} is missing (run.json records it)") from None
            written = sorted(self._record["files"])
            raise StoreError(f"run {self.id} has no file {key!r}; it wrote {written}") from None

    def read_text(self, rel: str | PurePath) -> str:
        return self.read_bytes(rel).decode("utf-8")

    def read_json(self, rel: str | PurePath):
        try:
            return json.loads(self.read_bytes(rel))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CorruptRunError(self.path, f"{rel} is not valid JSON: {err}") from None

    def read_csv(self, rel: str | PurePath) -> dict[str, np.ndarray]:
        """Column name → 1-D array: float64 where every cell is a number (empty cells are NaN), else str."""
        rows = list(csv.reader(io.StringIO(self.read_text(rel))))
        if not rows or any(len(row) != len(rows[0]) for row in rows):
            raise CorruptRunError(self.path, f"{rel} is not a CSV table with one header row and equal rows")
        header, body = rows[0], rows[1:]
        columns = zip(*body, strict=True) if body else [()] * len(header)
        return {name: _column(cells) for name, cells in zip(header, columns, strict=True)}

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
        existing name replaces that checkpoint.
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
            size = write_atomic(path, lambda handle: np.savez(handle, **contents))
            self._save_record(files={**self._record["files"], key: size}, latest_checkpoint=name,
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
        """Mark the run complete with ``summary`` (JSON-able: final accuracy, energy_J, ...)."""
        self._require_running("complete it")
        self._save_record(status="complete", summary=dict(summary), finished=_now())

    def fail(self, message: str) -> None:
        """Mark the run failed with ``message`` (what went wrong); it can then be resumed."""
        self._require_running("mark it failed")
        self._save_record(status="failed", error=str(message), finished=_now())

    def interrupt(self) -> None:
        """Mark the run interrupted (stopped by the user, not by an error); it can then be resumed."""
        self._require_running("mark it interrupted")
        self._save_record(status="interrupted", error="interrupted by the user (Ctrl-C)", finished=_now())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if error is None or self.status != "running":
            return
        if isinstance(error, KeyboardInterrupt):
            self.interrupt()
            if not isinstance(error, RunInterrupted):
                raise RunInterrupted(self) from error
            return
        self.fail(f"{kind.__name__}: {error}")

    # -- internals ---------------------------------------------------------------------------------------
    def _reopen(self) -> None:
        """Set a failed, interrupted or still-"running" (killed) run running again, keeping what happened."""
        resumed = {"at": _now(), "status": self.status, "error": self._record.get("error")}
        self._save_record(status="running", error=None, finished=None,
                          resumed=[*self._record.get("resumed", []), resumed])

    def _require_running(self, action: str) -> None:
        if self.status != "running":
            raise StoreError(f"cannot {action}: run {self.id} is {self.status}; "
                             "its files are final (start a new run, or resume an interrupted or failed one)")

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
            size = write_atomic(path, write)
            # Recorded after the file is in place: a crash between the two leaves an unrecorded file, harmless.
            self._save_record(files={**self._record["files"], key: size})
        return path

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


def _column(cells: Sequence[str]) -> np.ndarray:
    try:
        return np.array([float(cell) if cell != "" else np.nan for cell in cells], dtype=float)
    except ValueError:
        return np.array(cells, dtype=str)


def _slug(text: str, length: int) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:length].strip("-")


def new_run_id(kind: str, label: str, created: datetime) -> str:
    """``20261123-124501-train-cr-3f9a``: UTC time (so ids sort by age), kind, a short label and a
    random suffix (so runs started in the same second stay apart)."""
    parts = [created.strftime("%Y%m%d-%H%M%S"), _slug(kind, 20) or "run", _slug(label, 24)]
    return "-".join(part for part in parts if part) + "-" + secrets.token_hex(2)


# -- the store ------------------------------------------------------------------------------------------
class RunStore:
    """All runs under ``root``: create, open, resume and list them."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self._index = RunIndex(self.root / INDEX_FILE)

    def create(self, kind: str, config: Mapping, seed: int, labels: Mapping[str, object] | None = None,
               name: str | None = None) -> Run:
        """A new run with status "running", its run.json written, and its directory named by a new id.

        ``config`` is the experiment's configuration as a dict (``Config.as_dict()``), ``labels``
        the values to filter by (``{"medium": "Cr"}``; stored as strings), ``name`` a human title
        (also the id's label; default: the label values).
        """
        if not isinstance(kind, str) or not _slug(kind, 20):
            raise StoreError(f"run kind {kind!r}: give a word such as 'train' or 'compare-media'")
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
        # Built under a hidden name, then renamed: the run appears whole, with its run.json, at once.
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".creating-{secrets.token_hex(8)}"
        staging.mkdir()
        while True:
            record["id"] = run_id = new_run_id(kind, name or "-".join(labels.values()), created)
            write_atomic(staging / RUN_FILE, lambda handle: handle.write(_json_bytes(record, RUN_FILE)))
            try:
                os.rename(staging, self.root / run_id)
                return Run(self.root / run_id, record)
            except OSError:
                if not (self.root / run_id).exists():
                    raise
                # Another process took this id in the same second: draw another suffix.

    def open(self, run_id: str) -> Run:
        """The run ``run_id``, checked (CorruptRunError if run.json or a file it records is damaged)."""
        run_dir = self._run_dir(run_id)
        record = read_record(run_dir)
        _check_files(run_dir, record)
        return Run(run_dir, record)

    def resume(self, run_id: str) -> Run:
        """Reopen an "interrupted", "failed" or still-"running" (killed) run for writing; continue from
        ``run.load_checkpoint()``. A complete run is final: StoreError."""
        run = self.open(run_id)
        if run.status == "complete":
            raise StoreError(f"run {run_id} is complete and cannot be resumed; start a new run "
                             "(only interrupted, failed or running runs resume from their checkpoints)")
        run._reopen()
        return run

    def list(self, kind: str | None = None, status: str | None = None,
             labels: Mapping[str, object] | None = None) -> RunListing:
        """Runs matching every filter given (kind, status, each label key=value), newest first.
        Damaged runs are left out and reported in the listing's ``skipped``."""
        if status is not None and status not in STATUSES:
            raise StoreError(f"status {status!r}: filter by one of {', '.join(STATUSES)}")
        if not self.root.is_dir():
            return RunListing([])
        records, problems = self._index.query(self._stamps(), self._load, kind, status, labels)
        return RunListing([RunInfo.from_record(record, self.root / record["id"]) for record in records],
                          [CorruptRunError(self.root / run_id, problem) for run_id, problem in problems])

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
def format_run_table(infos: Iterable[RunInfo], skipped: Iterable[CorruptRunError] = (),
                     summary_fields: int = 3) -> str:
    """A plain-text table of runs (id, kind, status, created, labels, the first ``summary_fields``
    scalar summary values, or the error of a failed run), then a line per skipped damaged run."""
    def summary_text(info: RunInfo) -> str:
        if info.status == "failed":
            return f"error: {info.error or '?'}"[:70]
        if info.status == "interrupted":
            return f"interrupted; latest checkpoint: {info.latest_checkpoint or 'none'}"
        scalars = [(key, value) for key, value in (info.summary or {}).items()
                   if isinstance(value, (int, float, str, bool))]
        return " ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                        for key, value in scalars[:summary_fields])

    header = ("id", "kind", "status", "created (UTC)", "labels", "summary")
    rows = [(info.id, info.kind, info.status, info.created[:19].replace("T", " "),
             " ".join(f"{key}={value}" for key, value in info.labels.items()), summary_text(info))
            for info in infos]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    if not rows:
        lines = ["no runs"]
    lines += [f"skipped {error.run_dir.name}: {error.problem}" for error in skipped]
    return "\n".join(lines)
