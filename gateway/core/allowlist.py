"""The organisation's secure-email allowlist: parse entries, find problems, match domains.

An entry names a domain exactly (``nhs.net``) or all its subdomains (``*.police.uk``: any depth
below police.uk, not police.uk itself). Entries may carry ``note``, ``owner``, ``source``, an
``expires`` date (an entry counts up to and including that date, UTC, and not after it) and the
``imported`` date that ``gateway allowlist import`` records.
Parsing takes text, never a path: the adapter in ``gateway.allowlists`` reads the files.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from gateway.core.addresses import AddressError, is_subdomain, normalise_domain

ENTRY_KEYS = frozenset({"name", "note", "owner", "source", "expires", "imported"})
# The retired Government Secure Intranet family: mail to these no longer goes over a secure
# network, so listing them is almost certainly a stale entry.
RETIRED_GSI = ("gsi.gov.uk", "gse.gov.uk", "gcsx.gov.uk", "gsx.gov.uk")
_TABLE_HEADER = re.compile(r"""\s*\[\[\s*(?:domain|"domain"|'domain')\s*\]\]""")
_INLINE_ARRAY = re.compile(r"""\s*(?:domain|"domain"|'domain')\s*=\s*\[""")
_KEY = re.compile(r"\s*([A-Za-z0-9_-]+)\s*=")


@dataclass(frozen=True)
class AllowlistEntry:
    domain: str  # canonical, without the "*."
    wildcard: bool
    note: str = ""
    owner: str = ""
    source: str = ""
    expires: dt.date | None = None
    imported: dt.date | None = None  # when `gateway allowlist import` first listed it
    file: str = ""
    line: int = 0

    @property
    def name(self) -> str:
        return f"*.{self.domain}" if self.wildcard else self.domain

    def expired(self, today: dt.date) -> bool:
        return self.expires is not None and today > self.expires

    def covers(self, domain: str) -> bool:
        return is_subdomain(domain, self.domain) if self.wildcard else domain == self.domain


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class MatchStatus(StrEnum):
    ALLOWED = "allowed"
    EXPIRED = "expired"
    NONE = "none"


@dataclass(frozen=True)
class AllowlistMatch:
    status: MatchStatus
    entry: AllowlistEntry | None = None


@dataclass(frozen=True)
class ParsedFile:
    entries: tuple[AllowlistEntry, ...]
    problems: tuple[Problem, ...]


def parse_toml(text: str, file: str) -> ParsedFile:
    """Parse an allowlist file of ``[[domain]]`` tables."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _toml_error_line(exc)
        return ParsedFile((), (Problem(file, line, f"not valid TOML: {exc}"),))
    except RecursionError:
        return ParsedFile((), (Problem(file, 1, "not valid TOML: nested too deeply"),))
    problems: list[Problem] = []
    unknown = sorted(set(document) - {"domain"})
    for key in unknown:
        problems.append(Problem(file, 1, f"unknown top-level key {key!r} (expected [[domain]])"))
    tables = document.get("domain", [])
    if not isinstance(tables, list):
        return ParsedFile((), (Problem(file, 1, "'domain' must be an array of tables"),))
    positions = _entry_lines(text)
    entries: list[AllowlistEntry] = []
    for index, table in enumerate(tables):
        lines = positions[index] if index < len(positions) else {}
        entry = _entry_from_table(table, file, lines, problems)
        if entry is not None:
            entries.append(entry)
    return ParsedFile(tuple(entries), tuple(problems))


def parse_txt(text: str, file: str) -> ParsedFile:
    """Parse a plain list: one domain (or ``*.domain``) a line, ``#`` starts a comment."""
    entries: list[AllowlistEntry] = []
    problems: list[Problem] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        name = raw.split("#", 1)[0].strip()
        if not name:
            continue
        try:
            domain, wildcard = parse_name(name)
        except AddressError as exc:
            problems.append(Problem(file, number, f"invalid domain {name!r}: {exc}"))
            continue
        entries.append(AllowlistEntry(domain, wildcard, file=file, line=number))
    return ParsedFile(tuple(entries), tuple(problems))


def parse_name(name: str) -> tuple[str, bool]:
    """``*.police.uk`` -> ("police.uk", True); ``NHS.net.`` -> ("nhs.net", False)."""
    wildcard = name.startswith("*.")
    domain = normalise_domain(name[2:] if wildcard else name)
    if "." not in domain:
        raise AddressError("a top-level domain alone is too broad")
    return domain, wildcard


def _entry_from_table(
    table: object, file: str, lines: dict[str, int], problems: list[Problem]
) -> AllowlistEntry | None:
    header = lines.get("", 0)
    line = lines.get("name", header)

    def at(key: str) -> int:
        return lines.get(key, line)

    if not isinstance(table, dict):
        problems.append(Problem(file, header, "entry is not a table"))
        return None
    for key in sorted(set(table) - ENTRY_KEYS):
        problems.append(Problem(file, at(key), f"unknown key {key!r}"))
    name = table.get("name")
    if not isinstance(name, str):
        problems.append(Problem(file, line, "entry has no name"))
        return None
    try:
        domain, wildcard = parse_name(name)
    except AddressError as exc:
        problems.append(Problem(file, line, f"invalid domain {name!r}: {exc}"))
        return None
    texts: dict[str, str] = {}
    for key in ("note", "owner", "source"):
        value = table.get(key, "")
        if not isinstance(value, str):
            problems.append(Problem(file, at(key), f"{key} must be a string"))
            value = ""
        texts[key] = value
    dates: dict[str, dt.date | None] = {}
    for key in ("expires", "imported"):
        try:
            dates[key] = _date(table.get(key))
        except ValueError:
            problems.append(Problem(file, at(key), f"malformed date for {key}: {table[key]!r}"))
            return None
    return AllowlistEntry(
        domain,
        wildcard,
        note=texts["note"],
        owner=texts["owner"],
        source=texts["source"],
        expires=dates["expires"],
        imported=dates["imported"],
        file=file,
        line=line,
    )


def _date(value: object) -> dt.date | None:
    """A TOML date, or a date-time taken as its UTC day; ValueError for anything else."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).date() if value.tzinfo else value.date()
    if isinstance(value, dt.date):
        return value
    raise ValueError(value)


def _entry_lines(text: str) -> list[dict[str, int]]:
    """For each ``[[domain]]`` entry in order, the line of each key (and of the entry itself,
    under ""): tomllib keeps no positions, so problems are located by a scan of the text, and
    each problem names the line a person must fix. The scan knows the spellings a person
    writes: a quoted table name, multi-line strings, and the inline ``domain = [{...}]`` form.
    """
    tables: list[dict[str, int]] = []
    in_entry = in_inline = False
    quote: str | None = None
    for number, raw in enumerate(text.split("\n"), start=1):
        if quote is not None:  # inside a multi-line string: nothing here is a key
            if raw.count(quote) % 2 == 1:
                quote = None
            continue
        if _TABLE_HEADER.match(raw):
            tables.append({"": number})
            in_entry, in_inline = True, False
        elif raw.lstrip().startswith("["):
            in_entry = in_inline = False
        elif _INLINE_ARRAY.match(raw):
            in_entry, in_inline = False, True
        if in_inline:
            for _ in range(raw.count("{")):
                tables.append({"": number, "name": number})
            in_inline = "]" not in raw.split("#", 1)[0].rsplit("}", 1)[-1]
        elif in_entry and (key := _KEY.match(raw)) is not None:
            tables[-1].setdefault(key.group(1), number)
        for opener in ('"""', "'''"):
            if raw.count(opener) % 2 == 1:
                quote = opener
                break
    return tables


def _toml_error_line(exc: tomllib.TOMLDecodeError) -> int:
    found = re.search(r"line (\d+)", str(exc))
    return int(found.group(1)) if found else 1


def lint(entries: Sequence[AllowlistEntry], today: dt.date) -> list[Problem]:
    """Problems that only show across entries, or with the date: duplicates and expiry."""
    problems: list[Problem] = []
    seen: dict[str, AllowlistEntry] = {}
    for entry in entries:
        first = seen.get(entry.name)
        if first is not None:
            problems.append(
                Problem(entry.file, entry.line, f"duplicate of {first.file}:{first.line}")
            )
        else:
            seen[entry.name] = entry
        retired = next(
            (g for g in RETIRED_GSI if entry.domain == g or is_subdomain(entry.domain, g)), None
        )
        if retired is not None:
            problems.append(
                Problem(entry.file, entry.line, f"{entry.name} is in the retired {retired} family")
            )
        if entry.expired(today):
            assert entry.expires is not None
            problems.append(
                Problem(entry.file, entry.line, f"{entry.name} expired on {entry.expires}")
            )
    return problems


_REMEMBERED = 4096


class Allowlist:
    """Entries indexed for matching. The most specific entry that has not expired wins; an
    expired entry is reported only when nothing current matches."""

    def __init__(self, entries: Iterable[AllowlistEntry]) -> None:
        self.entries = tuple(entries)
        self._exact: dict[str, list[AllowlistEntry]] = {}
        self._wild: dict[str, list[AllowlistEntry]] = {}
        for entry in self.entries:
            index = self._wild if entry.wildcard else self._exact
            index.setdefault(entry.domain, []).append(entry)
        # Answers already given: the entries never change (a reload builds a new Allowlist),
        # so a domain on a day has one answer; every recipient and sender domain of every
        # message asks. Bounded: started again past _REMEMBERED answers.
        self._answers: dict[tuple[str, dt.date], AllowlistMatch] = {}

    def match(self, domain: str, today: dt.date) -> AllowlistMatch:
        key = (domain, today)
        found = self._answers.get(key)
        if found is None:
            found = self._match(domain, today)
            if len(self._answers) >= _REMEMBERED:
                self._answers.clear()
            self._answers[key] = found
        return found

    def _match(self, domain: str, today: dt.date) -> AllowlistMatch:
        candidates = list(self._exact.get(domain, ()))
        labels = domain.split(".")
        for start in range(1, len(labels)):  # nearest parent first: most specific wildcard
            candidates.extend(self._wild.get(".".join(labels[start:]), ()))
        for entry in candidates:
            if not entry.expired(today):
                return AllowlistMatch(MatchStatus.ALLOWED, entry)
        if candidates:
            return AllowlistMatch(MatchStatus.EXPIRED, candidates[0])
        return AllowlistMatch(MatchStatus.NONE)
