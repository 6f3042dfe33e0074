"""Imports run one way down: devices → circuits → spice | surrogate → chip → training | networks →
experiments | store → reports → cli. A module may import its own package, the layers below it, and
the shared bottom (errors, validation, data, the package's version); never a layer above it or a
sibling beside it. Every import counts, including the ones inside functions."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "circuitnn"

# Rank of each top-level part; equal ranks are siblings that must not import each other.
RANKS = {
    "__init__": 0, "errors": 0, "validation": 0, "data": 0, "presets": 0, "native": 0,
    "devices": 1,
    "circuits": 2,
    "spice": 3, "surrogate": 3,
    "interop": 4, "chip": 4,
    "training": 5, "networks": 5,
    "experiments": 6, "store": 6,
    "reports": 7,
    "cli": 8, "api": 8,
}
# Allowed across equal ranks (documented exceptions): the experiments record runs in the store.
SIBLINGS_ALLOWED = {("experiments", "store"), ("networks", "training")}


def _part(module: str) -> str:
    """'circuitnn.chip.protocol' → 'chip'; 'circuitnn' and names defined in it → '__init__'."""
    pieces = module.split(".")
    if len(pieces) == 1:
        return "__init__"
    exists = (PACKAGE / pieces[1]).is_dir() or (PACKAGE / f"{pieces[1]}.py").exists()
    return pieces[1] if exists else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in ``path``."""
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    package = list(relative.parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("circuitnn")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                if not node.module:  # "from . import x": x is a module of that package
                    found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
                    continue
            else:
                module = node.module or ""
            if module.startswith("circuitnn"):
                found.append((node.lineno, module))
    return found


def _violations() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = _part(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        if own not in RANKS:
            problems.append(f"{path.relative_to(PACKAGE.parent)}: part {own!r} has no rank in test_layering.RANKS")
            continue
        for line, module in _imports(path):
            other = _part(module)
            if other == own or module == "circuitnn":
                continue
            if other not in RANKS:
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports unknown part {module}")
            elif RANKS[other] > RANKS[own] or (RANKS[other] == RANKS[own] and RANKS[own] > 0
                                                 and (own, other) not in SIBLINGS_ALLOWED):
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {own} (rank {RANKS[own]}) "
                                f"imports {module} (rank {RANKS[other]})")
    return problems


def test_no_module_imports_upward_or_sideways():
    problems = _violations()
    assert not problems, "imports against the layering:\n" + "\n".join(problems)


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    # A module of devices/ that imports the chip must be reported (the checker is not vacuous).
    fake = tmp_path / "circuitnn"
    for part in ("devices", "chip"):
        (fake / part).mkdir(parents=True)
        (fake / part / "__init__.py").write_text("")
    (fake / "devices" / "bad.py").write_text("def f():\n    from ..chip.protocol import Chip\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    problems = _violations()
    assert len(problems) == 1 and "devices (rank 1) imports circuitnn.chip.protocol" in problems[0]


@pytest.mark.parametrize("part", sorted(p for p in RANKS if (PACKAGE / p).is_dir()))
def test_every_package_has_a_rank(part):
    assert (PACKAGE / part / "__init__.py").exists()


def test_the_public_api_resolves_from_the_package_root():
    import circuitnn

    for name, where in circuitnn.PUBLIC_API.items():
        module, _, attribute = where.partition(":")
        assert getattr(circuitnn, name) is getattr(importlib.import_module(module), attribute or name)
    with pytest.raises(AttributeError):
        circuitnn.NoSuchThing  # noqa: B018


def test_importing_the_package_loads_no_layer():
    import subprocess
    import sys

    code = "import sys, circuitnn; print(sorted(m for m in sys.modules if m.startswith('circuitnn.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
