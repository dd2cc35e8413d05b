"""Import a published list of secure-email domains (a CSV file) into an allowlist file.

Lists such as NHS England's DCB1596 accredited secure-email domains are published as CSV with
a header row (RFC 4180): the domain is one named column among others, the file often starts
with a UTF-8 byte order mark and ends its lines with CRLF, and fields may be quoted. A row
whose domain cannot be an entry (blank, not a domain, a duplicate, a retired GSI domain) is
left out with a warning that names its line, so that ``gateway allowlist lint`` is clean on the
result. A newer copy of the list is compared with the file it replaces: what was added, what
was removed, and a domain that stays keeps the date it was first imported.

Pure: text in, text out; the adapter in ``gateway.cli.allowlist`` reads and writes the files.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.core.addresses import AddressError, is_subdomain
from gateway.core.allowlist import RETIRED_GSI, AllowlistEntry, Problem, parse_name

_BOM = "\ufeff"


class ColumnNotFound(ValueError):
    """The CSV has no header row, or none of its columns has the name asked for."""


@dataclass(frozen=True)
class ListedDomain:
    domain: str  # canonical A-label form, without the "*."
    wildcard: bool
    line: int  # where the CSV row ends (a quoted field may span lines)

    @property
    def name(self) -> str:
        return f"*.{self.domain}" if self.wildcard else self.domain


@dataclass(frozen=True)
class CsvDomains:
    column: str  # the column's name as the header row spells it
    domains: tuple[ListedDomain, ...]  # each once, in the order of the file
    warnings: tuple[Problem, ...]


@dataclass(frozen=True)
class ImportOptions:
    source: str
    owner: str = ""
    expires: dt.date | None = None


@dataclass(frozen=True)
class ImportPlan:
    entries: tuple[AllowlistEntry, ...]  # what the file will hold, sorted by name
    added: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: int


@dataclass(frozen=True)
class ImportHeader:
    source: str
    file_name: str
    sha256: str
    column: str
    today: dt.date


def read_csv(text: str, file: str, column: str) -> CsvDomains:
    """The domains in ``column`` (matched ignoring case and surrounding spaces)."""
    reader = csv.reader(io.StringIO(text.removeprefix(_BOM), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ColumnNotFound("the file is empty: no header row") from None
    except csv.Error as exc:
        raise ColumnNotFound(f"line 1: not CSV: {exc}") from None
    names = [cell.strip().casefold() for cell in header]
    if column.strip().casefold() not in names:
        shown = ", ".join(repr(cell.strip()) for cell in header if cell.strip())
        raise ColumnNotFound(f"no column {column!r}; the header row has {shown or 'none'}")
    index = names.index(column.strip().casefold())
    domains: dict[str, ListedDomain] = {}
    warnings: list[Problem] = []
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            warnings.append(Problem(file, reader.line_num, f"not CSV, row left out: {exc}"))
            continue
        if not any(cell.strip() for cell in row):
            continue  # an empty line, or a spreadsheet's row of empty cells
        found = _listed(row[index] if index < len(row) else "", reader.line_num, file)
        if isinstance(found, Problem):
            warnings.append(found)
        elif (first := domains.get(found.name)) is not None:
            warnings.append(Problem(file, found.line, f"duplicate of line {first.line}, left out"))
        else:
            domains[found.name] = found
    return CsvDomains(header[index].strip(), tuple(domains.values()), tuple(warnings))


def _listed(cell: str, line: int, file: str) -> ListedDomain | Problem:
    text = cell.strip()
    if not text:
        return Problem(file, line, "no domain in this row, left out")
    try:
        domain, wildcard = parse_name(text)
    except AddressError as exc:
        return Problem(file, line, f"invalid domain {text!r}, left out: {exc}")
    retired = next((g for g in RETIRED_GSI if domain == g or is_subdomain(domain, g)), None)
    if retired is not None:
        return Problem(file, line, f"{text} is in the retired {retired} family, left out")
    return ListedDomain(domain, wildcard, line)


def plan(
    listed: Sequence[ListedDomain],
    existing: Sequence[AllowlistEntry],
    options: ImportOptions,
    today: dt.date,
) -> ImportPlan:
    """The file's new entries, and how they differ from the ones it holds now. Every entry
    takes this import's source, owner and expiry; one already in the file keeps its ``note``
    and the date it was first imported, so the file shows how long a domain has been listed."""
    before = {entry.name: entry for entry in existing}
    entries = []
    for item in listed:
        kept = before.get(item.name)
        entries.append(
            AllowlistEntry(
                item.domain,
                item.wildcard,
                note=kept.note if kept else "",
                owner=options.owner,
                source=options.source,
                expires=options.expires,
                imported=(kept.imported if kept else None) or today,
            )
        )
    entries.sort(key=lambda entry: (entry.domain, entry.wildcard))
    after = {entry.name for entry in entries}
    return ImportPlan(
        entries=tuple(entries),
        added=tuple(sorted(after - set(before))),
        removed=tuple(sorted(set(before) - after)),
        unchanged=len(after & set(before)),
    )


def render(entries: Sequence[AllowlistEntry], header: ImportHeader) -> str:
    """The allowlist file: a header saying where the list came from, then one ``[[domain]]``
    table per entry."""
    lines = [
        "# Imported by `gateway allowlist import`. Import a newer copy of the list rather than",
        "# editing this file: the next import replaces its entries (a domain that stays keeps",
        "# its note and the date it was first imported).",
        f"# source: {quote(header.source)}",
        f"# file:   {quote(header.file_name)}",
        f"# column: {quote(header.column)}",
        f"# sha256: {header.sha256}",
        f"# date:   {header.today.isoformat()}",
    ]
    for entry in entries:
        lines += ["", "[[domain]]", f"name = {quote(entry.name)}"]
        for key, value in (("note", entry.note), ("source", entry.source), ("owner", entry.owner)):
            if value:
                lines.append(f"{key} = {quote(value)}")
        if entry.expires is not None:
            lines.append(f"expires = {entry.expires.isoformat()}")
        if entry.imported is not None:
            lines.append(f"imported = {entry.imported.isoformat()}")
    return "\n".join(lines) + "\n"


# TOML v1.0.0 basic strings: '"' and '\' are escaped, and so is every control character
# (U+0000 to U+001F and U+007F, which may not appear literally), by its short form or \\uXXXX.
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f"}
_ESCAPES["\r"] = "\\r"


def quote(text: str) -> str:
    """``text`` as a TOML basic string (its own line-safe form: no raw newline ever)."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
