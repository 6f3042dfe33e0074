"""The ``circuitnn`` command: a thin layer over the library; every command is one library call.

Exit status: 0 done, 2 bad input (config, parameters, files, folders), 1 simulation failure or
missing ngspice, 128 + N stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP). Every failure is
one line on stderr; a stopped run is left resumable (``--resume``).
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
from pathlib import Path

import numpy as np

from .errors import CircuitnnError, ConfigError, NetlistError, NgspiceNotFoundError, SimulationError
from .store import StoreError


def _config(args):
    from .config import load_config

    return load_config(getattr(args, "config", None), getattr(args, "medium", None))


def _media(args) -> list[str]:
    from .devices.media import MEDIA, medium

    if getattr(args, "medium", None) in (None, "all"):
        return list(MEDIA)
    return [medium(args.medium).medium]


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


def cmd_netlist(args) -> None:
    from .reports.artifacts import write_default_netlists

    for path in write_default_netlists(Path(args.out), _media_configs(args)):
        print(path)


def _media_configs(args):
    from .config import load_config

    return [load_config(args.config, name) for name in _media(args)]


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
    from .reports.artifacts import write_device_curves

    for path in write_device_curves(Path(args.out), _media_configs(args)):
        print(path)


def cmd_fit(args) -> None:
    from .devices.fit import fit_msdc, load_trace_csv, write_fit_report

    config = _config(args)
    t, v, i = load_trace_csv(Path(args.trace))
    result = fit_msdc(t, v, i, config.device.params(), r_series_ohm=args.r_series_ohm, source=args.trace)
    for path in write_fit_report(result, Path(args.out)):
        print(path)
    print(json.dumps({"relative_rms_error": result.relative_rms_error,
                      "parameters": result.values}, indent=2, default=float))


def cmd_demo(args) -> None:
    from .reports.artifacts import run_demo

    for path in run_demo(Path(args.out), _media_configs(args)):
        print(path)


def _store(args):
    from .store import RunStore

    return RunStore(Path(args.store))


def _check_resume(store, args, kinds: tuple[str, ...]) -> None:
    """``--resume`` names a run this command wrote: another kind's plan would not be understood."""
    if getattr(args, "resume", None):
        kind = store.open(args.resume).info.kind
        if kind not in kinds:
            raise ConfigError("--resume", args.resume, f"a {' or '.join(kinds)} run; this one is a {kind!r} "
                              f"run (resume it with the command that started it)")


def cmd_onchip(args) -> None:
    """``train`` (one medium) and ``compare-media`` (all, with the noise heat-map)."""
    from .experiments.reproduction import run_reproduction

    one_medium = args.command == "train"
    configs = [_config(args)] if one_medium else _media_configs(args)
    heatmap_medium = None
    if not one_medium and args.heatmap_medium:
        from .config import _medium_name

        heatmap_medium = _medium_name(args.heatmap_medium, "--heatmap-medium")
        media = [config.device.medium for config in configs]
        if heatmap_medium not in media:
            raise ConfigError("--heatmap-medium", args.heatmap_medium, "one of the media run: " + ", ".join(media))
    store = _store(args)
    _check_resume(store, args, ("train", "compare-media"))
    calibration = None
    if args.calibration:
        from .experiments.calibration import load_calibration

        calibration = load_calibration(store, args.calibration)
    run = run_reproduction(store, configs, args.command,
                           heatmap_medium=heatmap_medium,
                           resume=args.resume, progress=not args.quiet, backend=args.backend,
                           calibration=calibration)
    print(f"run {run.id}: {run.path / 'report.md'}")


def cmd_calibrate(args) -> None:
    from .experiments.calibration import run_calibration

    run = run_calibration(_store(args), _config(args), progress=not args.quiet)
    print(run.read_text("errors.csv"))
    print(f"calibration {run.id}: {run.path} (use with --backend surrogate --calibration {run.id})")


def cmd_crosscheck(args) -> None:
    from .experiments.crosscheck import run_crosscheck

    store = _store(args)
    _check_resume(store, args, ("crosscheck",))
    calibration = None
    if args.calibration:
        from .experiments.calibration import load_calibration

        calibration = load_calibration(store, args.calibration)
    modes = {"both": (False, True), "noreset": (False,), "reset": (True,)}[args.modes]
    run = run_crosscheck(store, _media_configs(args), seeds=args.seeds, reset_modes=modes,
                         calibration=calibration, resume=args.resume, progress=not args.quiet)
    print(run.read_text("report.md"))
    print(f"cross-check {run.id}: {run.path}")


def cmd_networks(args) -> None:
    from .experiments.networks import run_networks
    from .validation import check_range

    check_range("--seed", args.seed, 0, 2**32 - 1, True)
    _check_resume(_store(args), args, ("networks",))

    run = run_networks(_store(args), args.mnist, seed=args.seed, epochs=args.epochs,
                       max_examples=args.max_examples, weight_noise=args.weight_noise,
                       repeats=args.repeats, kinds=tuple(args.network or ("mlp", "cnn")),
                       progress=not args.quiet,
                       line_resistances_ohm=() if args.no_wires else tuple(args.line_resistances),
                       resume=args.resume)
    print(run.read_text("report.md"))
    print(f"run {run.id}: {run.path}")


def cmd_report(args) -> None:
    from .reports.onchip_report import write_report_to
    from .store import CorruptRunError

    store = _store(args)
    for run_id in args.runs:
        run = store.open(run_id)
        if run.info.kind not in ("train", "compare-media"):
            raise ConfigError("RUN_ID", run_id, f"a train or compare-media run; this is a {run.info.kind!r} run, "
                              f"whose results are in {run.path}")
        out = Path(args.out) / run_id
        try:
            write_report_to(run, out)
        except CircuitnnError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            # The named checks of the report cover the files it reads; this is the net behind them.
            raise CorruptRunError(run.path, f"the report cannot be built from its files "
                                  f"({type(exc).__name__}: {str(exc)[:120]})") from None
        print(out / "report.md")


def cmd_runs(args) -> None:
    from .store import format_run_table

    labels = {}
    for item in args.label or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError("--label", item, "KEY=VALUE, e.g. media=Cr")
        labels[key] = value
    listing = _store(args).list(kind=args.kind, status=args.status, labels=labels or None)
    print(format_run_table(listing, listing.skipped))


def cmd_reproduce(args) -> None:
    """The main job: device curves and example netlists, then the compare-media reproduction."""
    from .experiments.reproduction import run_reproduction
    from .reports.artifacts import run_demo
    from .reports.onchip_report import write_report_to
    from .store import RunStore

    out = Path(args.out)
    configs = _media_configs(args)
    for path in run_demo(out, configs):
        print(path)
    run = run_reproduction(RunStore(out / "runs"), configs, "compare-media", heatmap_medium="Cr",
                           progress=not args.quiet)
    for path in write_report_to(run, out / "report"):
        print(path)


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad option reported like every other bad input: one line, exit 2
    (``circuitnn <command> -h`` shows the usage)."""

    def error(self, message: str):
        _say(f"{self.prog}: error: {message} (see {self.prog} -h)")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="circuitnn", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log engine restarts and progress")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, all_media: bool):
        p.add_argument("--config", help="TOML file (see circuitnn/presets/*.toml)")
        p.add_argument("--medium", default="all" if all_media else None,
                       help="W, Cr or C" + (" or all (default)" if all_media else " (default: Cr)"))

    p = sub.add_parser("reproduce", help="the main job: device curves, example netlists and the whole "
                                         "on-chip training reproduction for every medium")
    common(p, True)
    p.add_argument("--out", default="out", help="output folder (default: out)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_reproduce)

    def run_options(p, all_media: bool):
        common(p, all_media)
        p.add_argument("--store", default="runs", help="folder of stored runs (default: runs)")
        p.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        p.add_argument("--backend", choices=("spice", "surrogate"), default="spice",
                       help="simulate in ngspice (default) or on the calibrated NumPy surrogate")
        p.add_argument("--calibration", metavar="RUN_ID", help="surrogate calibration run (circuitnn calibrate)")

    p = sub.add_parser("calibrate", help="fit the surrogate to SPICE for one medium; store errors and parity plots")
    common(p, False)
    p.add_argument("--store", default="runs")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("crosscheck", help="the reproduction on SPICE and on the surrogate over seeds: "
                                          "agreement of accuracy, time and energy, and where runs diverge")
    common(p, True)
    p.add_argument("--seeds", type=int, default=4, help="seeds per medium and mode (default 4)")
    p.add_argument("--modes", choices=("both", "noreset", "reset"), default="both",
                   help="with and/or without the initial reset pulse (default both)")
    p.add_argument("--calibration", metavar="RUN_ID", help="surrogate calibration run (circuitnn calibrate)")
    p.add_argument("--store", default="runs")
    p.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted cross-check")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_crosscheck)

    p = sub.add_parser("networks", help="MLP and CNN on crossbar tiles: accuracy with and without "
                                        "M-SDC and PCM device effects")
    p.add_argument("--mnist", help="folder with MNIST IDX files (default: scikit-learn's 8x8 digits)")
    p.add_argument("--network", action="append", choices=("mlp", "cnn"), help="repeatable; default both")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-examples", type=int, default=10_000)
    p.add_argument("--weight-noise", type=float, default=0.1, help="sigma of hardware-aware training")
    p.add_argument("--repeats", type=int, default=3, help="programming draws per evaluation")
    p.add_argument("--line-resistances", type=float, nargs="+", default=[0.0, 1.0, 2.0], metavar="OHM",
                   help="wire sweep: line resistance per crosspoint segment (default 0 1 2)")
    p.add_argument("--no-wires", action="store_true", help="skip the wire sweep")
    p.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run (its own settings)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--store", default="runs")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_networks)

    p = sub.add_parser("train", help="on-chip training in SPICE for one medium, with and without reset")
    run_options(p, False)
    p.set_defaults(func=cmd_onchip)

    p = sub.add_parser("compare-media", help="on-chip training of every medium, sweeps and heat-map")
    run_options(p, True)
    p.add_argument("--heatmap-medium", default="Cr", help="medium of the noise heat-map (default: Cr)")
    p.set_defaults(func=cmd_onchip)

    p = sub.add_parser("report", help="regenerate reports from stored runs (no simulation)")
    p.add_argument("runs", nargs="+", metavar="RUN_ID")
    p.add_argument("--store", default="runs")
    p.add_argument("--out", default="reports", help="folder receiving <RUN_ID>/report.md etc.")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("runs", help="list stored runs")
    p.add_argument("--store", default="runs")
    p.add_argument("--kind")
    p.add_argument("--status", choices=("running", "complete", "failed"))
    p.add_argument("--label", action="append", metavar="KEY=VALUE", help="e.g. media=Cr")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("demo", help="default circuits, operating points and device curves only")
    common(p, True)
    p.add_argument("--out", default="out", help="output folder (default: out)")
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
    p.add_argument("--out", default="out/device-curves")
    p.set_defaults(func=cmd_device_curves)

    p = sub.add_parser("fit", help="fit M-SDC parameters to a measured I-V trace (CSV)")
    common(p, False)
    p.add_argument("trace", help="CSV with columns time_s, voltage_V, current_A")
    p.add_argument("--r-series-ohm", type=float, default=0.0,
                   help="resistance in series with the device during the measurement")
    p.add_argument("--out", default="out/fit")
    p.set_defaults(func=cmd_fit)
    return parser


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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        with _stop_signals():
            args.func(args)
    except NgspiceNotFoundError as exc:
        _say(f"circuitnn: error: {exc}")
        return 1
    except SimulationError as exc:
        # The first line names circuit, step and cause; ngspice's own words follow with --verbose.
        _say(f"circuitnn: simulation failed: {str(exc).splitlines()[0]}")
        if args.verbose and exc.output:
            with contextlib.suppress(OSError, ValueError):
                print(f"--- ngspice said ---\n{exc.output}", file=sys.stderr)
        return 1
    except (ConfigError, NetlistError, StoreError, ValueError) as exc:
        _say(f"circuitnn: error: {exc}")
        return 2
    except CircuitnnError as exc:
        _say(f"circuitnn: error: {exc}")
        return 1
    except BrokenPipeError:
        # stdout was closed (`circuitnn runs | head`): nothing left to say to anyone.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _say(f"circuitnn: error: {where}{exc.strerror or exc}")
        return 2
    except KeyboardInterrupt:
        _say("circuitnn: interrupted (a stored run can be continued with --resume)")
        return 128 + signal.SIGINT
    except Stopped as exc:
        _say(f"circuitnn: stopped by {exc} (a stored run can be continued with --resume)")
        return 128 + exc.signum
    return 0


if __name__ == "__main__":
    sys.exit(main())
