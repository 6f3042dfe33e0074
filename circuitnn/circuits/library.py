"""The SPICE model libraries in ``models/``: written from the registered device models, never by hand.

One file per model family (``msdc.lib`` holds W, Cr, C and every other M-SDC preset, ``pcm.lib``
the PCM cell, ...). Designers open them in their own tools; a test keeps the files identical to this
text, and ``circuitnn netlist --out .`` rewrites them.
"""

from __future__ import annotations

from pathlib import Path

from .. import __version__
from ..devices.base import DeviceModel, presets
from .netlist import comment, subcircuit_lines


def library_text(models: list[DeviceModel]) -> str:
    """The text of one library: a header naming its presets, then each subcircuit."""
    family = models[0].family
    first = models[0].spice_subcircuit()
    usage = " ".join(f"{key}={value:g}" for key, _, value in first.inputs)
    lines = [
        comment(f"circuitnn {__version__}: {family} device models, presets "
                + ", ".join(m.medium for m in models) + "."),
        comment("Generated from circuitnn.devices; do not edit: change the device module and run "
                "circuitnn netlist --out ."),
        comment(f"Usage: X1 top bottom {first.name} {usage}   ({first.inputs[0][0]} = stored state; "
                ".op reads it back)"),
        "",
    ]
    for model in models:
        lines += [*subcircuit_lines(model.spice_subcircuit()), ""]
    return "\n".join(lines)


def library_texts() -> dict[str, str]:
    """File name → text of every model library circuitnn ships (one per family of the registry)."""
    by_file: dict[str, list[DeviceModel]] = {}
    for model in presets().values():
        by_file.setdefault(model.library_file, []).append(model)
    return {file_name: library_text(models) for file_name, models in sorted(by_file.items())}


def write_libraries(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, text in library_texts().items():
        path = directory / file_name
        path.write_text(text)
        written.append(path)
    return written
