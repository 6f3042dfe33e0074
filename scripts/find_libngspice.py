"""Is libngspice loadable the way circuitnn loads it? Prints the library and exits 0, or says why not
and exits 1.

The same lookup as ``circuitnn.spice.ngspice.find_library`` (``CIRCUITNN_NGSPICE_LIBRARY``, else
``ctypes.util.find_library("ngspice")``), then the dynamic loader itself opens it. Standard library
only, so scripts/setup.sh can ask before the virtualenv exists. No shell pipe is involved: a
``ldconfig -p | grep -q`` check under ``set -o pipefail`` fails at random when grep exits before
ldconfig has written everything (SIGPIPE), and ldconfig is not on a non-root user's PATH.
"""

import ctypes
import ctypes.util
import os
import sys


def main() -> int:
    name = os.environ.get("CIRCUITNN_NGSPICE_LIBRARY") or ctypes.util.find_library("ngspice")
    if not name:
        print("libngspice not found by ctypes.util.find_library('ngspice')", file=sys.stderr)
        return 1
    try:
        ctypes.CDLL(name)
    except OSError as error:
        print(f"libngspice {name!r} cannot be loaded: {error}", file=sys.stderr)
        return 1
    print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
