"""Install what the bench needs when it is missing: Debian packages (Postfix for smtp-source,
smtp-sink and the baseline relay; the rig's knot, unbound and nginx; PostgreSQL's server for
the two-node target, run privately by rig/postgres.py) and two Python packages into the
project's virtualenv (bench/requirements.txt)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# binary -> Debian package
BINARIES = {
    "/usr/sbin/postfix": "postfix",
    "/usr/sbin/smtp-source": "postfix",
    "/usr/sbin/smtp-sink": "postfix",
    "/usr/sbin/knotd": "knot",
    "/usr/sbin/unbound": "unbound",
    "/usr/sbin/nginx": "nginx-light",
    "/usr/bin/script": "bsdutils",
}

# Install Postfix without configuring or starting the system's instance: the bench runs its
# own instance under a temporary directory.
DEBCONF = """\
postfix postfix/main_mailer_type select No configuration
postfix postfix/mailname string bench.invalid
"""


def debian() -> None:
    wanted = {pkg for path, pkg in BINARIES.items() if not Path(path).exists()}
    # Debian keeps the server under a versioned folder (/usr/lib/postgresql/15/bin/postgres).
    if not any(Path("/usr/lib/postgresql").glob("*/bin/postgres")):
        wanted.add("postgresql")
    missing = sorted(wanted)
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"bench: needs Debian packages {missing}: run as root (apt-get)")
    print(f"bench: installing Debian packages: {' '.join(missing)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["debconf-set-selections"], input=DEBCONF, text=True, check=True)
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
        check=True,
        env=env,
    )


def python() -> None:
    modules = ("psutil", "uvloop")
    if all(importlib.util.find_spec(m) for m in modules) and shutil.which(
        "py-spy", path=str(Path(sys.executable).parent)
    ):
        return
    print("bench: installing bench/requirements.txt into the virtualenv", flush=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "-r", str(HERE / "requirements.txt")],
        check=True,
    )


def ensure() -> None:
    debian()
    python()
