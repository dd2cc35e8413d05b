"""The gateway's container image, built and run with Debian's podman, without a registry.

No image can be pulled here, so :func:`base_image` stands in for the Dockerfile's ``FROM``: a
Debian bookworm made by ``debootstrap --variant=minbase`` from the mirror apt already uses,
with ``python3``, ``python3-venv`` and ``ca-certificates``, imported under the ``FROM`` name.
The root file system is cached under /var/tmp for the day (a fresh machine makes it in a few
minutes); an image of that name that is not a stand-in (the real one) is used as it is.

:func:`build_image` gives ``podman build --pull=never`` a context with a wheelhouse (``pip
wheel`` on this machine: the build itself needs no network) and ``--format docker``, the only
format that keeps ``HEALTHCHECK``. What this sandbox needs on top is in docs/hacking.md.
"""

from __future__ import annotations

import datetime as dt
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from rig.errors import RigError

ROOT = Path(__file__).resolve().parent.parent
# Kept between runs (and reboots), as /var/tmp is meant for (FHS 3.0 §5.15).
CACHE = Path("/var/tmp/gateway-container")  # noqa: S108
IMAGE = "localhost/safeguarding-gateway:test"
RESOLVER_IMAGE = "localhost/safeguarding-gateway-resolver:test"
STANDIN_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# What the Dockerfile copies, and the wheelhouse folder it searches first.
CONTEXT = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "gateway", "config")
CONTEXT_MORE = ("allowlists", "deploy", "wheels")
# Rootful podman asks the runtime for these limits unless told otherwise (libpod's
# RLimitDefaultValue); a runtime without CAP_SYS_RESOURCE cannot go above its own hard limit.
PODMAN_DEFAULT_LIMIT = 1_048_576
BUILD_TIMEOUT = 900
DEBOOTSTRAP_TIMEOUT = 900


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise RigError(f"podman {' '.join(args)}: exit {done.returncode}\n{done.stderr}")
    return done


def from_image(dockerfile: Path = ROOT / "Dockerfile") -> str:
    """The Dockerfile's base, fully qualified as podman stores a Docker Hub name."""
    [name] = set(re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(), re.MULTILINE))
    if "/" not in name:
        name = f"library/{name}"
    return name if "." in name.split("/", 1)[0] else f"docker.io/{name}"


def apt_mirror() -> str:
    """The Debian archive apt uses for bookworm (deb822 .sources files or sources.list)."""
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in sources:
        for stanza in path.read_text().split("\n\n"):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.+)$", stanza, re.MULTILINE))
            if fields.get("Suites", "").split()[:1] == ["bookworm"]:
                return fields["URIs"].split()[0]
    listing = Path("/etc/apt/sources.list")
    text = listing.read_text() if listing.exists() else ""
    match = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", text, re.MULTILINE)
    return match.group(1) if match else "http://deb.debian.org/debian"


def _standin_tar(day: str) -> Path:
    tar = CACHE / f"bookworm-standin-{day}.tar"
    if tar.exists():
        return tar
    CACHE.mkdir(parents=True, exist_ok=True)
    for old in CACHE.glob("bookworm-standin-*"):
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    root = CACHE / f"bookworm-standin-{day}.root"
    done = subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(STANDIN_PACKAGES)}",
            "bookworm",
            str(root),
            apt_mirror(),
        ],
        capture_output=True,
        text=True,
        timeout=DEBOOTSTRAP_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RigError(f"debootstrap failed ({done.returncode})\n{done.stdout[-3000:]}")
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for item in (root / cache).glob("*"):
            if item.is_file():
                item.unlink()
    partial = tar.with_name(f"{tar.name}.partial")
    subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True, timeout=300)
    partial.rename(tar)
    shutil.rmtree(root)
    return tar


def base_image(name: str | None = None) -> str:
    """A base image (the gateway Dockerfile's FROM by default): the real one if present, else
    today's stand-in under that name."""
    name = name or from_image()
    day = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
    stamp = f"gateway stand-in {day}"
    found = podman("image", "inspect", "--format", "{{.Comment}}", name, check=False)
    if found.returncode == 0 and (found.stdout.strip() == stamp or "stand-in" not in found.stdout):
        return name
    podman("import", "--message", stamp, str(_standin_tar(day)), name, timeout=300)
    return name


def _context(folder: Path) -> Path:
    """A build context: what the Dockerfile copies, and wheels/ filled by `pip wheel` here."""
    for name in CONTEXT + CONTEXT_MORE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, folder / name)
    wheels = [str(folder / "wheels"), str(ROOT), "setuptools>=77"]  # the build backend too
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", *wheels],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RigError(f"pip wheel failed\n{done.stderr[-3000:]}")
    return folder


def build_image(tag: str = IMAGE) -> str:
    """`podman build` of the working tree's Dockerfile, offline; the image's tag."""
    base_image()
    before = podman("image", "inspect", "--format", "{{.Id}}", tag, check=False).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="gateway-image-") as folder:
        podman(
            "build",
            "--pull=never",
            "--format=docker",  # the OCI format has no HEALTHCHECK
            "--build-arg=PIP_INSTALL_OPTIONS=--no-index",
            # No cached layers: every run builds what a user would, and leaves no stages behind.
            "--layers=false",
            f"--tag={tag}",
            str(_context(Path(folder))),
            timeout=BUILD_TIMEOUT,
        )
    if before:  # the last run's image, now untagged
        podman("rmi", before, check=False)
    return tag


def build_resolver(tag: str = RESOLVER_IMAGE) -> str:
    """`podman build` of deploy/unbound on a stand-in for its Debian base. Its RUN installs
    Debian's unbound with apt from the stand-in's mirror, over the host's network."""
    folder = ROOT / "deploy/unbound"
    base_image(from_image(folder / "Dockerfile"))
    before = podman("image", "inspect", "--format", "{{.Id}}", tag, check=False).stdout.strip()
    podman(
        "build",
        "--pull=never",
        "--network=host",
        "--layers=false",
        f"--tag={tag}",
        str(folder),
        timeout=BUILD_TIMEOUT,
    )
    if before:
        podman("rmi", before, check=False)
    return tag


def ulimit_flags() -> list[str]:
    """`--ulimit` flags for `podman run`, only where podman's defaults exceed what this
    process may grant (docs/hacking.md): its own hard limits, no higher."""
    flags = []
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    for name, limit, cap in (
        ("nofile", resource.RLIMIT_NOFILE, None),
        # podman's own process was seen here with RLIMIT_NPROC at kernel.pid_max.
        ("nproc", resource.RLIMIT_NPROC, pid_max),
    ):
        hard = resource.getrlimit(limit)[1]
        if hard != resource.RLIM_INFINITY and hard < PODMAN_DEFAULT_LIMIT:
            value = min(hard, cap) if cap else hard
            flags.append(f"--ulimit={name}={value}:{value}")
    return flags
