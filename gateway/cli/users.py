"""`gateway users add|passwd|disable|enable|list`: accounts for the review web UI and for
SMTP AUTH (role ``submit``).

Passwords are never arguments (they would sit in the shell's history and in `ps`): on a
terminal they are asked for twice, without echo; otherwise the first line of standard input is
the password, for scripts (``printf '%s\\n' "$PW" | gateway users add jo --role admin``).
Every change goes into the audit trail, by ``--by`` (default: your login name).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Callable
from typing import Any

from gateway.accounts.users import Accounts, Role, User
from gateway.audit import events as audit
from gateway.cli.actor import acting
from gateway.cli.exits import EXIT_OK, EXIT_USAGE
from gateway.config.settings import Settings
from gateway.core.timefmt import iso_utc, or_dash
from gateway.errors import UserError
from gateway.runtime.parts import open_accounts, open_store
from gateway.store import AuditRecord


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    users = commands.add_parser(
        "users", parents=[common], help="accounts for the web UI and SMTP AUTH"
    )
    actions = users.add_subparsers(dest="action", required=True, metavar="ACTION")

    add = actions.add_parser("add", parents=[common], help="add an account (asks a password)")
    add.add_argument("name", metavar="NAME")
    add.add_argument(
        "--role",
        choices=[r.value for r in Role],
        default=Role.REVIEWER.value,
        help="reviewer (reviews held mail; the default), admin (also manages accounts) or "
        "submit (sends mail by SMTP AUTH after STARTTLS; no web sign-in)",
    )
    add.add_argument("--by", default=None, help="who is adding it (default: your user name)")
    add.set_defaults(run=_command(add_user))

    passwd = actions.add_parser("passwd", parents=[common], help="set an account's password")
    passwd.add_argument("name", metavar="NAME")
    passwd.add_argument("--by", default=None)
    passwd.set_defaults(run=_command(set_password))

    for name, helptext in (
        ("disable", "stop an account signing in (and end its sessions)"),
        ("enable", "let a disabled account sign in again"),
    ):
        change = actions.add_parser(name, parents=[common], help=helptext)
        change.add_argument("name", metavar="NAME")
        change.add_argument("--by", default=None)
        change.set_defaults(run=_command(disable if name == "disable" else enable))

    listing = actions.add_parser("list", parents=[common], help="the accounts")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=_command(list_users))


Runner = Callable[[Accounts, argparse.Namespace, Settings], int]


def _command(runner: Runner) -> Callable[[argparse.Namespace, Settings], int]:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        accounts = open_accounts(settings)
        try:
            return runner(accounts, args, settings)
        except UserError as exc:
            print(f"gateway: {exc}", file=sys.stderr)
            return EXIT_USAGE
        finally:
            accounts.close()

    return run


def read_password(confirm: bool = True) -> str:
    """Twice without echo on a terminal; else the first line of standard input."""
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if confirm and getpass.getpass("Password again: ") != password:
            raise UserError("the two passwords differ")
        return password
    line = sys.stdin.readline()
    return line[:-1] if line.endswith("\n") else line


def _by(args: argparse.Namespace) -> str:
    return acting(args)


def _audit(settings: Settings, record: AuditRecord) -> None:
    async def append() -> None:
        store = await open_store(settings)
        try:
            await store.append_audit([record])
        finally:
            await store.close()

    asyncio.run(append())


def add_user(accounts: Accounts, args: argparse.Namespace, settings: Settings) -> int:
    user = accounts.add(args.name, args.role, read_password())
    _audit(settings, audit.user_added(user.name, user.role.value, _by(args)))
    print(f"added {user.name} ({user.role.value})")
    return EXIT_OK


def set_password(accounts: Accounts, args: argparse.Namespace, settings: Settings) -> int:
    user = accounts.set_password(args.name, read_password())
    ended = accounts.records.end_sessions(user.name)
    _audit(settings, audit.password_changed(user.name, _by(args)))
    print(f"password set for {user.name}; {ended} session(s) ended")
    return EXIT_OK


def disable(accounts: Accounts, args: argparse.Namespace, settings: Settings) -> int:
    user = accounts.set_disabled(args.name, True)
    ended = accounts.records.end_sessions(user.name)
    _audit(settings, audit.user_disabled(user.name, _by(args)))
    print(f"disabled {user.name}; {ended} session(s) ended")
    return EXIT_OK


def enable(accounts: Accounts, args: argparse.Namespace, settings: Settings) -> int:
    user = accounts.set_disabled(args.name, False)
    _audit(settings, audit.user_enabled(user.name, _by(args)))
    print(f"enabled {user.name}")
    return EXIT_OK


def _when(timestamp: float | None) -> str:
    return or_dash(iso_utc, timestamp)


def user_json(user: User) -> dict[str, Any]:
    return {
        "name": user.name,
        "role": user.role.value,
        "disabled": user.disabled,
        "created_at": _when(user.created_at),
        "password_at": _when(user.password_at),
        "signed_in_at": _when(user.signed_in_at) if user.signed_in_at else None,
    }


def list_users(accounts: Accounts, args: argparse.Namespace, settings: Settings) -> int:
    users = accounts.all()
    if args.json:
        print(json.dumps([user_json(u) for u in users], indent=2))
        return EXIT_OK
    if not users:
        print("no accounts: add the first with `gateway users add NAME --role admin`")
        return EXIT_OK
    print(f"{'NAME':<24}  {'ROLE':<8}  {'STATUS':<8}  LAST SIGN-IN")
    for user in users:
        status = "disabled" if user.disabled else "active"
        print(f"{user.name:<24}  {user.role.value:<8}  {status:<8}  {_when(user.signed_in_at)}")
    return EXIT_OK
