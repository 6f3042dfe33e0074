"""Shared fixtures. SPICE tests run the real ngspice; in CI a missing ngspice is a failure."""

from __future__ import annotations

import signal

import pytest

from circuitnn.spice.engine import SpiceEngine


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_raises_keyboard_interrupt():
    """Tests that send themselves SIGINT expect Python's KeyboardInterrupt. A process started in the
    background by a non-interactive shell (or a CI harness) inherits SIGINT ignored, and Python then
    installs no handler of its own: put it back for the session."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="session")
def engine():
    """One supervised ngspice worker for the whole session (tests load their own circuits)."""
    with SpiceEngine(timeout_s=120) as shared:
        yield shared


# A reduced reproduction (Cr only, small test set and sweeps) for the stored-run tests.
SMALL_REPRODUCTION_TOML = """
preset = "Cr"
[onchip]
n_test_per_class = 15
conductance_errors = [0.0, 0.1]
error_draws = 2
noise_levels = [0.0, 0.2]
"""


@pytest.fixture(scope="module")
def small_config(tmp_path_factory):
    from circuitnn.experiments.config import load_config

    path = tmp_path_factory.mktemp("config") / "small.toml"
    path.write_text(SMALL_REPRODUCTION_TOML)
    return load_config(path)
