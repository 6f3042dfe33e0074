#!/usr/bin/env bash
# Installs what circuitnn needs on a Debian machine: ngspice and libngspice0 from Debian's
# packages, Python with venv, and the package with its Python dependencies in ./.venv.
# Safe to run again: it installs only what is missing. Source it or run it; the other scripts call it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${CIRCUITNN_EXTRAS:-}"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root (or sudo) to run: $*" >&2; exit 1; fi
}

need_apt=()
command -v ngspice >/dev/null || need_apt+=(ngspice)
ldconfig -p 2>/dev/null | grep -q 'libngspice\.so\.0 ' || need_apt+=(libngspice0)
if ! command -v python3 >/dev/null; then need_apt+=(python3 python3-venv python3-pip)
elif ! python3 -c 'import ensurepip, venv' 2>/dev/null; then need_apt+=(python3-venv python3-pip); fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
command -v ngspice >/dev/null || { echo "setup: ngspice is still missing" >&2; exit 1; }

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "setup: circuitnn needs Python >= 3.11 (found $(python3 --version))" >&2; exit 1; }

venv="$root/.venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
stamp="$venv/.circuitnn-installed"
want="$(cat "$root/pyproject.toml" | sha256sum | cut -c1-16)-${extras}"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing circuitnn${extras:+[$extras]} into .venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -e "$root${extras:+[$extras]}"
  echo "$want" > "$stamp"
fi
