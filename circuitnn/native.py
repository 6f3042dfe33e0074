"""Small C sources of circuitnn, built once per machine and loaded with ctypes.

Each source (plain C99 and libm, no Python headers) is compiled by ``$CC`` (else ``cc``) into a
shared library named by the source's hash and the machine's architecture, in ``$CIRCUITNN_CACHE`` or ``$XDG_CACHE_HOME/circuitnn``
or ``~/.cache/circuitnn`` (a folder only this user can write, else a per-user folder in the temp
directory): a library named by its source's hash cannot be stale, which an editable install's
extension module could be. Without a compiler the caller gets None and a warning, and runs its
Python fallback (the same results, slower). ``scripts/setup.sh`` installs gcc where nothing can
compile.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

COMPILE_TIMEOUT_S = 120
BUILDS_KEPT = 4   # per source: other checkouts of circuitnn may use older builds


def cache_base() -> str:
    """Where built libraries are kept, from this process's environment (the SPICE engine passes it to
    its workers as CIRCUITNN_CACHE: their HOME is their private folder)."""
    return os.environ.get("CIRCUITNN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "circuitnn")


def cache_folder() -> Path | None:
    """A folder for built libraries that only this user can write (None: there is none)."""
    for folder in (Path(cache_base()), Path(tempfile.gettempdir()) / f"circuitnn-{os.getuid()}"):
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            info = folder.stat()
        except OSError:
            continue
        # A library loaded from a folder another user can write would run their code.
        if info.st_uid == os.getuid() and not info.st_mode & 0o022:
            return folder
    return None


def build(source: Path, what: str, fallback: str) -> Path | None:
    """The library built from ``source`` (built now if this version has not been built yet), or
    None with a warning naming ``what`` is missing and the ``fallback`` that runs instead."""
    folder = cache_folder()
    if folder is None:
        log.warning("no private cache folder for %s: using %s", what, fallback)
        return None
    built = folder / library_name(source)
    if built.exists():
        return built
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        log.warning("no C compiler (cc) for %s: using %s (scripts/setup.sh installs gcc)", what, fallback)
        return None
    # Processes starting together: one builds, the others wait for it and load what it built.
    with open(folder / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return built if built.exists() else _compile(compiler, source, built, what, fallback)


def library_name(source: Path) -> str:
    """The built library's file name: the source's name, the machine's architecture (a home folder
    shared between machines holds each one's build) and the source's hash."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    return f"{source.stem}-{platform.machine() or 'unknown'}-{digest}.so"


def _compile(compiler: str, source: Path, built: Path, what: str, fallback: str) -> Path | None:
    # Built under a unique name, then renamed: nobody ever loads half a file.
    handle, partial = tempfile.mkstemp(suffix=".so", dir=built.parent)
    os.close(handle)
    try:
        # -ffp-contract=off: no fused multiply-add, so the arithmetic is Python's (NumPy's), bit for bit.
        done = subprocess.run([compiler, "-O2", "-std=c99", "-D_POSIX_C_SOURCE=199309L", "-fPIC", "-shared",
                               "-ffp-contract=off", "-o", partial, str(source), "-lm"],
                              capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            log.warning("building %s failed (%s): using %s", what, last, fallback)
            return None
        os.replace(partial, built)
        for old in sorted(built.parent.glob(f"{source.stem}-*.so"), key=lambda f: f.stat().st_mtime)[:-BUILDS_KEPT]:
            old.unlink(missing_ok=True)
        return built
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("building %s failed (%s): using %s", what, exc, fallback)
        return None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
