"""Who is acting from the shell, for the audit trail: ``--by NAME``, else the login name."""

from __future__ import annotations

import argparse
import getpass

from gateway.audit import events as audit


def acting(args: argparse.Namespace) -> str:
    """``--by``, written the way the trail writes every actor; the login name when ``--by``
    is missing or blank."""
    return audit.actor(str(args.by or "")) or audit.actor(getpass.getuser())
