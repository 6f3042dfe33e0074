"""A function computed in a second Python process while this one drives ngspice.

A reproduction's noise heat-map needs one trained software network and its circuit mapping per
training-noise level (~0.25 s each), and none of it needs the simulator. Computed when the part
starts, they sit on the critical path between simulations (~2 s of a ~22 s compare-media). Started
with the run in a child process, they use the core ngspice leaves free: the experiment's process
sleeps while its worker solves.

The child is a fresh interpreter (``python -m circuitnn.experiments.background``), not a fork: the
experiment's process holds sockets to its ngspice workers and may run threads (Dask, tqdm), and a
fresh interpreter runs nothing of the user's script. It reads a pickled (function, arguments) on
stdin and writes the pickled result on stdout. The result is what computing it here gives: the same
seeded code on the same inputs (``tests/test_background.py``). It starts with ``-P``: the current
folder (another checkout, a stray ``numpy.py``) is not on its import path, so it imports the very
circuitnn this process runs. When the child fails for any reason (killed, out of memory, a bug),
``result()`` logs why and computes the function here, so an error is raised where it would have
been raised without the child. A parent killed outright (SIGKILL, SIGTERM) leaves the child to
finish its function (seconds) and exit when it cannot write the answer.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

# Longer than any function sent here takes; a child still running then is killed and the function
# computed in this process.
RESULT_TIMEOUT_S = 600.0


class InBackground:
    """``function(*args)`` started now in a child process; ``result()`` waits for it. ``function``
    must be importable by name (a module-level function of circuitnn) and its arguments picklable.
    Use as a context manager, or ``close()``: the child is killed if it is still running."""

    def __init__(self, function: Callable, *args):
        self.function, self.args = function, args
        self._value: tuple | None = None   # (the value,) once known
        package_parent = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
        try:
            request = pickle.dumps((function, args), protocol=pickle.HIGHEST_PROTOCOL)
            self._process: subprocess.Popen | None = subprocess.Popen(
                [sys.executable, "-P", "-m", "circuitnn.experiments.background"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        except (OSError, pickle.PicklingError, AttributeError, TypeError) as exc:
            log.info("computing %s here: no child process (%s)", _name(function), exc)
            self._process = None
            return
        try:
            # A request is a config and a few numbers: far below a pipe's buffer, this cannot block.
            self._process.stdin.write(request)
            self._process.stdin.close()
            self._process.stdin = None   # communicate() would flush it again
        except OSError:
            self.close()

    def result(self):
        """The function's value: the child's, or computed here if the child did not give one."""
        if self._value is None:
            self._value = self._from_child() or (self.function(*self.args),)
        return self._value[0]

    def _from_child(self) -> tuple | None:
        process = self._process
        if process is None:
            return None
        try:
            out, err = process.communicate(timeout=RESULT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.close()
            log.warning("computing %s here: its child gave no answer within %g s", _name(self.function),
                        RESULT_TIMEOUT_S)
            return None
        # (Interrupted above, the child stays known: close() kills it.)
        self._process = None
        if process.returncode == 0:
            try:
                return (pickle.loads(out),)
            except Exception as exc:  # noqa: BLE001 - a garbled answer: compute it here instead
                err = f"unreadable answer: {exc}".encode()
        lines = err.decode(errors="replace").strip().splitlines()
        log.warning("computing %s here: its child failed (exit code %s): %s", _name(self.function),
                    process.returncode, lines[-1] if lines else "no message")
        return None

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        if process is not None:
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()

    def __enter__(self) -> InBackground:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _name(function: Callable) -> str:
    return getattr(function, "__qualname__", repr(function))


def _child() -> None:
    # Ctrl-C reaches the whole process group; the parent decides what it means (it kills this).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    function, args = pickle.loads(sys.stdin.buffer.read())
    value = function(*args)
    sys.stdout.buffer.write(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    _child()
