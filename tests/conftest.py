"""Shared fixtures. SPICE tests run the real ngspice; in CI a missing ngspice is a failure."""

from __future__ import annotations

import pytest

from circuitnn.spice.engine import SpiceEngine


@pytest.fixture(scope="session")
def engine():
    """One supervised ngspice worker for the whole session (tests load their own circuits)."""
    with SpiceEngine(timeout_s=120) as shared:
        yield shared
