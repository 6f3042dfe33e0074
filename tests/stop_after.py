"""Interrupting a stored reproduction at a chosen checkpoint, as Ctrl-C would (shared by tests)."""

import contextlib

from circuitnn.experiments import reproduction


@contextlib.contextmanager
def interrupted_after(checkpoints: int, monkeypatch):
    """Ctrl-C (a KeyboardInterrupt) right after the ``checkpoints``-th checkpoint of a reproduction's
    training (one per device for write-verify)."""
    original = reproduction.onchip.train_with
    calls = {"n": 0}

    def interrupted(config, chip, task, trainer, variant, resume=None, checkpoint=None, **kwargs):
        def stop(state):
            checkpoint(state)
            calls["n"] += 1
            if calls["n"] == checkpoints:
                raise KeyboardInterrupt("simulated ^C")
        return original(config, chip, task, trainer, variant, resume, stop, **kwargs)

    monkeypatch.setattr(reproduction.onchip, "train_with", interrupted)
    try:
        yield
    finally:
        monkeypatch.setattr(reproduction.onchip, "train_with", original)
