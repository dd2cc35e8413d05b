"""`gateway ...`: the command line. Exit status 0 success, 1 a finding (an insecure domain, a bad
allowlist entry) or a service that could not start, 2 a usage or configuration error
(``gateway.cli.exits``). The commands take their parts from the runtime."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import uvloop

from gateway import __version__, logs
from gateway.cli import allowlist as allowlistcli
from gateway.cli import datadir
from gateway.cli import held as reviewcli
from gateway.cli import probe as probecli
from gateway.cli import queue as queuecli
from gateway.cli import reload as reloadcli
from gateway.cli import store as storecli
from gateway.cli import trace as tracecli
from gateway.cli import users as usercli
from gateway.cli.exits import EXIT_FINDING, EXIT_OK, EXIT_USAGE
from gateway.config import loader
from gateway.config.settings import Settings
from gateway.core.addresses import AddressError, normalise_domain
from gateway.core.allowlist import lint
from gateway.core.policy import today_utc
from gateway.core.stscache import CachedPolicy
from gateway.errors import ConfigError, SchemaMismatch, StoreUnavailable, WorkerFailed
from gateway.posture import allowlists, report
from gateway.posture.assessment import Assessment
from gateway.runtime.parts import (
    load_allowlist,
    open_policy_cache,
    open_posture,
    store_location,
)
from gateway.runtime.serve import serve


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's parser must not reset what was given before the subcommand
    # (`gateway --config FILE held list`).
    common.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="TOML configuration (default: $GATEWAY_CONFIG)",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log progress to stderr",
    )

    parser = argparse.ArgumentParser(
        prog="gateway", description="Safeguarding Mail Gateway", parents=[common]
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serving = commands.add_parser(
        "serve", parents=[common], help="run the SMTP filter (and the review web UI: [web])"
    )
    serving.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    serving.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)
    serving.set_defaults(run=run_serve)

    web = commands.add_parser(
        "web", parents=[common], help="run the review web UI on its own ([web] listen)"
    )
    web.set_defaults(run=run_web)

    check = commands.add_parser(
        "check", parents=[common], help="show whether recipient domains are secure destinations"
    )
    check.add_argument("domains", nargs="+", metavar="DOMAIN")
    check.add_argument("--json", action="store_true", help="print the stable JSON form")
    check.add_argument(
        "--probe", action="store_true", help="also dial each MX host: STARTTLS, certificate, TLSA"
    )
    check.set_defaults(run=run_check)

    allowlist = commands.add_parser("allowlist", parents=[common], help="allowlist files")
    allowlist_commands = allowlist.add_subparsers(dest="action", required=True, metavar="ACTION")
    lint_parser = allowlist_commands.add_parser(
        "lint", parents=[common], help="report every bad entry as file:line: problem"
    )
    lint_parser.add_argument(
        "paths", nargs="*", metavar="PATH", help="files (default: [allowlist] paths)"
    )
    lint_parser.set_defaults(run=run_lint)
    probecli.add_allowlist_check(allowlist_commands, common)
    allowlistcli.add_import(allowlist_commands, common)

    reviewcli.add_commands(commands, common)
    tracecli.add_command(commands, common)
    usercli.add_commands(commands, common)
    queuecli.add_commands(commands, common)
    storecli.add_commands(commands, common)
    reloadcli.add_command(commands, common)

    cache = commands.add_parser("sts-cache", parents=[common], help="the MTA-STS policy cache")
    cache_commands = cache.add_subparsers(dest="action", required=True, metavar="ACTION")
    cache_list = cache_commands.add_parser("list", parents=[common], help="cached policies")
    cache_list.set_defaults(run=run_cache_list)
    cache_purge = cache_commands.add_parser(
        "purge", parents=[common], help="forget cached policies (all, or the domains named)"
    )
    cache_purge.add_argument("domains", nargs="*", metavar="DOMAIN")
    cache_purge.set_defaults(run=run_cache_purge)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Whatever the gateway or a library it uses writes (SQLite's side files too) is private:
    # it holds senders, recipients, rationales and secrets. See gateway.store.safeio.
    os.umask(0o077)
    args = build_parser().parse_args(argv)
    try:
        settings = loader.load(getattr(args, "config", None))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.run in (run_serve, run_web):
        # The service logs to stdout, for the service manager to collect.
        logs.configure(settings.log.level, settings.log.format, sys.stdout)
    else:
        level = "debug" if getattr(args, "verbose", False) else "warning"
        logs.configure(level, settings.log.format, sys.stderr)
    logs.get("gateway").info("config loaded", config=settings.redacted())
    refused = datadir.refusal(args, settings)
    if refused is not None:
        print(refused, file=sys.stderr)
        return EXIT_USAGE
    try:
        with datadir.scratch_store(args, settings) as using:
            code: int = args.run(args, using)
    except SchemaMismatch as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StoreUnavailable as exc:
        print(f"gateway: the store cannot be reached: {exc}", file=sys.stderr)
        return EXIT_FINDING
    except BrokenPipeError:
        # The reader went away (`gateway held show ID | head`): no traceback. Python would
        # complain again flushing stdout at exit, so stdout goes nowhere from here.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FINDING
    return code


def _domains(names: Sequence[str]) -> list[str] | None:
    domains = []
    for name in names:
        try:
            domains.append(normalise_domain(name))
        except AddressError as exc:
            print(f"gateway: {name!r} is not a domain: {exc}", file=sys.stderr)
            return None
    return list(dict.fromkeys(domains))


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    print(
        f"gateway: SMTP filter on {settings.smtp.listen}, relaying to "
        f"{settings.relay.host}:{settings.relay.port}, store: {store_location(settings)}",
        file=sys.stderr,
    )
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return _run_service(lambda: runner.run(serve(settings, None, args.worker, args.ready_fd)))


def run_web(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.runtime.webui import serve_web  # the web stack loads only when it is used

    print(f"gateway: review web UI on {settings.web.listen}", file=sys.stderr)
    return _run_service(lambda: asyncio.run(serve_web(settings)))


def _run_service(run: Callable[[], object]) -> int:
    """Run `gateway serve` or `gateway web` to its end; a start that fails says why."""
    try:
        run()
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SchemaMismatch as exc:
        # As a configuration error: restarting will not help until someone acts.
        print(f"gateway: cannot start: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StoreUnavailable as exc:
        # Nothing listens, so the MTA's other next hop takes the mail; the service manager's
        # restart (with its back-off) tries again, and every attempt leaves this line.
        print(f"gateway: cannot start: the store cannot be reached: {exc}", file=sys.stderr)
        return EXIT_FINDING
    except (OSError, WorkerFailed) as exc:
        print(f"gateway: cannot start: {exc}", file=sys.stderr)
        return EXIT_FINDING
    return EXIT_OK


def run_check(args: argparse.Namespace, settings: Settings) -> int:
    domains = _domains(args.domains)
    if domains is None:
        return EXIT_USAGE
    if args.probe:
        return probecli.run_check_probe(args, settings, domains)
    loaded = load_allowlist(settings)
    log = logs.get("gateway.check")
    for problem in loaded.problems:
        log.warning("allowlist problem", problem=str(problem))

    async def assess_all() -> list[Assessment]:
        async with open_posture(settings, loaded.allowlist, memo=False) as posture:
            return list(await asyncio.gather(*(posture.assess(d) for d in domains)))

    assessments = asyncio.run(assess_all())
    if args.json:
        print(json.dumps(report.to_json(assessments), indent=2))
    else:
        print(report.to_text(assessments), end="")
    return EXIT_OK if all(a.verdict.secure for a in assessments) else EXIT_FINDING


def run_lint(args: argparse.Namespace, settings: Settings) -> int:
    if args.paths:
        files = [Path(p) for p in args.paths]
        missing = [f for f in files if not f.is_file()]
        if missing:
            print(f"gateway: no such file: {missing[0]}", file=sys.stderr)
            return EXIT_USAGE
        loaded = allowlists.load(files)
    else:
        loaded = load_allowlist(settings)
    problems = list(loaded.problems)
    problems += lint(loaded.allowlist.entries, today_utc(time.time()))
    problems.sort(key=lambda p: (p.file, p.line))
    for problem in problems:
        print(problem)
    entries = len(loaded.allowlist.entries)
    print(
        f"{len(loaded.files)} file(s), {entries} entr{'y' if entries == 1 else 'ies'}, "
        f"{len(problems)} problem(s)",
        file=sys.stderr,
    )
    return EXIT_FINDING if problems else EXIT_OK


def run_cache_list(args: argparse.Namespace, settings: Settings) -> int:
    async def read() -> list[CachedPolicy]:
        db = await open_policy_cache(settings)
        try:
            found = [await db.policy(domain) for domain in await db.domains()]
        finally:
            await db.close()
        return [cached for cached in found if cached is not None]

    for cached in asyncio.run(read()):
        expires = dt.datetime.fromtimestamp(cached.expires_at, dt.UTC)
        print(
            f"{cached.domain}  id={cached.id}  mode={cached.policy.mode.value}  "
            f"mx={','.join(cached.policy.mx)}  expires={expires:%Y-%m-%dT%H:%M:%SZ}"
        )
    return EXIT_OK


def run_cache_purge(args: argparse.Namespace, settings: Settings) -> int:
    domains = _domains(args.domains)
    if domains is None:
        return EXIT_USAGE

    async def purge(wanted: list[str]) -> int:
        db = await open_policy_cache(settings)
        try:
            return sum([await db.forget(d) for d in wanted]) if wanted else await db.forget()
        finally:
            await db.close()

    count = asyncio.run(purge(domains))
    print(f"forgot {count} cached polic{'y' if count == 1 else 'ies'}")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
