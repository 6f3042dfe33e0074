"""Checks every report test applies: Markdown tables that render, HTML with provenance and alt text."""

from __future__ import annotations

import re
from pathlib import Path


def _cells(line: str) -> list[str]:
    """The cells of one Markdown table row; "\\|" is a literal pipe inside a cell."""
    cells, current, escaped = [], [], False
    for char in line.strip():
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == "|":
            cells.append("".join(current))
            current = []
        else:
            current.append(char)
    cells.append("".join(current))
    return [cell.strip() for cell in cells[1:-1]]  # the row starts and ends with a pipe


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every table in ``text``: a list of rows (header, separator, body rows), each a list of cells."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(_cells(line))
        elif current:
            tables.append(current)
            current = []
    return tables


def assert_valid_markdown(text: str, min_tables: int = 1) -> list[list[list[str]]]:
    """Every table has a separator row and as many cells in every row as in its header."""
    tables = markdown_tables(text)
    assert len(tables) >= min_tables, f"expected at least {min_tables} tables, found {len(tables)}"
    for table in tables:
        header, separator, *rows = table
        assert len(separator) == len(header) and all(re.fullmatch(r":?-{3,}:?", c) for c in separator), table[:2]
        for row in rows:
            assert len(row) == len(header), f"{len(row)} cells against {len(header)} in the header:\n{header}\n{row}"
    return tables


def assert_report_folder(folder: Path, min_tables: int = 1) -> str:
    """report.md with valid tables; report.html with seed, versions and alt text on every image; every
    figure the report names exists."""
    markdown = (folder / "report.md").read_text()
    assert_valid_markdown(markdown, min_tables)
    page = (folder / "report.html").read_text()
    assert "seed" in page and "Versions:" in page and "ngspice" in page
    images = re.findall(r"<img [^>]*>", page)
    assert images and all(re.search(r"alt='[^']+'", image) for image in images), images
    for name in re.findall(r"\]\((figures/[^)]+\.png)\)", markdown):
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    return markdown
