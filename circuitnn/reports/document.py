"""One report format for every run kind: tables (CSV), figures (PNG), Markdown and HTML.

A builder (``onchip_report``, ``networks_report``, ``crosscheck_report``, ``calibration_report``)
reads a stored run and returns a ``Report``; this module renders it, into the run itself when the
run finishes, or into any folder later (``circuitnn report``). Nothing here simulates.

Table headers carry their unit ("training time (s)", "accuracy (%)"); cells are numbers, text or
booleans, rendered with four significant digits. Markdown cells escape "|" so every row has as many
cells as the header.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..store import Run, StoreError
from ..store.runs import holder_text, writer_of


class ReportError(StoreError):
    """A stored run cannot be reported (unknown kind, or the files a report needs are not there yet);
    the message says why in one line."""


@dataclass
class Report:
    run_id: str
    title: str
    header: list[str] = field(default_factory=list)          # sentences under the title
    tables: dict[str, list[dict]] = field(default_factory=dict)  # name → rows (header label → value)
    captions: dict[str, str] = field(default_factory=dict)   # table or figure name → one sentence
    figures: dict[str, object] = field(default_factory=dict)  # file name → matplotlib Figure
    notes: list[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)              # what the run's record keeps (run.complete)


def provenance(run: Run) -> list[str]:
    """The header lines every report carries: kind, creation time, seed, versions."""
    info = run.info
    lines = [f"Run `{info.id}`: kind {info.kind}, created {info.created} (UTC), seed {info.seed}."]
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in info.versions.items()) + ".")
    return lines


def resume_command(run: Run) -> str:
    """The command that continues an unfinished run of a resumable kind."""
    return f"circuitnn {run.info.kind} --resume {run.id} --store {run.path.parent}"


def unfinished(run: Run) -> bool:
    """True for a run that has not completed, unless this very process is writing it: an experiment
    writes its report into the run as its last step, just before completing it, and that report
    must be the one ``circuitnn report`` rebuilds from the complete run (not a note that it is
    incomplete)."""
    return run.status != "complete" and not run.writable


def _writer(run: Run) -> int | bool | None:
    """The process writing ``run`` now (its PID, or None if unknown), or False if none is."""
    if run.status != "running" or run.writable:
        return False
    return writer_of(run.path)


def how_to_continue(run: Run) -> str:
    """'resume it with `<command>`' for an unfinished run, or, while another process writes it, who
    does (a resume would be refused by the run's lock)."""
    writer = _writer(run)
    if writer is not False:
        return f"{holder_text(writer)} is writing it now; report it again when that ends"
    return f"resume it with `{resume_command(run)}`"


def incomplete_run(run: Run, stored: str) -> str:
    """The header line of a report on an unfinished run: its status, what it ``stored``, and the
    command that continues it (or the process writing it now)."""
    writer = _writer(run)
    if writer is not False:
        return f"Incomplete run ({run.status}): {stored}. Being written by {holder_text(writer)}."
    return f"Incomplete run ({run.status}): {stored}. Resume with `{resume_command(run)}`."


def without_float_noise(value: float, decimals: int = 9) -> float:
    """A difference of stored values without its last-bit noise (−2.2e-16 → 0.0), for quantities whose
    resolution is far coarser than 1e-9 (accuracies, percentages)."""
    return round(float(value), decimals) + 0.0  # + 0.0 turns −0.0 into 0.0


# -- rendering ---------------------------------------------------------------------------------------
def cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.4g}"
    return str(value)


def columns_of(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row))


def _markdown_cell(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: list[dict]) -> list[str]:
    columns = columns_of(rows)
    lines = ["| " + " | ".join(_markdown_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_markdown_cell(cell_text(row.get(c))) for c in columns) + " |" for row in rows]
    return lines


def _heading(name: str) -> str:
    return name.replace("_", " ").capitalize()


def markdown(report: Report) -> str:
    lines = [f"# {report.title}", ""] + [f"{line}  " for line in report.header] + [""]
    for name, rows in report.tables.items():
        lines += [f"## {_heading(name)}", ""]
        if name in report.captions:
            lines += [report.captions[name], ""]
        lines += markdown_table(rows) + ["", f"(CSV: tables/{name}.csv)", ""]
    for name in report.figures:
        alt = report.captions.get(name, name)
        lines += [f"![{_markdown_cell(alt).replace(']', ')')}](figures/{name})", ""]
    if report.notes:
        lines += ["## Notes", ""] + [f"* {note}" for note in report.notes] + [""]
    return "\n".join(lines)


def html_page(report: Report) -> str:
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(report.title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:3px 6px;font-size:13px}</style></head><body>",
             f"<h1>{html.escape(report.title)}</h1>"]
    parts += [f"<p>{html.escape(line.replace('`', ''))}</p>" for line in report.header]
    for name, rows in report.tables.items():
        columns = columns_of(rows)
        parts.append(f"<h2>{html.escape(_heading(name))}</h2>")
        if name in report.captions:
            parts.append(f"<p>{html.escape(report.captions[name])}</p>")
        parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{html.escape(cell_text(row.get(c)))}</td>" for c in columns)
                         + "</tr>")
        parts.append(f"</table><p>CSV: <a href='tables/{html.escape(name)}.csv'>tables/{html.escape(name)}.csv</a></p>")
    for name in report.figures:
        alt = report.captions.get(name, name)
        parts.append(f"<figure><img src='figures/{html.escape(name)}' alt='{html.escape(alt, quote=True)}' "
                     f"style='max-width:100%'><figcaption>{html.escape(alt)}</figcaption></figure>")
    if report.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in report.notes) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def table_csv(rows: list[dict]) -> str:
    import csv

    columns = columns_of(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([cell_text(row.get(c)) for c in columns] for row in rows)
    return buffer.getvalue()


def render(report: Report, write_text: Callable[[str, str], object],
           write_figure: Callable[[str, object], object]) -> None:
    for name, rows in report.tables.items():
        write_text(f"tables/{name}.csv", table_csv(rows))
    for name, figure in report.figures.items():
        write_figure(f"figures/{name}", figure)
    write_text("report.md", markdown(report))
    write_text("report.html", html_page(report))


def close_figures(report: Report) -> None:
    import matplotlib.pyplot as plt

    for figure in report.figures.values():
        plt.close(figure)


def write_into_run(run: Run, report: Report) -> dict:
    """Render ``report`` into the (running) run it was built from; returns its summary."""
    try:
        render(report, run.write_text, lambda rel, fig: run.save_figure(rel, fig))
    finally:
        close_figures(report)
    return report.summary


def write_to_folder(report: Report, out: Path) -> list[Path]:
    """Render ``report`` into ``out`` (created if needed); returns the paths written."""
    written = []

    def text(rel: str, content: str) -> None:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        written.append(path)

    def figure(rel: str, fig) -> None:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=150)
        path.write_bytes(buffer.getvalue())
        written.append(path)

    try:
        render(report, text, figure)
    finally:
        close_figures(report)
    return written


def pyplot():
    """matplotlib's pyplot on the Agg backend (reports never open a window)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def side_by_side(positions, n_series: int, share: float = 0.36, at_most: float = 0.03):
    """Sideways offsets, in the axis' units, of ``n_series`` series drawn at the same ``positions``
    (centred on each): equal values would otherwise draw one marker exactly on another. The group
    takes ``share`` of the smallest gap between positions, and a series at most ``at_most`` of the
    axis' span (a marker's width, not more: the points stay beside their own value)."""
    import numpy as np

    distinct = np.unique(np.asarray(positions, dtype=float))
    span = float(distinct[-1] - distinct[0]) if len(distinct) > 1 else 1.0
    gap = float(np.min(np.diff(distinct))) if len(distinct) > 1 else span
    step = min(at_most * span, share * gap / max(n_series, 1))
    return (np.arange(n_series) - (n_series - 1) / 2) * step


def legend_entries(axes) -> tuple[list, list[str]]:
    """(handles, labels) of every series in ``axes``, each label once (panels repeat their series)."""
    entries = {label: handle for ax in axes for handle, label in zip(*ax.get_legend_handles_labels())}
    return list(entries.values()), list(entries)


def legend_below(figure, handles, labels, ncols: int | None = None, fontsize: float = 9) -> None:
    """The figure's legend under its panels, with room made for it (constrained layout): inside an
    axes it would lie on whichever data happen to fill that corner."""
    figure.set_layout_engine("constrained")
    figure.legend(handles, labels, loc="outside lower center", ncols=ncols or max(min(len(labels), 4), 1),
                  fontsize=fontsize, frameon=False)
