"""Commands that use the store never make its data directory: only `gateway serve` (and `gateway
web`, `store migrate`, `users add`, which set a gateway up) do.

Run from another folder without `--config`, a command that made `./var` would open a new, empty
store and say "no holds" while mail waits in the real one, and nobody would be told. So a
command that reads or changes what is in the store refuses (exit status 2: the configuration is
wrong), and `gateway check` / `allowlist check`, which only keep the policies they fetch, warn
and keep them in a scratch folder that goes away.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from gateway.config.settings import Settings
from gateway.runtime.parts import missing_data_dir

# command -> its actions that need the store to be there already (None: every action).
NEEDS_STORE: dict[str, frozenset[str] | None] = {
    "held": None,
    "audit": None,
    "queue": None,
    "trace": None,
    "sts-cache": None,
    "users": frozenset({"list", "passwd", "disable", "enable"}),
    "store": frozenset({"status", "copy", "backup", "rotate-key"}),
}
# Commands that use the data directory only as a cache of fetched policies (and probe results).
CACHE_ONLY = frozenset({("check", None), ("allowlist", "check")})


def _key(args: argparse.Namespace) -> tuple[str, str | None]:
    return args.command, getattr(args, "action", None)


def _where(folder: Path, settings: Settings) -> str:
    if not settings.source:
        hint = "no configuration was given: use --config FILE or GATEWAY_CONFIG"
    else:
        hint = f"[store] data_dir of {settings.source}: is this the gateway's configuration?"
    return f"no data directory at {folder} ({hint})"


def refusal(args: argparse.Namespace, settings: Settings) -> str | None:
    """Why this command must not run, when it needs a store that is not there."""
    command, action = _key(args)
    if command not in NEEDS_STORE:
        return None
    actions = NEEDS_STORE[command]
    if actions is not None and action not in actions:
        return None
    folder = missing_data_dir(settings)
    return None if folder is None else f"gateway: {_where(folder, settings)}"


@contextlib.contextmanager
def scratch_store(args: argparse.Namespace, settings: Settings) -> Iterator[Settings]:
    """The settings to run with: for `check` without a data directory, one in a temporary
    folder (said on stderr), so the check still answers and leaves nothing behind."""
    folder = missing_data_dir(settings) if _key(args) in CACHE_ONLY else None
    if folder is None:
        yield settings
        return
    print(
        f"gateway: {_where(folder, settings)}; the policies fetched now are not kept",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(prefix="gateway-check-") as scratch:
        yield replace(settings, store=replace(settings.store, data_dir=scratch))
