"""Locating the Debian-packaged servers; a missing one is an error, never a skip."""

import shutil
from pathlib import Path

from rig.errors import RigError

# Debian puts daemons in sbin, which a non-login PATH may lack.
_SEARCH = "/usr/sbin:/usr/bin:/sbin:/bin"

PACKAGES = {
    "knotd": "knot",
    "unbound": "unbound",
    "nginx": "nginx-light",
}


def require(name: str) -> Path:
    """The absolute path of the server binary `name`, or a RigError saying how to install it."""
    found = shutil.which(name) or shutil.which(name, path=_SEARCH)
    if found is None:
        package = PACKAGES.get(name, name)
        raise RigError(
            f"the end-to-end test rig needs `{name}` (Debian package {package}), which is not "
            f"installed; `make test` installs it (or: apt-get install {package})"
        )
    return Path(found)
