#!/usr/bin/env bash
# The test suite: installs what it needs (ngspice included), then runs pytest.
# Tests that touch SPICE run the real ngspice; nothing is skipped for a missing simulator.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CIRCUITNN_EXTRAS="test,pyspice" bash "$root/scripts/setup.sh"
cd "$root"
exec "$root/.venv/bin/python" -m pytest "$@"
