"""`gateway allowlist import FILE.csv`: a published list of secure-email domains (NHS England's
DCB1596 list, for one) into an allowlist file, beside `allowlist lint` and `allowlist check`.

What changes is printed before anything is written; the file is replaced atomically (temporary
file, fsync, rename), keeping its mode. Exit status (``gateway.cli.exits``): 0 written (or, with
--dry-run, shown), 1 nothing importable or the existing file has problems, 2 a usage error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import stat
import sys
import time
from pathlib import Path
from typing import Any

from gateway.cli.exits import EXIT_FINDING, EXIT_OK, EXIT_USAGE
from gateway.config.settings import Settings
from gateway.core.addresses import AddressError, split_address
from gateway.core.allowlist import AllowlistEntry, parse_toml
from gateway.core.listimport import (
    ColumnNotFound,
    ImportHeader,
    ImportOptions,
    ImportPlan,
    plan,
    read_csv,
    render,
)
from gateway.core.policy import today_utc
from gateway.posture import allowlists
from gateway.store.safeio import write_atomic

# A new allowlist file holds no mail and no secret, and the gateway may run as another user
# than whoever imports: readable by all, like the rest of /etc/gateway.
NEW_FILE_MODE = 0o644

IMPORT_EPILOG = """\
exit status: 0 the file was written (or, with --dry-run, what would change was shown); 1 the
CSV held no domain that could be imported, or the existing file has problems (nothing is
written); 2 a usage error (no such file, no such column, a bad --owner or --expires).
Rows left out (blank, not a domain, duplicates, retired gsi.gov.uk domains) are listed on
stderr as FILE:LINE: problem."""


def add_import(actions: Any, common: argparse.ArgumentParser) -> None:
    parser = actions.add_parser(
        "import",
        parents=[common],
        help="import a published CSV list of domains into an allowlist file",
        epilog=IMPORT_EPILOG,
    )
    parser.add_argument("csv", metavar="FILE.csv", help="the list, a CSV file with a header row")
    parser.add_argument(
        "--domain-column", required=True, metavar="NAME", help="the header of the domain column"
    )
    parser.add_argument(
        "--source", required=True, metavar="TEXT", help="where the list comes from, for each entry"
    )
    parser.add_argument("--owner", default="", metavar="ADDRESS", help="who answers for it")
    parser.add_argument(
        "--expires", default=None, metavar="DATE", help="YYYY-MM-DD: last day the entries count"
    )
    parser.add_argument(
        "--into", required=True, metavar="FILE.toml", help="the allowlist file to write"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="show what would change, write nothing"
    )
    parser.set_defaults(run=run_import)


def run_import(args: argparse.Namespace, settings: Settings) -> int:
    today = today_utc(time.time())
    options = _options(args, today)
    if options is None:
        return EXIT_USAGE
    source, into = Path(args.csv), Path(args.into)
    if into.suffix != ".toml":
        return _fail(EXIT_USAGE, f"--into {into}: the file must end in .toml")
    try:
        data = source.read_bytes()
        text = data.decode("utf-8")
    except OSError as exc:
        return _fail(EXIT_USAGE, f"cannot read {source}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        return _fail(EXIT_USAGE, f"{source} is not UTF-8 text: save it as CSV UTF-8")
    try:
        listed = read_csv(text, str(source), args.domain_column)
    except ColumnNotFound as exc:
        return _fail(EXIT_USAGE, f"{source}: {exc}")
    for warning in listed.warnings:
        print(warning, file=sys.stderr)
    if not listed.domains:
        return _fail(EXIT_FINDING, f"{source}: no domain to import; {into} left as it is")
    existing = _existing(into)
    if existing is None:
        return EXIT_FINDING
    changes = plan(listed.domains, existing, options, today)
    _print_changes(into, changes)
    if args.dry_run:
        print("dry run: nothing written")
        return EXIT_OK
    header = ImportHeader(
        options.source, source.name, hashlib.sha256(data).hexdigest(), listed.column, today
    )
    mode = stat.S_IMODE(into.stat().st_mode) if into.exists() else NEW_FILE_MODE
    try:
        write_atomic(into, render(changes.entries, header).encode("utf-8"), mode)
    except OSError as exc:
        return _fail(EXIT_FINDING, f"cannot write {into}: {exc.strerror or exc}")
    print(f"wrote {into}: {len(changes.entries)} entries")
    _warn_if_unread(into, settings)
    return EXIT_OK


def _options(args: argparse.Namespace, today: dt.date) -> ImportOptions | None:
    if not args.source.strip():
        print("gateway: --source must say where the list comes from", file=sys.stderr)
        return None
    if args.owner:
        try:
            split_address(args.owner)
        except AddressError as exc:
            print(f"gateway: --owner {args.owner!r} is not an address: {exc}", file=sys.stderr)
            return None
    expires = None
    if args.expires is not None:
        try:
            expires = dt.date.fromisoformat(args.expires)
        except ValueError:
            print(f"gateway: --expires {args.expires!r} is not a YYYY-MM-DD date", file=sys.stderr)
            return None
        if expires < today:
            # The entries would be expired at once: held mail, and `allowlist lint` failing.
            print(f"gateway: --expires {expires} is in the past", file=sys.stderr)
            return None
    return ImportOptions(args.source.strip(), args.owner, expires)


def _existing(into: Path) -> list[AllowlistEntry] | None:
    """The entries the file holds now (none if it does not exist yet); None, with the
    problems printed, if it cannot be read: replacing it could drop what we cannot see."""
    if not into.exists():
        return []
    try:
        parsed = parse_toml(into.read_text(encoding="utf-8"), str(into))
    except (OSError, UnicodeDecodeError) as exc:
        print(f"gateway: cannot read {into}: {exc}", file=sys.stderr)
        return None
    for problem in parsed.problems:
        print(problem, file=sys.stderr)
    if parsed.problems:
        print(f"gateway: fix {into} (or remove it) first; nothing written", file=sys.stderr)
        return None
    return list(parsed.entries)


def _print_changes(into: Path, changes: ImportPlan) -> None:
    print(
        f"{into}: {len(changes.added)} added, {len(changes.removed)} removed, "
        f"{changes.unchanged} unchanged"
    )
    for name in changes.added:
        print(f"  + {name}")
    for name in changes.removed:
        print(f"  - {name}")


def _warn_if_unread(into: Path, settings: Settings) -> None:
    files = allowlists.expand(settings.allowlist.paths, settings.base_dir)
    read = {path.resolve() for path in files}
    if into.resolve() not in read:
        print(
            f"gateway: note: {into} is not among [allowlist] paths "
            f"({', '.join(settings.allowlist.paths)}), so the gateway does not read it",
            file=sys.stderr,
        )


def _fail(code: int, message: str) -> int:
    print(f"gateway: {message}", file=sys.stderr)
    return code
