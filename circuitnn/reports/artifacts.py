"""Files a person opens: example netlists and model libraries, device-curve CSV/PNG, the demo files.

Nothing here simulates: the curves and operating points come from ``experiments/``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..circuits.crossbar import Crossbar
from ..circuits.default import EXAMPLE_INPUT, example_states
from ..circuits.library import write_libraries
from ..devices.fit import current_unit
from ..experiments.config import Config
from ..experiments.device_curves import DeviceCurves
from .document import legend_below, pyplot, side_by_side


def default_netlist_texts(configs: list[Config]) -> dict[str, str]:
    """File name → text of the example 9-3-1 netlist of each config (models included by path)."""
    texts = {}
    for config in configs:
        crossbar = Crossbar(config.crossbar_spec())
        states = example_states(crossbar.n_devices, config.seed)
        texts[f"{crossbar.spec.name}.cir"] = crossbar.netlist(states, EXAMPLE_INPUT, models="../models")
    return texts


def write_default_netlists(root: Path, configs: list[Config]) -> list[Path]:
    """``root/netlists/*.cir`` beside ``root/models/*.lib`` so the relative includes resolve."""
    written = write_libraries(root / "models")
    (root / "netlists").mkdir(parents=True, exist_ok=True)
    for file_name, text in default_netlist_texts(configs).items():
        path = root / "netlists" / file_name
        path.write_text(text)
        written.append(path)
    return written


def write_table(path: Path, columns: dict[str, np.ndarray]) -> Path:
    """A CSV with a header row; columns must be equally long."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.column_stack([np.asarray(v, dtype=float) for v in columns.values()])
    np.savetxt(path, data, delimiter=",", header=",".join(columns), comments="", fmt="%.10g")
    return path


def _duration(seconds: float) -> str:
    """A pulse width in µs, or in ns below a microsecond (PCM pulses are tens of ns)."""
    return f"{seconds * 1e6:g} µs" if seconds >= 1e-6 else f"{seconds * 1e9:g} ns"


def device_curves_figure(curves: DeviceCurves, config: Config):
    """Hysteresis loop (left) and pulse response (right) of one medium, SPICE beside the NumPy model."""
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    h = curves.hysteresis
    # The unit from the data: the C medium peaks at 0.04 mA, which reads better as 40 µA.
    scale, unit = current_unit(np.concatenate([h["current_A"], h["current_numpy_A"]]))
    # SPICE wide and pale under the NumPy model's dashes: where they agree, both stay visible.
    left.plot(h["voltage_V"], h["current_A"] * scale, lw=3.5, alpha=0.45, label="SPICE")
    left.plot(h["voltage_V"], h["current_numpy_A"] * scale, "--", lw=1.3, label="NumPy model")
    left.set(xlabel="voltage (V)", ylabel=f"current ({unit})",
             title=f"{curves.medium}: ±{config.curves.sweep_amplitude_V:g} V, "
                   f"{config.curves.sweep_frequency_Hz:g} Hz sine sweep")
    pl = curves.pulses
    # The two models often agree to the pixel (saturated states): each is drawn a little to the side
    # of its pulse number.
    offsets = side_by_side(pl["pulse"], 2, share=0.6)
    right.plot(pl["pulse"] + offsets[0], pl["state_spice"], "o-", ms=3, label="SPICE")
    right.plot(pl["pulse"] + offsets[1], pl["state_numpy"], "x--", ms=4, label="NumPy model")
    set_pulse, reset_pulse = config.set_pulse(), config.reset_pulse()
    right.set(xlabel=f"pulse number ({config.curves.pulses} SET, then {config.curves.pulses} RESET; "
                     "models drawn side by side)",
              ylabel="state x (0 = off, 1 = on)",
              title=f"{curves.medium}: SET {set_pulse.amplitude_V:+g} V × {_duration(set_pulse.width_s)} / "
                    f"RESET {reset_pulse.amplitude_V:+g} V × {_duration(reset_pulse.width_s)}")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    # Below the panels: a loop and a SET/RESET staircase leave no corner inside reliably empty.
    legend_below(figure, *right.get_legend_handles_labels(), ncols=2)
    return figure


def write_device_curves(out: Path, curves_list: list[DeviceCurves], configs: list[Config]) -> list[Path]:
    """Hysteresis loop and pulse response of each medium (computed by ``experiments.device_curves``):
    CSV and PNG per medium."""
    plt = pyplot()
    written = []
    for curves, config in zip(curves_list, configs):
        stem = out / f"{curves.medium}"
        written.append(write_table(stem.with_name(f"{curves.medium}_hysteresis.csv"), curves.hysteresis))
        written.append(write_table(stem.with_name(f"{curves.medium}_pulses.csv"), curves.pulses))
        figure = device_curves_figure(curves, config)
        png = out / f"{curves.medium}_curves.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(png, dpi=110)
        plt.close(figure)
        written.append(png)
    return written


def write_demo(out: Path, configs: list[Config], points: dict, curves_list: list[DeviceCurves]) -> list[Path]:
    """The main job's demo files: example netlists and model libraries, device curves, operating points."""
    written = write_default_netlists(out, configs)
    written += write_device_curves(out / "device-curves", curves_list, configs)
    path = out / "operating_points.json"
    path.write_text(json.dumps(points, indent=2, default=str) + "\n")
    written.append(path)
    return written
