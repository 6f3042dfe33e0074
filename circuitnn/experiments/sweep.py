"""Sweeps: one experiment run at every point of a grid and/or list of dotted config values, on Dask.

A sweep is a TOML file::

    name = "tolerance"                 # optional; default: the file's name
    experiment = "train"               # what each point runs (default: the on-chip training of one medium)
    base = "Cr"                        # a preset, a config file beside the spec, or a [base] table

    [grid]                             # every combination of these values ...
    device.medium = ["W", "Cr", "C"]   # the preset of each point (its circuit, pulses and timing too)
    tuning.tolerance = [0.02, 0.05]
    seed = [0, 1, 2]

    [[list]]                           # ... with each of these points (grid × list when both are given)
    backend = "surrogate"
    [[list]]
    backend = "spice"

Any dotted path the config accepts can be swept, plus ``backend`` ("spice" or "surrogate"), which is
how a run simulates rather than what it simulates. Every point is built by the normal config loader,
so a bad value fails before anything runs, naming where it is in the spec (``grid.tuning.tolerance[1]
= -0.1 is invalid: allowed (0, 1]``). A point's run id is derived from its resolved config and
backend (``train-cr-1f0c9a5e27b4d3a8``): two points that resolve to the same config are one run, and
a run already in the store is never run again, whichever sweep made it.

``run_sweep`` submits one task per run to a ``dask.distributed`` cluster: by default a LocalCluster of
single-threaded worker processes (each owns its ngspice instances), or an existing scheduler. Each
task writes its own run directory through the store (atomic files, a lock per run); only this
client updates the store's index. A run already complete is skipped; one left unfinished (a killed
sweep, a lost worker) is resumed from its checkpoints, on whatever worker gets it; a worker lost
mid-run has its task sent elsewhere by the scheduler. The sweep itself is stored as a run of kind
"sweep" whose id is derived from its points: ``circuitnn report --sweep SWEEP_ID`` aggregates it.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import json
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CircuitnnError, ConfigError
from ..store import Run, RunExistsError, RunLockedError, RunStore
from ..store.runs import read_record
from .config import Config, _PLAIN_KEY, _medium_name, _read_toml, config_from_table, from_dict
from .reproduction import BACKENDS, run_reproduction
from ..validation import check_choice, check_int, check_text

SPEC_KEYS = ("name", "experiment", "base", "grid", "list")
# Swept keys that choose the preset: the whole preset (circuit, pulses, timing), not the device alone.
PRESET_PATHS = ("device.medium", "preset")
MAX_POINTS = 100_000
MAX_NAME_CHARS = 80  # a sweep's name: its label in `circuitnn runs` and its reports' title
MAX_VALUES = 10_000
SWEEP_KIND = "sweep"
# A task finding its run locked waits this long for the holder (a worker the scheduler gave up on,
# or one left over from a killed sweep) to finish or die before it fails.
LOCK_WAIT_S = 3600.0


class SweepError(CircuitnnError):
    """Runs of a sweep failed; the message names them and their first error. Re-running the same
    sweep retries exactly those runs (completed ones are kept)."""


# -- the specification ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepPoint:
    """One run of a sweep: its id, the swept values that made it, and what the worker needs."""

    run_id: str
    values: dict          # dotted path → value, for every axis of the sweep
    backend: str
    medium: str
    seed: int
    config: dict          # Config.as_dict() of the resolved config

    def task(self, experiment: str) -> dict:
        """Plain data for a worker (no objects of ours cross the network)."""
        return {"run_id": self.run_id, "experiment": experiment, "backend": self.backend, "config": self.config}


@dataclass(frozen=True)
class Sweep:
    id: str
    name: str
    experiment: str
    axes: tuple[str, ...]           # the swept dotted paths, in the order the spec gives them
    points: tuple[SweepPoint, ...]  # one per distinct run, in the spec's order
    spec: dict                      # the spec as read, with the base resolved to a table

    def plan(self) -> dict:
        """What the sweep's stored record keeps: enough for a report without the spec file."""
        return {"name": self.name, "experiment": self.experiment, "axes": list(self.axes),
                "points": [{"run_id": p.run_id, "values": p.values, "backend": p.backend, "medium": p.medium,
                            "seed": p.seed} for p in self.points]}


def load_sweep(path: str | Path) -> Sweep:
    """The sweep a TOML file specifies (ConfigError naming the dotted path of a bad value)."""
    path = Path(path)
    return expand_sweep(_read_toml(path), default_name=path.stem, folder=path.parent)


def expand_sweep(spec: dict, default_name: str = "sweep", folder: Path | None = None) -> Sweep:
    """Every run of ``spec`` (a dict as TOML reads it), each config loaded and validated.

    ``folder``: where a ``base = "file.toml"`` is looked up (the spec's folder)."""
    for key in spec:
        if key not in SPEC_KEYS:
            raise ConfigError(_spec_path(key), spec[key], "a sweep key: " + ", ".join(SPEC_KEYS))
    # Without a name, the file's: shortened and on one line, as a name given in the spec must be.
    name = spec.get("name", re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", " ", default_name)[:MAX_NAME_CHARS])
    check_text("name", name, MAX_NAME_CHARS)  # stored as the sweep's label and shown in tables
    if not _slug(name):
        raise ConfigError("name", name, "a short text with letters or digits")
    experiment = spec.get("experiment", "train")
    check_choice("experiment", experiment, EXPERIMENTS)
    base = _base_table(spec.get("base", {}), folder)
    grid = _grid_axes(spec.get("grid", {}))
    listed = _list_points(spec.get("list", []))
    for k, point in enumerate(listed):
        for path in point:
            if path in grid:
                raise ConfigError(f"list[{k}].{path}", point[path], f"a value not also swept in grid.{path}")
    axes = tuple(dict.fromkeys([*grid, *(path for point in listed for path in point)]))
    if not axes:
        raise ConfigError("grid", spec.get("grid", {}), "at least one dotted config value to sweep "
                          "(a [grid] table of lists, or [[list]] points)")
    total = max(len(listed), 1) * math.prod(len(v) for v in grid.values())
    if total > MAX_POINTS:
        raise ConfigError("grid", f"{total} points", f"at most {MAX_POINTS} points")
    points: dict[str, SweepPoint] = {}
    for k, point in enumerate(listed or [{}]):
        for indices in itertools.product(*(range(len(v)) for v in grid.values())):
            sources = {path: f"list[{k}].{path}" for path in point}
            values = dict(point)
            for (path, options), i in zip(grid.items(), indices):
                values[path] = options[i]
                sources[path] = f"grid.{path}[{i}]"
            resolved = _resolve(base, values, sources)
            resolved_point = _point(experiment, {a: values.get(a) for a in axes}, *resolved)
            points.setdefault(resolved_point.run_id, resolved_point)
    ordered = tuple(points.values())
    digest = _digest({"experiment": experiment, "axes": axes,
                      "points": sorted([p.run_id, p.values] for p in ordered)})
    sweep_id = f"{SWEEP_KIND}-{_slug(name)[:32]}-{digest[:12]}"
    return Sweep(sweep_id, name, experiment, axes, ordered,
                 {"name": name, "experiment": experiment, "base": base, "grid": spec.get("grid", {}),
                  "list": spec.get("list", [])})


def _base_table(base, folder: Path | None) -> dict:
    """The base config as a table: ``[base]`` itself, a preset's name, or a config file's contents."""
    if isinstance(base, dict):
        return copy.deepcopy(base)
    if isinstance(base, str) and base.endswith(".toml"):
        return _read_toml((folder or Path(".")) / base)
    if isinstance(base, str):
        return {"preset": _medium_name(base, "base")}
    raise ConfigError("base", base, "a preset name (\"Cr\"), a config file (\"my.toml\") or a [base] table")


def _grid_axes(grid) -> dict[str, list]:
    if not isinstance(grid, dict):
        raise ConfigError("grid", grid, "a table of dotted config paths, each with a list of values")
    axes = {}
    for path, values in _flatten(grid, "grid").items():
        if not isinstance(values, list) or not 1 <= len(values) <= MAX_VALUES:
            raise ConfigError(f"grid.{path}", values, f"a list of 1 to {MAX_VALUES} values to sweep")
        axes[path] = values
    return axes


def _list_points(listed) -> list[dict]:
    if not isinstance(listed, list) or not all(isinstance(point, dict) for point in listed):
        raise ConfigError("list", listed, "[[list]] tables, each giving dotted config values of one point")
    if len(listed) > MAX_POINTS:
        raise ConfigError("list", f"{len(listed)} points", f"at most {MAX_POINTS} points")
    points = [_flatten(point, f"list[{k}]") for k, point in enumerate(listed)]
    for k, point in enumerate(points):
        if not point:
            raise ConfigError(f"list[{k}]", {}, "at least one dotted config value")
    return points


def _flatten(table: dict, where: str, prefix: tuple[str, ...] = ()) -> dict[str, object]:
    """Dotted path → value of every leaf of ``table``; a key may itself be dotted ("tuning.tolerance")."""
    flat = {}
    for key, value in table.items():
        parts = tuple(str(key).split("."))
        bad = next((part for part in parts if not _PLAIN_KEY.fullmatch(part)), None)
        if bad is not None:
            shown = ".".join((*prefix, json.dumps(str(key))[:60]))
            raise ConfigError(f"{where}.{shown}", value, "a dotted path of plain names (tuning.tolerance)")
        path = (*prefix, *parts)
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, where, path))
        else:
            flat[".".join(path)] = value
    return flat


def _resolve(base: dict, values: dict, sources: dict) -> tuple[Config, str]:
    """The point's Config (through the normal loader) and backend; errors name the spec's path."""
    table = copy.deepcopy(base)
    backend = table.pop("backend", "spice")
    medium = None
    for path, value in values.items():
        if path == "backend":
            backend = value
        elif path in PRESET_PATHS:
            medium = _medium_name(value, sources[path])
        else:
            _set(table, path.split("."), value, sources[path])
    if backend not in BACKENDS:
        where = sources.get("backend", "base.backend")
        raise ConfigError(where, backend, "one of " + ", ".join(BACKENDS))
    try:
        return config_from_table(table, medium), backend
    except ConfigError as exc:
        for axis, source in sources.items():
            if axis.startswith(exc.path + "."):  # a whole section the config does not have
                raise ConfigError(source, values[axis], f"a config path ({exc.path}: {exc.allowed})") from None
        raise ConfigError(_locate(exc.path, sources, base), exc.value, exc.allowed) from None


def _set(table: dict, parts: list[str], value, where: str) -> None:
    for part in parts[:-1]:
        table = table.setdefault(part, {})
        if not isinstance(table, dict):
            raise ConfigError(where, value, f"a path into a table ({part} is not a table in the base)")
    table[parts[-1]] = copy.deepcopy(value)


def _locate(path: str, sources: dict, base: dict) -> str:
    """Where in the spec the config value at ``path`` came from: the swept value that contains it
    (or that it contains, for a whole unknown section), else the base."""
    for axis, source in sources.items():
        if path == axis:
            return source
        if path.startswith((axis + ".", axis + "[")):
            return source + path[len(axis):]
    return f"base.{path}" if path.split(".")[0].split("[")[0] in base else path


def _point(experiment: str, values: dict, config: Config, backend: str) -> SweepPoint:
    resolved = config.as_dict()
    digest = _digest({"experiment": experiment, "backend": backend, "config": resolved})
    medium = config.device.medium
    run_id = f"{experiment}-{_slug(medium)}-{'' if backend == 'spice' else backend + '-'}{digest[:16]}"
    return SweepPoint(run_id, json.loads(json.dumps(values)), backend, medium, config.seed,
                      json.loads(json.dumps(resolved)))


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")


def _spec_path(key) -> str:
    return str(key) if _PLAIN_KEY.fullmatch(str(key)) else json.dumps(str(key))[:60]


# -- one run, on a worker ------------------------------------------------------------------------------
def _train(store: RunStore, task: dict, resume: bool) -> Run:
    config = from_dict(Config, task["config"], f"run {task['run_id']}: config")
    if resume:
        return run_reproduction(store, [config], "train", resume=task["run_id"], progress=False)
    return run_reproduction(store, [config], "train", progress=False, backend=task["backend"],
                            run_id=task["run_id"])


# experiment name → function(store, task, resume) -> the completed Run; a new kind of sweep run is a
# new entry here.
EXPERIMENTS: dict[str, Callable[[RunStore, dict, bool], Run]] = {"train": _train}


def run_point(store_root: str, task: dict) -> dict:
    """Run (or resume, or find complete) one sweep run; executed by a worker process.

    Returns {"run_id", "outcome": "ran" | "resumed" | "found", "seconds" (wall time of this call),
    "cpu_s" (CPU time of this process and the ngspice processes it ran and reaped), "pid"}.
    The run's own lock keeps two processes from writing it: a task that finds it locked (the
    scheduler re-sent it while a worker it gave up on still runs it) waits for the lock, then
    finds the run complete or resumes it.
    """
    started, cpu_before = time.perf_counter(), _cpu_s()
    _no_spinning()
    store = RunStore(store_root)
    run_id = task["run_id"]
    waited_until = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            if (store.root / run_id).is_dir():
                # run.json alone: the run's files may be being rewritten by a process still on it
                if read_record(store.root / run_id)["status"] == "complete":
                    outcome = "found"
                else:
                    EXPERIMENTS[task["experiment"]](store, task, True)
                    outcome = "resumed"
            else:
                EXPERIMENTS[task["experiment"]](store, task, False)
                outcome = "ran"
            break
        except (RunLockedError, RunExistsError):
            if time.monotonic() > waited_until:
                raise
            time.sleep(0.5)
    store.close()
    return {"run_id": run_id, "outcome": outcome, "seconds": time.perf_counter() - started,
            "cpu_s": _cpu_s() - cpu_before, "pid": os.getpid()}


def _cpu_s() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _no_spinning() -> None:
    """Make this worker's SPICE engines sleep while ngspice solves instead of polling for the answer.

    Polling saves ~0.1 ms per call when one engine has the machine to itself; a sweep runs a worker
    per core (often beside other work), where every polling caller takes a core from an ngspice
    process that needs it. Set in the worker process only, before any engine is made."""
    from ..spice import engine

    engine.DEFAULT_SPIN_S = 0.0


# -- the sweep, from the client --------------------------------------------------------------------------
@dataclass
class SweepResult:
    sweep_id: str
    run: Run                              # the sweep's stored record
    runs: list[str]                       # every run id of the sweep
    skipped: list[str]                    # complete before this call: not submitted
    finished: dict[str, dict] = field(default_factory=dict)   # run id → run_point's answer
    failed: dict[str, str] = field(default_factory=dict)      # run id → one-line error
    elapsed_s: float = 0.0
    workers: int = 0

    @property
    def complete(self) -> bool:
        return not self.failed and len(self.skipped) + len(self.finished) == len(self.runs)


def run_sweep(store: RunStore, sweep: Sweep, workers: int | None = None, scheduler: str | None = None,
              client=None, progress: bool = True, write_report: Callable[[Run], dict] | None = None
              ) -> SweepResult:
    """Run every run of ``sweep`` not yet complete in ``store``, on Dask; returns what happened.

    ``client``: a ``distributed.Client`` to use as it is; else ``scheduler`` (an address such as
    ``tcp://10.0.0.5:8786``) to connect to, else a LocalCluster of ``workers`` processes (default:
    one per CPU this process may use), one thread each. The store's folder must be the same path on every
    worker (a shared filesystem on a real cluster). ``write_report(run) -> summary`` writes the
    sweep's report into its record when every run is complete. Runs that fail are named in a
    SweepError after the others finished; the sweep is then stored as failed and resumable.
    """
    check_workers(workers)
    if scheduler is not None:
        check_scheduler_address(scheduler)
    started = time.perf_counter()
    statuses = {info.id: info.status for info in store.list()}  # also brings the index up to date
    runs = [point.run_id for point in sweep.points]
    skipped = [run_id for run_id in runs if statuses.get(run_id) == "complete"]
    todo = [point for point in sweep.points if statuses.get(point.run_id) != "complete"]
    # The cluster first: one that cannot be reached leaves nothing in the store.
    with _dask_client(client, scheduler, workers) if todo else contextlib.nullcontext() as dask_client:
        record = _sweep_record(store, sweep)
        result = SweepResult(sweep.id, record, runs, skipped)
        with record if record.writable else contextlib.nullcontext():
            if todo:
                result.workers = len(dask_client.nthreads())
                _execute(dask_client, store, sweep, todo, result, progress)
            result.elapsed_s = time.perf_counter() - started
            store.list()  # the index learns the new runs from this one writer
            if record.writable:
                if result.failed:
                    record.fail(_failure_line(result))
                else:
                    record.complete(write_report(record) if write_report is not None else _headline(result))
    if result.failed:
        damaged = [run_id for run_id, error in result.failed.items() if error.startswith("CorruptRunError")]
        retry = "; run the sweep again to retry them"
        if damaged:  # a damaged run stays damaged: the store never repairs or deletes one
            retry = (f"; {len(damaged)} of them damaged in the store ({damaged[0]}{', ...' if len(damaged) > 1 else ''}): "
                     "restore or move their folders away, then run the sweep again")
        raise SweepError(_failure_line(result) + f"{retry} (sweep {sweep.id})")
    return result


def _headline(result: SweepResult) -> dict:
    return {"runs": len(result.runs), "complete": len(result.skipped) + len(result.finished)}


def _failure_line(result: SweepResult) -> str:
    first_id, first_error = next(iter(result.failed.items()))
    return (f"{len(result.failed)} of {len(result.runs)} runs failed (first: {first_id}: {first_error[:200]})")


def _sweep_record(store: RunStore, sweep: Sweep) -> Run:
    """The sweep's own stored run, created, resumed (after a kill or failure) or, when complete,
    opened to read."""
    try:
        record = store.create(SWEEP_KIND, {"spec": sweep.spec}, seed=0,
                              labels={"sweep": sweep.name, "experiment": sweep.experiment}, name=sweep.name,
                              run_id=sweep.id, files={"plan.json": sweep.plan()})
    except RunExistsError:
        existing = store.open(sweep.id)
        if existing.status == "complete":
            return existing
        record = store.resume(sweep.id)
    if "plan.json" not in record.files:  # a sweep stored before runs were created with their plan
        record.write_json("plan.json", sweep.plan())
    return record


def check_workers(workers, path: str = "workers") -> None:
    """``workers`` is None (one per CPU) or a count of local worker processes this machine can hold:
    at most 8 per CPU. Each is an interpreter with its own ngspice processes (~100 MB); a typo of
    1000 would start them all before the first run."""
    if workers is not None:
        cpus = len(os.sched_getaffinity(0))
        check_int(path, workers, 1, 8 * cpus)


# A Dask scheduler address: [protocol://]host:port, with a host name, IPv4 or [IPv6] address.
_SCHEDULER = re.compile(r"(?:(?:tcp|tls|ws|wss|ucx)://)?(?:[A-Za-z0-9][A-Za-z0-9._-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\])"
                        r":([0-9]{1,5})")
SCHEDULER_ALLOWED = "a Dask scheduler address [tcp://]HOST:PORT, e.g. tcp://10.0.0.5:8786"


def check_scheduler_address(address, path: str = "scheduler") -> str:
    """``address`` if it is a scheduler address Dask can dial; ConfigError naming ``path`` otherwise
    (Dask's own messages, "missing port number", "invalid literal for int()", name no option)."""
    match = _SCHEDULER.fullmatch(address) if isinstance(address, str) else None
    if match is None or not 1 <= int(match.group(1)) <= 65535:
        raise ConfigError(path, address, SCHEDULER_ALLOWED)
    return address


class _dask_client:
    """A distributed Client: the one given, one connected to ``scheduler``, or one over a new
    LocalCluster of single-threaded worker processes; what this made is closed on exit."""

    def __init__(self, client, scheduler: str | None, workers: int | None):
        self.given, self.scheduler, self.workers = client, scheduler, workers
        self.made: list = []

    def __enter__(self):
        if self.given is not None:
            return self.given
        import logging

        from distributed import Client, LocalCluster

        if self.scheduler:
            try:
                client = Client(self.scheduler, timeout="30s")
            except (OSError, TimeoutError) as exc:  # nobody answers there: the address is wrong or down
                raise ConfigError("scheduler", self.scheduler, f"{SCHEDULER_ALLOWED} where a scheduler "
                                  f"answers ({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})") from None
        else:
            workers = self.workers or len(os.sched_getaffinity(0))
            # Processes, one thread each: ngspice and NumPy runs do not share one interpreter well,
            # and a crash or a kill takes one run with it, not the sweep.
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=":0",
                                   # The workers' own error logs repeat what the sweep reports of each
                                   # failed run; quieter still when the caller silenced distributed.
                                   silence_logs=max(logging.ERROR, logging.getLogger("distributed").level))
            self.made.append(cluster)
            client = Client(cluster)
        self.made.insert(0, client)
        return client

    def __exit__(self, *exc):
        for thing in self.made:
            try:
                thing.close()
            except Exception:  # noqa: BLE001 - closing a cluster that lost its workers must not hide the error
                pass
        return False


def task_key(run_id: str) -> str:
    """The Dask key of a run's task. One task group for every run ("circuitnn-run-<hex>"), so the
    scheduler queues them and hands each worker one at a time instead of spreading all out at once."""
    return f"circuitnn-run-{hashlib.sha256(run_id.encode()).hexdigest()[:24]}"


def _execute(client, store: RunStore, sweep: Sweep, todo: list[SweepPoint], result: SweepResult,
             progress: bool) -> None:
    from distributed import as_completed
    from tqdm import tqdm

    root = str(store.root.resolve())
    futures = {}
    for point in todo:
        future = client.submit(run_point, root, point.task(sweep.experiment), key=task_key(point.run_id),
                               pure=False)
        futures[future] = point.run_id
    keys = {future.key for future in futures}
    bar = tqdm(total=len(result.runs), initial=len(result.skipped), desc=f"sweep {sweep.name}", unit="run",
               disable=not progress, dynamic_ncols=True)

    def show() -> None:
        if progress:
            # Tasks the scheduler has handed to workers, at most one per thread actually executing.
            assigned = sum(1 for tasks in client.processing().values() for key in tasks if key in keys)
            running = min(assigned, sum(client.nthreads().values()))
            bar.set_postfix_str(f"running {running}, failed {len(result.failed)}", refresh=True)

    show()
    try:
        for future in as_completed(futures):
            run_id = futures.pop(future)
            keys.discard(future.key)
            if future.status == "finished":
                result.finished[run_id] = future.result()
            else:
                error = future.exception() if future.status == "error" else future.status
                result.failed[run_id] = _one_line(f"{type(error).__name__}: {error}")
            future.release()
            bar.update(1)
            show()
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        bar.close()


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).strip()[:300]
