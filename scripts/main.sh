#!/usr/bin/env bash
# The main job on embedded defaults: installs what it needs, then runs `circuitnn reproduce`.
# Extra arguments go to `circuitnn reproduce` (e.g. --out results --medium Cr).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
exec "$root/.venv/bin/circuitnn" reproduce "$@"
