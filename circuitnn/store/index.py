"""The run index: ``<root>/index.sqlite``, a copy of every run.json kept for fast, filtered listing.

It is a cache. The run directories are the truth, so the index never has to be right on its own:
each query first brings it up to date with the directories (a run whose run.json changed since it
was indexed, by mtime, size or inode, is read again), and any trouble with the file itself (missing,
corrupt, an older schema) is answered by rebuilding it. A listing therefore never fails and never
misses a run because of the index.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path

SCHEMA_VERSION = 1
_SCHEMA = f"""
BEGIN IMMEDIATE;
DROP TABLE IF EXISTS runs;
DROP TABLE IF EXISTS labels;
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    stamp TEXT NOT NULL,  -- run.json's 'mtime_ns:size:inode' when indexed; a different one means re-read
    kind TEXT,
    status TEXT,
    created TEXT,         -- UTC ISO 8601, so text order is time order
    record TEXT,          -- run.json as indexed; NULL when it could not be read
    problem TEXT          -- why the run could not be read; NULL when it was fine
);
CREATE TABLE labels (id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (id, key));
CREATE INDEX runs_created ON runs (created);
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;
"""
# What SQLite says (with its extended codes) of a file that is not a usable database; anything
# else, such as a lock held too long, is raised.
_CORRUPT = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
# A root we may read but not write (results on a read-only share): list from an in-memory index.
_UNWRITABLE = ("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH")

Load = Callable[[str], "dict | str"]


class RunIndex:
    """The SQLite index of one store root. ``load(run_id)`` (given by the store) returns a run's
    record (run.json as a dict) or, if the run is corrupt, a sentence saying what is wrong."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._file: tuple[int, int] | None = None  # (device, inode) of the file self._db has open

    def query(self, stamps: Mapping[str, str], load: Load, kind: str | None = None,
              status: str | None = None, labels: Mapping[str, str] | None = None,
              ) -> tuple[list[dict], list[tuple[str, str]]]:
        """Update the index to ``stamps`` (run id → run.json stamp, one per run directory), then
        return the matching records, newest first, and (run id, problem) of every corrupt run."""

        def operation(db: sqlite3.Connection):
            _update(db, stamps, load)
            sql, args = "SELECT id, record FROM runs WHERE problem IS NULL", []
            for column, value in (("kind", kind), ("status", status)):
                if value is not None:
                    sql += f" AND {column} = ?"
                    args.append(value)
            for key, value in (labels or {}).items():
                sql += " AND id IN (SELECT id FROM labels WHERE key = ? AND value = ?)"
                args += [str(key), str(value)]
            sql += " ORDER BY created DESC, id DESC"
            records = [_decoded(run_id, text) for run_id, text in db.execute(sql, args)]
            problems = db.execute("SELECT id, problem FROM runs WHERE problem IS NOT NULL ORDER BY id DESC")
            return records, [tuple(row) for row in problems]

        return self._call(operation)

    def clear(self) -> None:
        """Forget every run, so the next query reads every run.json again."""
        self._call(lambda db: db.executescript(_SCHEMA))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
        self._db, self._file = None, None

    # -- keeping the file usable ---------------------------------------------------------------------
    def _call(self, operation):
        """``operation(db)`` in one transaction. A corrupt file is set aside and the operation runs
        again on a new, empty index (which it then fills); an unwritable one is replaced by an
        in-memory index for this process."""
        for attempt in range(3):
            try:
                db = self._connect()
                with db:
                    return operation(db)
            except sqlite3.DatabaseError as err:
                reason = getattr(err, "sqlite_errorname", "")
                if attempt == 2:
                    raise
                if reason.startswith(_CORRUPT):
                    self._set_aside()
                elif reason == "SQLITE_READONLY_DBMOVED":  # deleted or replaced under us: reopen
                    self.close()
                elif reason.startswith(_UNWRITABLE):
                    self.close()
                    self._db = self._open(":memory:")
                else:
                    raise

    def _connect(self) -> sqlite3.Connection:
        # A connection stays on the file it opened; if the path now names another file (or none,
        # because a person deleted the index), follow the path so no update goes to an orphan.
        if self._file is not None and self._file != _identity(self.path):
            self.close()
        if self._db is None:
            self._db = self._open(self.path)
            self._file = _identity(self.path)
        return self._db

    @staticmethod
    def _open(target) -> sqlite3.Connection:
        # Several processes (a sweep's workers) may list or create runs at once: wait for a lock.
        db = sqlite3.connect(target, timeout=30)
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def _set_aside(self) -> None:
        """Move the corrupt file (and any journal of it) to ``*.corrupt`` for a person to inspect;
        it holds nothing the run directories do not, so a new empty index loses nothing."""
        self.close()
        for suffix in ("", "-journal", "-wal", "-shm"):
            damaged = Path(f"{self.path}{suffix}")
            if damaged.exists():
                os.replace(damaged, f"{damaged}.corrupt")


def _decoded(run_id: str, text) -> dict:
    """A row's record; a row that is not JSON (a damaged or hand-edited index) comes back as its id
    alone, which the store's check refuses, so it reads that run again from its directory."""
    try:
        record = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return {"id": run_id}
    return record if isinstance(record, dict) else {"id": run_id}


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _update(db: sqlite3.Connection, stamps: Mapping[str, str], load: Load) -> None:
    """Make the index's rows match ``stamps``: re-read new and changed runs, drop vanished ones."""
    known = dict(db.execute("SELECT id, stamp FROM runs"))
    # Read the files before the first write: the write lock is then held only for the inserts.
    loaded = {run_id: load(run_id) for run_id, stamp in stamps.items() if known.get(run_id) != stamp}
    vanished = [(run_id,) for run_id in known.keys() - stamps.keys()]
    db.executemany("DELETE FROM runs WHERE id = ?", vanished)
    db.executemany("DELETE FROM labels WHERE id = ?", vanished + [(run_id,) for run_id in loaded])
    for run_id, record in loaded.items():
        if isinstance(record, str):
            db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, NULL, NULL, NULL, NULL, ?)",
                       (run_id, stamps[run_id], record))
            continue
        db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, NULL)",
                   (run_id, stamps[run_id], record["kind"], record["status"], record["created"],
                    json.dumps(record)))
        db.executemany("INSERT INTO labels VALUES (?, ?, ?)",
                       [(run_id, str(key), str(value)) for key, value in record["labels"].items()])
