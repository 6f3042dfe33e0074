"""The init files ngspice reads, all circuitnn's own: none from the user's folder, home or environment.

ngspice reads two scripts before any netlist, and either may hold ``shell`` commands:

* ``spinit``, from the folder ``SPICE_SCRIPTS`` names (else ``$SPICE_LIB_DIR/scripts``, else its
  installation). A variable left in the environment (by a shell profile, a conda activation, another
  program) would make every circuitnn simulation run whatever that folder holds.
* ``.spiceinit`` (or ``spice.rc``), from the current folder, else ``$HOME`` / ``SPICE_USERINIT_DIR``
  or the password database's home folder.

So every ngspice that circuitnn starts (the engine's worker, the batch process, PySpice's shared
library) runs with a private folder holding both files, written here, as its current folder (where
that is ours to choose), ``SPICE_SCRIPTS``, ``HOME`` and ``SPICE_USERINIT_DIR``. Our ``spinit`` loads
no code models: circuitnn's netlists use only built-in elements (R, V, E, B, S), and it leaves the
run independent of how ngspice was installed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

SPINIT = "* circuitnn: ngspice's start-up script; nothing from the user's environment is read\n"
SPICEINIT = "* circuitnn: no user init file is read\n"
# The variables naming where the init files are read from; each points into the private folder.
VARIABLES = ("SPICE_SCRIPTS", "HOME", "SPICE_USERINIT_DIR")


def private_init_folder() -> Path:
    """A new empty folder (mode 0700) holding circuitnn's ``spinit`` and ``.spiceinit``; the caller
    removes it when ngspice is done."""
    folder = Path(tempfile.mkdtemp(prefix="circuitnn-ngspice-"))
    (folder / "spinit").write_text(SPINIT)
    (folder / ".spiceinit").write_text(SPICEINIT)
    return folder


def init_environment(folder: Path) -> dict[str, str]:
    """The environment entries that make ngspice read its init files from ``folder`` only."""
    return {name: str(folder) for name in VARIABLES}
