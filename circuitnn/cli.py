"""The ``circuitnn`` command: a thin layer over the library; every command is one library call.

Exit status: 0 done, 2 bad input (config, parameters, files, folders), 1 simulation failure or
missing ngspice, 128 + N stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP). Every failure is
one line on stderr; an interrupted or stopped run is left resumable (``--resume``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import signal
import sys
import traceback
from pathlib import Path

import numpy as np

from . import __version__
from .errors import CircuitnnError, ConfigError, NetlistError, NgspiceNotFoundError, SimulationError
from .reports import BUILDERS
from .store import RunInterrupted, StoreError
from .store.runs import STATUSES

# Every command that stores or reads runs uses this folder unless told otherwise; `reproduce` stores
# into <--out>/runs, which is this folder with the default --out.
DEFAULT_OUT = "out"
DEFAULT_STORE = f"{DEFAULT_OUT}/runs"
# The kinds of run the commands store (`circuitnn runs --kind`): each has its report builder.
RUN_KINDS = tuple(BUILDERS)
DESCRIPTION = ("Co-simulate analog neural-network circuits in ngspice, train them on chip from Python, and "
               "scale them with a calibrated NumPy surrogate.")
EPILOG = (f"Runs are stored in {DEFAULT_STORE}/ unless --store says otherwise; `circuitnn runs` lists them and "
          "`circuitnn report RUN_ID` rebuilds their reports. Exit status: 0 done, 1 simulation failure, "
          "2 bad input, 128 + N stopped by signal N (130 Ctrl-C; the run stays resumable with --resume).")


def _config(args, trainer_kind: str | None = None):
    from .experiments.config import load_config

    return load_config(getattr(args, "config", None), getattr(args, "medium", None),
                       trainer_kind or getattr(args, "trainer", None))


def _media(args) -> list[str]:
    """``--medium``: ``all`` (the paper's W, Cr, C), one preset, or a comma-separated list of presets."""
    from .devices.base import preset
    from .devices.media import MEDIA

    if getattr(args, "medium", None) in (None, "all"):
        return list(MEDIA)
    names = [preset(name.strip()).medium for name in str(args.medium).split(",") if name.strip()]
    if not names:  # ',' names no medium: the command would write nothing, or fail on something else
        raise ConfigError("--medium", args.medium, "a preset (W, Cr, C, PCM, ...), a comma-separated list of "
                          "them, or all")
    return list(dict.fromkeys(names))  # each medium once: 'W,w' would write the same files twice


def _floats(text: str, field: str) -> np.ndarray:
    try:
        return np.array([float(v) for v in text.replace(";", ",").split(",") if v.strip()])
    except ValueError:
        raise ConfigError(field, text, "comma-separated numbers") from None


def _write_output(path: str, text: str, option: str = "--out") -> None:
    """``text`` into the file ``path`` (its folder made if needed); ConfigError naming the option."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    except OSError as exc:
        raise ConfigError(option, path, f"a file that can be written ({exc.strerror})") from None


def _outside_runs(folder: Path, option: str = "--out") -> None:
    """Output never goes into a stored run's directory (one holding run.json, or inside one): the
    run records each of its files with its hash, and a file written over there makes the run
    unreadable (CorruptRunError), losing it. ``report --out`` on the store folder would do just that.
    A store (--store) inside a run would hide new runs in it, lost with it."""
    from .store.runs import RUN_FILE

    try:
        here = folder.resolve()
    except (OSError, RuntimeError):  # a loop of links: the write names the problem
        return
    for candidate in (here, *here.parents):
        if _is_run_folder(candidate / RUN_FILE):
            what = ("the folder of runs, not a run's own folder" if option == "--store"
                    else "a folder outside the stored run")
            raise ConfigError(option, str(folder), f"{what} {candidate} (files written there would "
                              "replace or hide among the run's own)")


def _is_run_folder(record: Path) -> bool:
    """``record`` is a stored run's run.json (its id is its folder's name), not any file of that name."""
    try:
        return record.is_file() and json.loads(record.read_bytes()).get("id") == record.parent.name
    except (OSError, ValueError, AttributeError):
        return False


def cmd_netlist(args) -> None:
    from .reports.artifacts import write_default_netlists

    for path in write_default_netlists(Path(args.out), _media_configs(args)):
        print(path)


def _media_configs(args):
    from .experiments.config import load_config

    return [load_config(args.config, name, getattr(args, "trainer", None)) for name in _media(args)]


def cmd_simulate(args) -> None:
    from .circuits.crossbar import Crossbar
    from .circuits.default import EXAMPLE_INPUT, example_states
    from .experiments.operating_point import read_operating_point
    from .spice.engine import SpiceEngine

    config = _config(args)
    crossbar = Crossbar(config.crossbar_spec())
    states = (_floats(args.states, "--states") if args.states
              else example_states(crossbar.n_devices, config.seed))
    inputs = _floats(args.inputs, "--inputs") if args.inputs else np.array(EXAMPLE_INPUT)
    with SpiceEngine() as engine:
        point = read_operating_point(crossbar, states, inputs, engine)
    report = {
        "circuit": crossbar.spec.name, "medium": crossbar.spec.device.medium,
        "inputs": point.inputs.tolist(), "states": point.states.tolist(),
        "conductances_S": point.conductances_S.tolist(), "neuron_nodes_V": point.neuron_nodes,
        "outputs_V": point.outputs_V.tolist(),
    }
    text = json.dumps(report, indent=2)
    if args.out:
        _write_output(args.out, text + "\n")
    print(text)


def cmd_device_curves(args) -> None:
    from .experiments.demo import all_device_curves
    from .reports.artifacts import write_device_curves

    configs = _media_configs(args)
    for path in write_device_curves(Path(args.out), all_device_curves(configs), configs):
        print(path)


def cmd_fit(args) -> None:
    from .devices.fit import fit_msdc, load_trace_csv, write_fit_report

    if args.medium is None and args.config is None:
        # A trace does not say which medium it is; the fit starts from that medium's preset and names
        # its files and figures after it.
        raise ValueError("fit needs --medium W, Cr or C (the medium of the measured device), or a --config "
                         "naming its preset")
    config = _config(args)
    t, v, i = load_trace_csv(Path(args.trace))
    result = fit_msdc(t, v, i, config.device.params(), r_series_ohm=args.r_series_ohm, source=args.trace)
    for path in write_fit_report(result, Path(args.out)):
        print(path)
    print(json.dumps({"relative_rms_error": result.relative_rms_error,
                      "parameters": result.values}, indent=2, default=float))


def cmd_demo(args) -> None:
    from .experiments.demo import run_demo
    from .reports.artifacts import write_demo

    configs = _media_configs(args)
    for path in write_demo(Path(args.out), configs, *run_demo(configs)):
        print(path)


def _store(args, root: Path | None = None):
    """The store ``--store`` names (or ``root``), which says when a new run repeats stored ones."""
    from .store import RunStore
    from .store.runs import writer_of

    def repeated(run, earlier) -> None:
        same = earlier[0]
        writer = writer_of(same.path) if same.status == "running" else False
        if same.status == "complete":
            what = (f"its results will be those of run {same.id} (complete; `circuitnn report {same.id}` "
                    "rebuilds its report)")
        elif writer is not False:
            what = f"run {same.id} is being written now{f' by process {writer}' if writer else ''}, to the same results"
        elif args.command == "calibrate":
            what = f"run {same.id} is {same.status} (calibrations do not resume)"
        else:
            what = f"run {same.id} is {same.status}: to finish it instead, stop this one and {_resume_hint(args, same)}"
        others = f" and {len(earlier) - 1} more" if len(earlier) > 1 else ""
        _warn(f"run {run.id} repeats {same.id}{others} (same kind, configuration and seed); {what}")

    return RunStore(root if root is not None else Path(args.store), on_repeat=repeated)


def _warn(message: str) -> None:
    _say(f"circuitnn: warning: {message}")


def _calibration(args, store, media: list[str]):
    """The stored calibration ``--calibration`` names (None without it), with a warning when it was
    fitted to another medium than the ones simulated."""
    if not args.calibration:
        return None
    from .experiments.calibration import calibration_medium, load_calibration

    calibration = load_calibration(store, args.calibration)
    fitted_to = calibration_medium(store, args.calibration)
    others = [m for m in media if fitted_to and m != fitted_to]
    if others:
        _warn(f"calibration {args.calibration} was fitted to medium {fitted_to}; it is applied to "
              f"{', '.join(others)} as well, where it fits nothing of that medium")
    return calibration


def _check_resume(store, args, kinds: tuple[str, ...]):
    """``--resume`` names a run this command wrote: another kind's plan would not be understood.
    Returns that run, opened for reading (None without ``--resume``)."""
    if getattr(args, "resume", None):
        run = store.open(args.resume)
        if run.info.kind not in kinds:
            raise ConfigError("--resume", args.resume, f"a {' or '.join(kinds)} run; this one is a "
                              f"{run.info.kind!r} run (resume it with the command that started it)")
        return run
    return None


def cmd_onchip(args) -> None:
    """``train`` (one medium) and ``compare-media`` (all, with the noise heat-map)."""
    from .experiments.reproduction import run_reproduction
    from .reports import write_report

    one_medium = args.command == "train"
    if args.calibration and args.backend != "surrogate":
        raise ValueError("--calibration needs --backend surrogate: a calibration tunes the surrogate, "
                         "SPICE runs have none")
    configs = [_config(args)] if one_medium else _media_configs(args)
    heatmap_medium = None
    if not one_medium and args.heatmap_medium:
        from .experiments.config import _medium_name

        heatmap_medium = _medium_name(args.heatmap_medium, "--heatmap-medium")
        media = [config.device.medium for config in configs]
        if heatmap_medium not in media:
            raise ConfigError("--heatmap-medium", args.heatmap_medium, "one of the media run: " + ", ".join(media))
    store = _store(args)
    _check_resume(store, args, ("train", "compare-media"))
    calibration = None if args.resume else _calibration(args, store, [c.device.medium for c in configs])
    run = run_reproduction(store, configs, args.command,
                           heatmap_medium=heatmap_medium,
                           resume=args.resume, progress=not args.quiet, backend=args.backend,
                           calibration=calibration, write_report=write_report)
    print(f"run {run.id}: {run.path / 'report.md'}")


def cmd_calibrate(args) -> None:
    from .experiments.calibration import run_calibration
    from .reports import build_report, write_report
    from .reports.calibration_report import held_out_errors, worse_after_fit
    from .reports.document import close_figures, markdown_table

    run = run_calibration(_store(args), _config(args), progress=not args.quiet, write_report=write_report)
    report = build_report(run)
    close_figures(report)
    print("\n".join(markdown_table(report.tables["held_out_errors"])))
    for sentence in worse_after_fit(held_out_errors(run)):
        _warn(sentence)
    store = "" if args.store == DEFAULT_STORE else f" --store {args.store}"
    print(f"calibration {run.id}: {run.path / 'report.md'} (use with --backend surrogate --calibration "
          f"{run.id}{store})")


def cmd_crosscheck(args) -> None:
    from .experiments.crosscheck import run_crosscheck
    from .reports import write_report

    store = _store(args)
    _check_resume(store, args, ("crosscheck",))
    configs = _media_configs(args)
    calibration = None if args.resume else _calibration(args, store, [c.device.medium for c in configs])
    modes = {"both": (False, True), "noreset": (False,), "reset": (True,)}[args.modes]
    run = run_crosscheck(store, configs, seeds=args.seeds, reset_modes=modes,
                         calibration=calibration, resume=args.resume, progress=not args.quiet,
                         write_report=write_report)
    print(run.read_text("report.md"))
    print(f"cross-check {run.id}: {run.path}")


def cmd_networks(args) -> None:
    from .experiments.networks import run_networks
    from .reports import write_report
    from .validation import check_range

    check_range("--seed", args.seed, 0, 2**32 - 1, True)
    _check_resume(_store(args), args, ("networks",))

    run = run_networks(_store(args), args.mnist, seed=args.seed, epochs=args.epochs,
                       max_examples=args.max_examples, weight_noise=args.weight_noise,
                       repeats=args.repeats, kinds=tuple(args.network or ("mlp", "cnn")),
                       progress=not args.quiet,
                       line_resistances_ohm=() if args.no_wires else tuple(args.line_resistances),
                       resume=args.resume, write_report=write_report)
    print(run.read_text("report.md"))
    print(f"run {run.id}: {run.path}")


def cmd_learn_networks(args) -> None:
    from .experiments.network_learning import default_plan, run_learning_study
    from .reports import write_report
    from .validation import check_range

    check_range("--seed", args.seed, 0, 2**32 - 1, True)
    _check_resume(_store(args), args, ("learn-networks",))
    plan = None
    if not args.resume:
        changes = {"mnist_dir": args.mnist, "seed": args.seed, "max_examples": args.max_examples,
                   "hidden": args.hidden, "epochs": args.epochs, "cnn_epochs": args.cnn_epochs,
                   "chips": args.chips, "backward_weights": args.backward_weights}
        for name in ("conductance_levels", "neuron_levels", "sweep_methods", "extra_methods", "cnn_methods"):
            value = getattr(args, name)
            if value is not None:
                changes[name] = [v for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        for name in ("conductance_levels", "neuron_levels"):
            if name in changes:
                changes[name] = [float(v) for v in _floats(",".join(changes[name]), f"--{name.replace('_', '-')}")]
        for name in ("hidden", "epochs", "cnn_epochs"):
            check_range(f"--{name.replace('_', '-')}", changes[name], 1, 100000, True)
        plan = default_plan(**changes)
    run = run_learning_study(_store(args), plan, progress=not args.quiet, resume=args.resume,
                             write_report=write_report)
    print(run.read_text("report.md"))
    print(f"run {run.id}: {run.path}")


def cmd_drift(args) -> None:
    from dataclasses import replace

    from .experiments.drift import DriftStudyConfig, quick_config, run_drift
    from .reports import write_report
    from .validation import check_range

    check_range("--seed", args.seed, 0, 2**32 - 1, True)
    _check_resume(_store(args), args, ("drift",))
    config = quick_config() if args.quick else DriftStudyConfig()
    changes = {"seed": args.seed, "mnist_dir": args.mnist}
    if args.network:
        changes["kinds"] = tuple(args.network)
    if args.step:
        changes["steps"] = tuple(args.step)
    if args.draws is not None:
        changes["draws"] = args.draws
    config = replace(config, **changes).with_setting(args.window_fraction, args.drift_scale, args.regularizer,
                                                     args.strength)
    run = run_drift(_store(args), config, resume=args.resume, progress=not args.quiet, write_report=write_report)
    print(run.read_text("report.md"))
    print(f"run {run.id}: {run.path}")


def cmd_mismatch(args) -> None:
    from .experiments.mismatch import MismatchStudy, run_mismatch
    from .reports import write_report

    store = _store(args)
    _check_resume(store, args, ("mismatch",))
    study = MismatchStudy(levels=tuple(float(v) for v in _floats(args.levels, "--levels")), chips=args.chips,
                          backend=args.backend)
    run = run_mismatch(store, _config(args, trainer_kind="dgc"), study, resume=args.resume, progress=not args.quiet,
                       write_report=write_report)
    print(f"run {run.id}: {run.path / 'report.md'}")


def cmd_sweep(args) -> None:
    from .experiments.sweep import check_scheduler_address, check_workers, load_sweep, run_sweep
    from .reports import write_report

    if args.scheduler is not None:
        check_scheduler_address(args.scheduler, "--scheduler")
    if args.workers is not None:
        check_workers(args.workers, "--workers")
        if args.scheduler:
            raise ConfigError("--workers", args.workers, "nothing with --scheduler (the cluster has its own workers)")
    sweep = load_sweep(args.spec)
    if not args.verbose:  # Dask's own news (workers starting, lost, restarted) only with -v
        import distributed  # noqa: F401 - it sets its loggers' levels when imported: set ours after

        # CRITICAL: a failed run is reported in the command's one line, not again in each worker's log
        logging.getLogger("distributed").setLevel(logging.CRITICAL)
    result = run_sweep(_store(args), sweep, workers=args.workers, scheduler=args.scheduler,
                       progress=not args.quiet, write_report=write_report)
    store = "" if args.store == DEFAULT_STORE else f" --store {args.store}"
    print(f"sweep {sweep.id}: {len(result.runs)} runs ({len(result.skipped)} already stored, "
          f"{len(result.finished)} run now) in {result.elapsed_s:.1f} s; report: {result.run.path / 'report.md'} "
          f"(rebuild with: circuitnn report --sweep {sweep.id}{store})")


def cmd_report(args) -> None:
    from .reports import build_report
    from .reports.document import write_to_folder
    from .store import CorruptRunError

    store = _store(args)
    reports = []
    if args.sweep:
        if store.open(args.sweep).info.kind != "sweep":
            raise ConfigError("--sweep", args.sweep, "the id of a sweep (circuitnn runs --kind sweep lists them)")
        args.runs = [*args.runs, args.sweep]
    if not args.runs:
        raise ConfigError("report", "no run", "one or more RUN_IDs, or --sweep SWEEP_ID")
    for run_id in args.runs:  # every one built (and so checked) before anything is written
        run = store.open(run_id)
        try:
            reports.append(build_report(run))
        except CircuitnnError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            # The named checks of the reports cover the files they read; this is the net behind them.
            raise CorruptRunError(run.path, f"the report cannot be built from its files "
                                  f"({type(exc).__name__}: {str(exc)[:120]})") from None
    for report in reports:  # <out>/<RUN_ID> is a run's own folder when --out is the store
        _outside_runs(Path(args.out) / report.run_id)
    for report in reports:
        out = Path(args.out) / report.run_id
        write_to_folder(report, out)
        print(out / "report.md")


def cmd_runs(args) -> None:
    from .store import format_run_table

    labels = {}
    for item in args.label or []:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise ConfigError("--label", item, "KEY=VALUE, e.g. media=Cr")
        labels[key] = value
    store = _store(args)
    if args.kind is not None and args.kind not in RUN_KINDS:
        # A typo (`--kind calibrate`) would list nothing and look like an empty store; a kind of runs
        # made through the Python API is accepted when this store holds some.
        stored = {info.kind for info in store.list()}
        if args.kind not in stored:
            raise ConfigError("--kind", args.kind, "one of " + ", ".join([*RUN_KINDS, *sorted(stored - set(RUN_KINDS))]))
    listing = store.list(kind=args.kind, status=args.status, labels=labels or None)
    if listing:
        print(f"runs in {store.root}:")
        print(format_run_table(listing, listing.skipped))
        return
    filters = [f"kind={args.kind}"] * bool(args.kind) + [f"status={args.status}"] * bool(args.status) + [
        f"{k}={v}" for k, v in labels.items()]
    where = f"no runs in {store.root}" + (f" matching {' '.join(filters)}" if filters else "")
    if not store.root.is_dir():
        where += " (the folder does not exist; give another with --store)"
    print("\n".join([where, *(f"skipped {e.run_dir.name}: {e.problem}" for e in listing.skipped)]))


def cmd_reproduce(args) -> None:
    """The main job: device curves and example netlists, then the compare-media reproduction."""
    from .experiments.demo import run_demo
    from .experiments.reproduction import run_reproduction
    from .reports.artifacts import write_demo
    from .reports import write_report, write_report_to

    out = Path(args.out)
    store = _store(args, out / "runs")
    if args.resume:
        # The run's own media and configs, as every --resume: the device curves, netlists and operating
        # points beside it are then those of the uninterrupted job, whatever --medium/--config say.
        from .experiments.reproduction import stored_config

        stored = _check_resume(store, args, ("compare-media",))
        configs = [stored_config(stored, medium) for medium in stored.read_json("plan.json")["media"]]
    else:
        configs = _media_configs(args)
    for path in write_demo(out, configs, *run_demo(configs)):
        print(path)
    if args.resume and stored.status == "complete":
        # Stopped after its run completed (while the files above or the report below were written):
        # what is left of the job is writing them, from the store.
        _warn(f"run {stored.id} is complete: its report and the files beside it are rebuilt, nothing is simulated")
        run = stored
    else:
        run = run_reproduction(store, configs, "compare-media", heatmap_medium="Cr",
                               progress=not args.quiet, resume=args.resume, write_report=write_report)
    for path in write_report_to(run, out / "report"):
        print(path)
    store = "" if args.out == DEFAULT_OUT else f" --store {out / 'runs'}"
    print(f"run {run.id} is stored in {out / 'runs'}; `circuitnn runs{store}` lists it")


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad option reported like every other bad input: one line, exit 2
    (``circuitnn <command> -h`` shows the usage)."""

    def error(self, message: str):
        _say(f"{self.prog}: error: {message} (see {self.prog} -h)")
        sys.exit(2)

    def refuse_empty(self, args: argparse.Namespace) -> None:
        """An option given an empty (or blank) value is an error, not its default: ``--resume ""``
        must not start a new run, nor ``--store ""`` write into the current folder (an unset shell
        variable, ``--store "$STORE"``, gives such a value). Options whose help gives the empty value
        a meaning (``--extra-methods ""``: none) are the exceptions."""
        for action in self._actions:
            value = getattr(args, action.dest, None)
            values = value if isinstance(value, list) else [value]
            if action.dest not in EMPTY_MEANS_NONE and any(isinstance(v, str) and not v.strip() for v in values):
                name = "/".join(action.option_strings) or action.metavar or action.dest
                hint = " (leave the option out for its default)" if action.option_strings else ""
                self.error(f"argument {name}: an empty value{hint}")


# Options whose empty value is documented to mean "none" (see their help).
EMPTY_MEANS_NONE = frozenset({"extra_methods", "cnn_methods"})


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="circuitnn", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("-v", "--verbose", action="store_true", help="log engine restarts and progress")
    parser.add_argument("--version", action="version", version=f"circuitnn {__version__}",
                        help="print circuitnn's version and exit")
    sub = parser.add_subparsers(dest="command", required=True)

    STORE_HELP = f"folder of stored runs (default: {DEFAULT_STORE})"

    def common(p, all_media: bool):
        p.add_argument("--config", help="TOML file (see circuitnn/presets/*.toml)")
        p.add_argument("--medium", default="all" if all_media else None,
                       help="a device preset: W, Cr, C (M-SDC), PCM, VTEAM, AgChalc, ..."
                            + (", a comma-separated list, or all = W,Cr,C (default)" if all_media
                               else " (default: Cr)"))

    p = sub.add_parser("reproduce", help="the main job: device curves, example netlists and the whole "
                                         "on-chip training reproduction for every medium")
    common(p, True)
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder; runs go to <out>/runs (default: {DEFAULT_OUT})")
    p.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted main job (its run in <out>/runs)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_reproduce)

    def run_options(p, all_media: bool):
        common(p, all_media)
        p.add_argument("--store", default=DEFAULT_STORE, help=STORE_HELP)
        p.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run (its own settings)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        p.add_argument("--backend", choices=("spice", "surrogate"), default="spice",
                       help="simulate in ngspice (default) or on the calibrated NumPy surrogate")
        p.add_argument("--calibration", metavar="RUN_ID",
                       help="surrogate calibration run (circuitnn calibrate); needs --backend surrogate")
        # Not listed from the registry here: that imports every trainer (1 s) for any command's --help.
        p.add_argument("--trainer", metavar="KIND",
                       help="on-chip trainer, trainer.kind: write-verify (default), dgc (perturb-and-measure), "
                            "drift-regularized, or any registered one; an unknown name lists them")

    p = sub.add_parser("calibrate", help="fit the surrogate to SPICE for one medium; store errors and parity plots")
    common(p, False)
    p.add_argument("--store", default=DEFAULT_STORE, help=STORE_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("crosscheck", help="the reproduction on SPICE and on the surrogate over seeds: "
                                          "agreement of accuracy, time and energy, and where runs diverge")
    common(p, True)
    p.add_argument("--seeds", type=int, default=4, help="seeds per medium and mode (default 4)")
    p.add_argument("--modes", choices=("both", "noreset", "reset"), default="both",
                   help="with and/or without the initial reset pulse (default both)")
    p.add_argument("--calibration", metavar="RUN_ID",
                   help="calibration run (circuitnn calibrate) for the surrogate side (default: uncalibrated)")
    p.add_argument("--store", default=DEFAULT_STORE, help=STORE_HELP)
    p.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted cross-check (its own settings)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_crosscheck)

    p = sub.add_parser("networks", help="MLP and CNN on crossbar tiles: accuracy with and without "
                                        "M-SDC and PCM device effects")
    p.add_argument("--mnist", metavar="DIR", help="folder (or images file) with MNIST IDX files, gzip or not "
                   "(default: scikit-learn's 8x8 digits; see the README for where to get MNIST)")
    p.add_argument("--network", action="append", choices=("mlp", "cnn"), help="repeatable; default both")
    p.add_argument("--epochs", type=int, default=3, help="training epochs per network (default 3)")
    p.add_argument("--max-examples", type=int, default=10_000,
                   help="use at most this many examples, 80 %% for training (default 10000)")
    p.add_argument("--weight-noise", type=float, default=0.1,
                   help="relative sigma of the weight noise in hardware-aware training (default 0.1)")
    p.add_argument("--repeats", type=int, default=3, help="programming draws per evaluation (default 3)")
    p.add_argument("--line-resistances", type=float, nargs="+", default=[0.0, 1.0, 2.0], metavar="OHM",
                   help="wire sweep: line resistance per crosspoint segment (default 0 1 2)")
    p.add_argument("--no-wires", action="store_true", help="skip the wire sweep")
    p.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run (its own settings)")
    p.add_argument("--seed", type=int, default=0, help="seed of data split, initialisation and noise (default 0)")
    p.add_argument("--store", default=DEFAULT_STORE, help=STORE_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=cmd_networks)

    p = sub.add_parser("learn-networks", help="on-chip learning of the MLP and CNN on the surrogate: DGC, BP, "
                                              "hybrids, SPSA, parallel perturbation against circuit variation")
    p.add_argument("--mnist", metavar="DIR", help="folder (or images file) with MNIST IDX files (default: "
                   "scikit-learn's 8x8 digits; the README's study uses tests/data/mnist)")
    p.add_argument("--max-examples", type=int, default=None, help="use at most this many examples, 80 %% for "
                   "training (default: all)")
    p.add_argument("--hidden", type=int, default=32, help="hidden units of the MLP (default 32)")
    p.add_argument("--epochs", type=int, default=10, help="MLP training epochs (default 10)")
    p.add_argument("--cnn-epochs", type=int, default=3, help="CNN training epochs (default 3)")
    p.add_argument("--chips", type=int, default=1, help="chip instances per variation level (default 1)")
    p.add_argument("--conductance-levels", metavar="S,S,...", help="conductance variation sigmas, fractions "
                   "(default 0,0.05,0.1,0.2,0.3)")
    p.add_argument("--neuron-levels", metavar="S,S,...", help="neuron-circuit variation sigmas (default 0.05,0.1,0.2)")
    p.add_argument("--sweep-methods", metavar="M,M,...", help="MLP methods of the variation sweep (default "
                   "bp,dgc,hybrid-bp-dgc,parallel); also dgc-one-sided, spsa, hybrid-dgc-bp")
    p.add_argument("--extra-methods", metavar="M,M,...", help="MLP methods run without variation only (default "
                   "dgc-one-sided,spsa,hybrid-dgc-bp; empty string for none)")
    p.add_argument("--cnn-methods", metavar="M,M,...", help="CNN methods (default bp,dgc,hybrid-conv-dgc,"
                   "hybrid-conv-bp; empty string for none)")
    p.add_argument("--backward-weights", choices=("separate_array", "same_devices"), default="separate_array",
                   help="which devices BP's transposed product reads (default separate_array)")
    p.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run (its own settings)")
    p.add_argument("--seed", type=int, default=0, help="seed of data split, initial weights and chips (default 0)")
    p.add_argument("--store", default=DEFAULT_STORE, help=STORE_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=cmd_learn_networks)

    p = sub.add_parser("drift", help="PCM drift: drift-regularized training and accuracy over time, optimized "
                                     "four-device programming, SPICE checks on the 9-3-1 PCM circuit")
    p.add_argument("--mnist", metavar="DIR", help="folder (or images file) with MNIST IDX files "
                   "(default: scikit-learn's 8x8 digits)")
    p.add_argument("--network", action="append", choices=("mlp", "cnn"), help="repeatable; default both")
    p.add_argument("--step", action="append", choices=("networks", "programming", "spice"),
                   help="repeatable; default all three")
    p.add_argument("--draws", type=int, help="programming draws per evaluation (default 25)")
    p.add_argument("--quick", action="store_true", help="a few-minute version: fewer examples, draws, generations")
    p.add_argument("--window-fraction", type=float, help="fraction of the PCM window a full-scale weight uses "
                   "(default 0.15)")
    p.add_argument("--drift-scale", type=float, help="multiplies every drift exponent (default 1: as published)")
    p.add_argument("--regularizer", choices=("analytic", "montecarlo", "montecarlo_outputs"),
                   help="form of the drift penalty (default montecarlo)")
    p.add_argument("--strength", type=float, help="lambda of the drift penalty (default 3)")
    p.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run (its own settings)")
    p.add_argument("--seed", type=int, default=0, help="seed of data split, initialisation and draws (default 0)")
    p.add_argument("--store", default=DEFAULT_STORE, help=STORE_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=cmd_drift)

    p = sub.add_parser("train", help="on-chip training of one medium: write-verify with and without reset, "
                                     "or --trainer dgc (SPICE, or the surrogate with --backend surrogate)")
    run_options(p, False)
    p.set_defaults(func=cmd_onchip)

    p = sub.add_parser("compare-media", help="on-chip training of every medium, sweeps and heat-map")
    run_options(p, True)
    p.add_argument("--heatmap-medium", default="Cr", help="medium of the noise heat-map (default: Cr)")
    p.set_defaults(func=cmd_onchip)

    p = sub.add_parser("mismatch", help="neuron-circuit mismatch study: write-verify alone, DGC from as-found "
                                        "states, and write-verify + DGC fine-tuning, over mismatch levels and chips")
    common(p, False)
    p.add_argument("--levels", default="0,1,2,3", help="mismatch levels, multiples of the base sigmas (default 0,1,2,3)")
    p.add_argument("--chips", type=int, default=10, help="chips (Monte-Carlo instances) per level (default 10)")
    p.add_argument("--backend", choices=("spice", "surrogate"), default="surrogate",
                   help="the NumPy surrogate (default: ~10 s per chip) or ngspice (minutes per chip)")
    p.add_argument("--store", default=DEFAULT_STORE, help=STORE_HELP)
    p.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted study (its own settings)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_mismatch)

    p = sub.add_parser("report", help="regenerate reports from stored runs (no simulation)")
    p.add_argument("runs", nargs="*", metavar="RUN_ID", help="one or more run ids (circuitnn runs lists them)")
    p.add_argument("--sweep", metavar="SWEEP_ID", help="a sweep's comparison report: its runs aggregated "
                                                       "over seeds, tables (CSV) and figures (PNG)")
    p.add_argument("--store", default=DEFAULT_STORE, help=STORE_HELP)
    p.add_argument("--out", default="reports", help="folder receiving <RUN_ID>/report.md etc. (default: reports)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("sweep", help="run an experiment over a grid and/or list of config values on Dask "
                                     "(local worker processes or an existing cluster); resumable")
    p.add_argument("spec", metavar="SPEC.toml", help="the sweep: base config, [grid] and/or [[list]] of dotted "
                                                     "config values (see the README, Sweeps)")
    p.add_argument("--workers", type=int, help="local worker processes (default: one per CPU)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run on this existing Dask scheduler "
                   "(tcp://host:8786) instead; its workers must see the --store folder at the same path")
    p.add_argument("--store", default=DEFAULT_STORE, help=STORE_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("runs", help="list stored runs")
    p.add_argument("--store", default=DEFAULT_STORE, help=STORE_HELP)
    p.add_argument("--kind", help="only runs of this kind: " + ", ".join(RUN_KINDS))
    p.add_argument("--status", choices=STATUSES, help="only runs with this status")
    p.add_argument("--label", action="append", metavar="KEY=VALUE",
                   help="only runs with this label, repeatable: media=Cr (a train run), media=W,Cr,C "
                        "(compare-media), backend=surrogate, dataset=digits-8x8")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("demo", help="default circuits, operating points and device curves only")
    common(p, True)
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("netlist", help="write the default 9-3-1 netlist(s) and the model libraries")
    common(p, True)
    p.add_argument("--out", default=".", help="folder that receives netlists/ and models/")
    p.set_defaults(func=cmd_netlist)

    p = sub.add_parser("simulate", help="operating-point read at given device states")
    common(p, False)
    p.add_argument("--states", help="comma-separated x in [0,1], one per device (default: seeded)")
    p.add_argument("--inputs", help="comma-separated inputs in [-1,1] (default: a '+' pattern)")
    p.add_argument("--out", help="also write the result as JSON here")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("device-curves", help="hysteresis loop and pulse response per medium (CSV+PNG)")
    common(p, True)
    p.add_argument("--out", default="out/device-curves",
                   help="folder receiving <medium>_curves.png and the CSV tables (default: out/device-curves)")
    p.set_defaults(func=cmd_device_curves)

    p = sub.add_parser("fit", help="fit M-SDC parameters to a measured I-V trace (CSV)")
    p.add_argument("--config", help="TOML file naming the preset to start from (see circuitnn/presets/*.toml)")
    p.add_argument("--medium", help="W, Cr or C: the medium of the measured device (required without --config)")
    p.add_argument("trace", help="CSV with columns time_s, voltage_V, current_A")
    p.add_argument("--r-series-ohm", type=float, default=0.0,
                   help="resistance in series with the device during the measurement")
    p.add_argument("--out", default="out/fit",
                   help="folder receiving fit_<medium>.toml/.json/.csv and fit_<medium>_iv.png (default: out/fit)")
    p.set_defaults(func=cmd_fit)
    for command_parser in sub.choices.values():
        command_parser.set_defaults(parser=command_parser)
    return parser


def _resume_hint(args, run) -> str:
    """The exact command that continues ``run`` (what the user typed, with --resume)."""
    if args.command == "calibrate":
        medium = run.info.labels.get("medium", "Cr")
        return f"calibrations do not resume; start again: circuitnn calibrate --medium {medium}"
    if args.command == "sweep":
        where = "" if args.store == DEFAULT_STORE else f" --store {args.store}"
        return f"continue with: circuitnn sweep {args.spec}{where} (finished runs are kept)"
    if args.command == "reproduce":
        where = "" if args.out == DEFAULT_OUT else f" --out {args.out}"
    else:
        where = "" if args.store == DEFAULT_STORE else f" --store {args.store}"
    return f"continue with: circuitnn {args.command} --resume {run.id}{where}"


def _interrupted(args, run) -> str:
    """One line: what the interrupted run saved, where, and how to continue it."""
    results = [rel for rel in run.files if not rel.startswith("checkpoints/")]
    if run.status == "complete":  # Ctrl-C came while its last record was written
        return (f"circuitnn: interrupted after run {run.id} completed: its {len(results)} result files are in "
                f"{run.path}; nothing to resume")
    checkpoint = run.info.latest_checkpoint
    saved = f"{len(results)} result files" + (f" and checkpoint {checkpoint!r}" if checkpoint else "")
    return f"circuitnn: interrupted; run {run.id} saved {saved} in {run.path} (status interrupted); {_resume_hint(args, run)}"


class Stopped(BaseException):
    """SIGTERM or SIGHUP, raised where the program is (like KeyboardInterrupt for SIGINT), so a run
    being written is marked failed and resumable and the workers are stopped on the way out."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum, _frame) -> None:
    raise Stopped(signum)


@contextlib.contextmanager
def _stop_signals():
    """SIGTERM and SIGHUP raise ``Stopped`` while the command runs (main thread only)."""
    previous = {}
    try:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, _raise_stopped)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _say(text: str) -> None:
    """One line on stderr; quietly nothing if stderr is gone (a closed terminal after SIGHUP)."""
    try:
        # A path or value in the message may hold line breaks of any kind (a file name can).
        print(re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", " ", text)[:2000], file=sys.stderr)
    except (OSError, ValueError):
        pass


def _stored(args, exc: BaseException) -> str:
    """What a failure's line adds when it stopped a stored run: the run, its status and how it goes on."""
    run = getattr(exc, "stored_run", None)
    if run is None:
        return ""
    if run.status == "complete":
        return f"; run {run.id} had completed ({run.path})"
    return f"; run {run.id} is stored as {run.status} in {run.path}; {_resume_hint(args, run)}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.parser.refuse_empty(args)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    # A progress bar may have the cursor mid-line: the message about an interrupt starts a line of its own.
    newline = not getattr(args, "quiet", True)
    try:
        with _stop_signals():
            if isinstance(getattr(args, "out", None), str):  # every command's output folder (simulate: file)
                _outside_runs(Path(args.out).parent if args.command == "simulate" else Path(args.out))
            if isinstance(getattr(args, "store", None), str):
                _outside_runs(Path(args.store), "--store")
            args.func(args)
    except RunInterrupted as stop:
        if newline:
            with contextlib.suppress(OSError, ValueError):
                print(file=sys.stderr)
        _say(_interrupted(args, stop.run))
        return 130
    except NgspiceNotFoundError as exc:
        _say(f"circuitnn: error: {exc}")
        return 1
    except SimulationError as exc:
        # The first line names circuit, step and cause; ngspice's own words follow with --verbose.
        _say(f"circuitnn: simulation failed: {str(exc).splitlines()[0]}{_stored(args, exc)}")
        if args.verbose and exc.output:
            with contextlib.suppress(OSError, ValueError):
                print(f"--- ngspice said ---\n{exc.output}", file=sys.stderr)
        return 1
    except (ConfigError, NetlistError, StoreError, ValueError) as exc:
        _say(f"circuitnn: error: {exc}{_stored(args, exc)}")
        return 2
    except CircuitnnError as exc:
        _say(f"circuitnn: error: {exc}{_stored(args, exc)}")
        return 1
    except BrokenPipeError:
        # stdout was closed (`circuitnn runs | head`): nothing left to say to anyone.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _say(f"circuitnn: error: {where}{exc.strerror or exc}{_stored(args, exc)}")
        return 2
    except KeyboardInterrupt:
        _say("circuitnn: interrupted (`circuitnn runs` lists what was stored; an unfinished run continues with --resume)")
        return 128 + signal.SIGINT
    except Stopped as exc:
        _say(f"circuitnn: stopped by {exc}" + (_stored(args, exc) or " (a stored run can be continued with --resume)"))
        return 128 + exc.signum
    except Exception as exc:  # noqa: BLE001 - the net behind the named errors: still one line
        # Every bad input has its named error above; this is a defect of circuitnn's, not of the input.
        _say(f"circuitnn: internal error: {type(exc).__name__}: {exc} (a bug in circuitnn; "
             f"{'the traceback follows' if args.verbose else 'run again with -v for the traceback'})")
        if args.verbose:
            with contextlib.suppress(OSError, ValueError):
                traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
