"""`gateway reload`: make the running `gateway serve` of this configuration re-read its
allowlist files and SMTP certificate, as `kill -HUP` or `systemctl reload gateway` do.

The process is found by the pid file the leader keeps in its data directory
(``gateway.runtime.pidfile``). A pid file whose process is gone (after a crash) is reported and
nothing is signalled. Exit 0 when the signal was sent, 1 when no gateway runs here. What the
reload found (``allowlist reloaded``, or ``allowlist reload failed`` with file and line) is in
the gateway's log.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

from gateway.cli.exits import EXIT_FINDING, EXIT_OK
from gateway.config.settings import Settings
from gateway.runtime import pidfile
from gateway.runtime.parts import data_dir


def add_command(commands: Any, common: argparse.ArgumentParser) -> None:
    reload = commands.add_parser(
        "reload",
        parents=[common],
        help="make the running `gateway serve` re-read its allowlists and TLS certificate",
    )
    reload.set_defaults(run=run_reload)


def run_reload(args: argparse.Namespace, settings: Settings) -> int:
    found = pidfile.read(data_dir(settings))
    if found.problem:
        print(f"gateway: {found.problem}; nothing signalled", file=sys.stderr)
        return EXIT_FINDING
    if found.pid == 0:
        print(
            f"gateway: no gateway serve is running for this configuration (no {found.path})",
            file=sys.stderr,
        )
        return EXIT_FINDING
    if not found.running:
        print(
            f"gateway: stale pid file {found.path}: process {found.pid} is not a running "
            "gateway serve (it stopped without cleaning up); nothing signalled",
            file=sys.stderr,
        )
        return EXIT_FINDING
    try:
        os.kill(found.pid, signal.SIGHUP)
    except OSError as exc:  # it stopped just now, or runs as another user
        print(f"gateway: cannot signal process {found.pid}: {exc}", file=sys.stderr)
        return EXIT_FINDING
    print(
        f"sent SIGHUP to gateway serve (pid {found.pid}): it re-reads the allowlist files and "
        "the SMTP certificate; its log says what was reloaded or which file and line failed"
    )
    return EXIT_OK
