"""scripts/setup.sh: the libngspice check never misreports, finished work is not redone, and a
non-root user without sudo gets through when everything is installed."""

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from circuitnn.spice.ngspice import find_library

ROOT = Path(__file__).resolve().parents[1]
# Debian's PATH for a user without root: no /sbin, so no ldconfig.
USER_PATH = "/usr/local/bin:/usr/bin:/bin"


def test_libngspice_check_agrees_with_the_engine_200_times():
    """The check setup.sh runs, 200 times in a row: the old `ldconfig -p | grep -q` under
    pipefail reported the library missing about once in 40."""
    script = ROOT / "scripts" / "find_libngspice.py"
    env = {**os.environ, "PATH": USER_PATH + ":" + os.environ.get("PATH", "")}
    env.pop("CIRCUITNN_NGSPICE_LIBRARY", None)
    expected = find_library()
    for attempt in range(200):
        done = subprocess.run([sys.executable, "-S", "-I", str(script)], capture_output=True, text=True,
                              env=env, timeout=30)
        assert done.returncode == 0 and done.stdout.strip() == expected, (attempt, done.stdout, done.stderr)


def test_libngspice_check_says_why_a_library_does_not_load(tmp_path):
    env = {**os.environ, "CIRCUITNN_NGSPICE_LIBRARY": str(tmp_path / "libnothing.so")}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "find_libngspice.py")], capture_output=True,
                          text=True, env=env, timeout=30)
    assert done.returncode == 1 and "cannot be loaded" in done.stderr


FAKE_PYTHON = """#!/bin/sh
# Stands in for .venv/bin/python: records what setup.sh asks of it.
echo "$*" >> "{log}"
"""
FAKE_ROOT_TOOL = """#!/bin/sh
echo "$(basename "$0") $*" >> "{log}"
exit 1
"""


@pytest.fixture
def checkout():
    """A copy of what setup.sh reads, in a folder every user may read (pytest's own tmp_path is
    private to its owner), with a stand-in virtualenv whose python logs every call; and stand-in
    `sudo` and `apt-get` that log and fail, so any attempt to install packages shows."""
    folder = Path(tempfile.mkdtemp(prefix="circuitnn-setup-"))
    try:
        os.chmod(folder, 0o755)
        shutil.copytree(ROOT / "scripts", folder / "scripts")
        shutil.copy2(ROOT / "pyproject.toml", folder / "pyproject.toml")
        log = folder / "calls.log"
        log.touch()
        os.chmod(log, 0o666)  # the unprivileged run must be able to report a call, too
        (folder / ".venv" / "bin").mkdir(parents=True)
        (folder / "fakebin").mkdir()
        for path, text in ((folder / ".venv" / "bin" / "python", FAKE_PYTHON),
                           (folder / "fakebin" / "sudo", FAKE_ROOT_TOOL), (folder / "fakebin" / "apt-get", FAKE_ROOT_TOOL)):
            path.write_text(text.format(log=log))
            path.chmod(0o755)
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _setup(folder: Path, extras: str, user: str | None = None) -> subprocess.CompletedProcess:
    # The system's python3 (what a new user has), after the stand-ins for sudo and apt-get.
    env = {"PATH": f"{folder / 'fakebin'}:{USER_PATH}", "HOME": str(folder), "LANG": "C.UTF-8",
           "CIRCUITNN_EXTRAS": extras}
    command = ["bash", str(folder / "scripts" / "setup.sh")]
    if user is not None:
        entry = pwd.getpwnam(user)
        command = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups",
                   *command]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=folder,
                          stdin=subprocess.DEVNULL)


def _calls(folder: Path) -> list[str]:
    lines = (folder / "calls.log").read_text().splitlines()
    (folder / "calls.log").write_text("")
    return lines


def test_alternating_main_and_test_setups_install_once(checkout):
    first = _setup(checkout, "")                      # main.sh
    assert first.returncode == 0, first.stderr
    assert [c for c in _calls(checkout) if "pip install" in c] == [f"-m pip install --disable-pip-version-check -e {checkout}"]
    assert "installing circuitnn" in first.stdout and "1-2 minutes" in first.stdout
    second = _setup(checkout, "test,pyspice")         # test.sh: the union of both
    assert second.returncode == 0, second.stderr
    assert [c for c in _calls(checkout) if "pip install" in c] == [
        f"-m pip install --disable-pip-version-check -e {checkout}[pyspice,test]"]
    for extras in ("", "test,pyspice", "test", "pyspice", ""):
        again = _setup(checkout, extras)
        assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr
        assert _calls(checkout) == [], extras
    # A changed pyproject.toml is installed again, keeping the extras installed before.
    with open(checkout / "pyproject.toml", "a") as handle:
        handle.write("# changed\n")
    changed = _setup(checkout, "")
    assert changed.returncode == 0
    assert [c for c in _calls(checkout) if "pip install" in c] == [
        f"-m pip install --disable-pip-version-check -e {checkout}[pyspice,test]"]


def test_setup_needs_no_root_and_no_sudo_when_everything_is_installed(checkout):
    """Run as a user without root and with Debian's user PATH (no /sbin): the packages are
    installed (this suite runs after set-up), so setup.sh must succeed without calling sudo or apt."""
    assert _setup(checkout, "test,pyspice").returncode == 0   # the package, as set-up left it
    _calls(checkout)
    user = None
    if os.geteuid() == 0:
        user = "nobody"
        assert shutil.which("setpriv"), "setpriv (util-linux) is needed to run set-up as another user"
    done = _setup(checkout, "test,pyspice", user=user)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing to do" in done.stdout
    assert _calls(checkout) == []  # neither sudo, nor apt-get, nor pip
    done = _setup(checkout, "", user=user)
    assert done.returncode == 0 and _calls(checkout) == [], done.stdout + done.stderr
