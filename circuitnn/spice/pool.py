"""Running ngspice workers kept for the next chip.

Starting a worker (a Python interpreter and libngspice) takes ~0.12 s on this machine: more than a
whole write-verify of one device. A reproduction opens a chip for every part and every heat-map row,
two workers each, so a chip hands its engines back here when it closes and the next chip takes
them. The taker must ``load`` its own circuit before anything runs (an engine comes back unloaded),
and a load replaces everything the worker held: nothing of one chip reaches the next.
"""

from __future__ import annotations

import atexit
import threading

from .engine import SpiceEngine

# Idle workers kept: two chips' worth (programming path and array). More are stopped.
KEEP_IDLE = 4

_idle: list[SpiceEngine] = []
_lock = threading.Lock()


def take(timeout_s: float = 300.0) -> SpiceEngine:
    """A running engine with no circuit loaded: an idle one if there is one, else a new one."""
    while True:
        with _lock:
            engine = _idle.pop() if _idle else None
        if engine is None:
            return SpiceEngine(timeout_s=timeout_s)
        if engine.alive():
            engine.set_timeout(timeout_s)
            return engine
        engine.close()


def give_back(engine: SpiceEngine) -> None:
    """Keep ``engine`` for the next ``take`` (unloaded), or stop it when enough are idle or its
    worker is gone."""
    engine.unload()
    with _lock:
        keep = engine.alive() and len(_idle) < KEEP_IDLE and engine not in _idle
        if keep:
            _idle.append(engine)
    if not keep:
        engine.close()


def stop_idle() -> None:
    """Stop every idle worker (at exit, and for tests that count processes)."""
    with _lock:
        engines = list(_idle)
        _idle.clear()
    for engine in engines:
        engine.close()


atexit.register(stop_idle)
