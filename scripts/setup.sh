#!/usr/bin/env bash
# Installs what circuitnn needs on a Debian machine: ngspice and libngspice0 from Debian's
# packages, a C compiler (the ngspice worker builds its write-verify loop with it:
# circuitnn/spice/compiled.py), Python with venv, and the package with its Python dependencies
# in ./.venv.
# Safe to run again: it installs only what is missing, and needs no root (and no sudo) when the
# Debian packages are there already. The other scripts call it; CIRCUITNN_EXTRAS names the
# optional dependencies wanted (test.sh: "test,pyspice").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${CIRCUITNN_EXTRAS:-}"
# Another apt-get or dpkg (unattended-upgrades, a second set-up) may hold the package locks.
lock_wait_s=600

say() { echo "setup: $*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root (or sudo) to run: $*" >&2
    echo "setup: ask an administrator to run it once, then run this script again" >&2; exit 1; fi
}

have_libngspice() {
  # The loader circuitnn uses (ctypes), asked in one process: no pipe that SIGPIPE can break.
  command -v python3 >/dev/null && python3 "$root/scripts/find_libngspice.py" >/dev/null 2>&1
}

apt_update() {
  # apt-get waits for the dpkg lock (DPkg::Lock::Timeout) but not for the package lists lock
  # that `update` takes: retry while another apt holds it.
  local waited=0 output
  while true; do
    if output="$(as_root apt-get -o DPkg::Lock::Timeout="$lock_wait_s" update -q 2>&1)"; then return 0; fi
    if [[ "$output" != *"Could not get lock"* ]] || [ "$waited" -ge "$lock_wait_s" ]; then
      printf '%s\n' "$output" >&2; return 1; fi
    [ "$waited" -eq 0 ] && say "another apt-get holds the package lists; waiting for it (up to ${lock_wait_s} s)"
    sleep 5; waited=$((waited + 5))
  done
}

# -- Debian packages -----------------------------------------------------------------------------
need_apt=()
if ! command -v python3 >/dev/null; then need_apt+=(python3 python3-venv python3-pip)
elif ! python3 -c 'import ensurepip, venv' 2>/dev/null; then need_apt+=(python3-venv python3-pip); fi
command -v ngspice >/dev/null || need_apt+=(ngspice)
have_libngspice || need_apt+=(libngspice0)
can_compile() {
  local out; out="$(mktemp)"
  printf '#include <math.h>\n#include <time.h>\nint main(void) { return (int)fabs(0.0); }\n' |
    cc -x c -o "$out" - -lm >/dev/null 2>&1; local status=$?; rm -f "$out"; return $status
}
command -v cc >/dev/null && can_compile || need_apt+=(gcc libc6-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_apt[*]} (apt-get; waits for other package managers)"
  say "updating the package lists ..."
  apt_update
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout="$lock_wait_s" install -y -q "${need_apt[@]}"
fi
command -v ngspice >/dev/null || { echo "setup: ngspice is still missing" >&2; exit 1; }
can_compile || { echo "setup: the C compiler (cc) still cannot build a program" >&2; exit 1; }
have_libngspice || { echo "setup: libngspice is still not loadable:" \
  "$(python3 "$root/scripts/find_libngspice.py" 2>&1 || true)" >&2; exit 1; }

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "setup: circuitnn needs Python >= 3.11 (found $(python3 --version))" >&2; exit 1; }

# -- the virtualenv ------------------------------------------------------------------------------
venv="$root/.venv"
stamp="$venv/.circuitnn-installed"
if [ ! -x "$venv/bin/python" ]; then
  say "creating the virtualenv .venv"
  python3 -m venv "$venv"
  say "upgrading pip in .venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
fi

# The stamp holds the hash of pyproject.toml and the extras installed with it. Every script asks
# for its own extras; installing the union keeps main.sh and test.sh from reinstalling in turn.
want_hash="$(sha256sum "$root/pyproject.toml" | cut -c1-16)"
have_hash="" have_extras=""
[ -f "$stamp" ] && read -r have_hash have_extras < "$stamp" || true
union="$(printf '%s\n' ${have_extras//,/ } ${extras//,/ } | sort -u | paste -sd, -)"
if [ "$have_hash" = "$want_hash" ] && [ "$union" = "$have_extras" ]; then
  say "circuitnn${have_extras:+[$have_extras]} is installed in .venv; nothing to do"
else
  say "installing circuitnn${union:+[$union]} and its dependencies into .venv"
  say "(numpy, scipy, matplotlib, scikit-learn, ...: 1-2 minutes on a fresh machine; pip's progress follows)"
  "$venv/bin/python" -m pip install --disable-pip-version-check -e "$root${union:+[$union]}"
  echo "$want_hash $union" > "$stamp"
  say "installed circuitnn${union:+[$union]} into .venv"
fi
