"""Importing a published CSV list of domains: which rows become entries, what a newer copy
changes, and a written file that the allowlist loader and lint accept as it is."""

from __future__ import annotations

import csv
import datetime as dt
import io
import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.allowlist import AllowlistEntry, lint, parse_name, parse_toml
from gateway.core.listimport import (
    ColumnNotFound,
    ImportHeader,
    ImportOptions,
    ListedDomain,
    plan,
    quote,
    read_csv,
    render,
)

TODAY = dt.date(2026, 12, 1)
HEADER = "Organisation,ODS Code,Email Domain,Notes\r\n"


def names(text: str, column: str = "Email Domain") -> list[str]:
    return [d.name for d in read_csv(text, "list.csv", column).domains]


def warnings(text: str, column: str = "Email Domain") -> list[str]:
    return [str(w) for w in read_csv(text, "list.csv", column).warnings]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEADER + "Trust,A1,riverside.nhs.test,\r\n", ["riverside.nhs.test"]),
        ("\ufeff" + HEADER + "Trust,A1,riverside.nhs.test,\r\n", ["riverside.nhs.test"]),
        (HEADER.replace("\r\n", "\n") + "Trust,A1,riverside.nhs.test,\n", ["riverside.nhs.test"]),
        (HEADER + '"Eastmoor, and District",A2,"eastmoor.gov.test",""\r\n', ["eastmoor.gov.test"]),
        (HEADER + "Trust,A1,  RIVERSIDE.NHS.Test.  ,\r\n", ["riverside.nhs.test"]),
        (HEADER + "Schule,A3,bücher.sch.test,\r\n", ["xn--bcher-kva.sch.test"]),
        (HEADER + "Police,A4,*.Police.test,\r\n", ["*.police.test"]),
        (
            HEADER + "Police,A4,*.police.test,\r\nForce,A5,police.test,\r\n",
            ["*.police.test", "police.test"],
        ),
        (
            HEADER + '"Two\r\nlines",A1,one.test,"note\non two lines"\r\nB,A2,two.test,\r\n',
            ["one.test", "two.test"],
        ),
        (HEADER + "\r\n,,,\r\nTrust,A1,one.test,\r\n\r\n", ["one.test"]),
        (HEADER, []),
    ],
    ids=[
        "crlf",
        "bom",
        "lf",
        "quoted-fields",
        "spaces-case-dot",
        "idn",
        "wildcard",
        "wildcard-and-exact",
        "field-over-lines",
        "empty-lines",
        "header-only",
    ],
)
def test_rows_that_become_entries(text: str, expected: list[str]) -> None:
    assert names(text) == expected
    assert warnings(text) == []


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ("A,1,,\r\n", ["list.csv:2: no domain in this row, left out"]),
        ("A,1\r\n", ["list.csv:2: no domain in this row, left out"]),
        ("A,1,not a domain,\r\n", ["list.csv:2: invalid domain 'not a domain', left out"]),
        ("A,1,test,\r\n", ["list.csv:2: invalid domain 'test', left out"]),
        ("A,1,*.uk,\r\n", ["list.csv:2: invalid domain '*.uk', left out"]),
        ("A,1,192.0.2.1,\r\n", ["list.csv:2: invalid domain '192.0.2.1', left out"]),
        ("A,1,x.gsi.gov.uk,\r\n", ["list.csv:2: x.gsi.gov.uk is in the retired gsi.gov.uk family"]),
        ("A,1,one.test,\r\nB,2,ONE.test.,\r\n", ["list.csv:3: duplicate of line 2, left out"]),
        ('"A\r\nB",1,one.test,\r\nC,2,,\r\n', ["list.csv:4: no domain in this row, left out"]),
    ],
    ids=[
        "blank",
        "short-row",
        "invalid",
        "tld-alone",
        "wildcard-tld",
        "address",
        "retired-gsi",
        "duplicate",
        "line-after-multiline-field",
    ],
)
def test_rows_left_out_are_named_by_line(rows: str, expected: list[str]) -> None:
    found = warnings(HEADER + rows)
    assert len(found) == len(expected)
    for text, start in zip(found, expected, strict=True):
        assert text.startswith(start), text


@pytest.mark.parametrize(
    ("column", "spelled"),
    [
        ("Email Domain", "Email Domain"),
        ("email domain", "Email Domain"),
        (" EMAIL DOMAIN ", "Email Domain"),
    ],
)
def test_column_is_found_by_name_ignoring_case(column: str, spelled: str) -> None:
    parsed = read_csv("\ufeff" + HEADER + "A,1,one.test,\r\n", "list.csv", column)
    assert parsed.column == spelled
    assert [d.name for d in parsed.domains] == ["one.test"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            HEADER,
            "no column 'Domain'; the header row has 'Organisation', 'ODS Code', 'Email Domain'",
        ),
        ("", "the file is empty"),
        ("\ufeff", "the file is empty"),
    ],
    ids=["no-such-column", "empty", "bom-only"],
)
def test_missing_column_says_what_the_header_has(text: str, message: str) -> None:
    with pytest.raises(ColumnNotFound, match="^" + message.replace("(", r"\(")):
        read_csv(text, "list.csv", "Domain")


# --- a newer copy of the list ------------------------------------------------------------------


def listed(*names: str) -> list[ListedDomain]:
    return [ListedDomain(*parse_name(name), line=n) for n, name in enumerate(names, start=2)]


def existing(name: str, imported: dt.date | None, note: str = "") -> AllowlistEntry:
    domain, wildcard = parse_name(name)
    return AllowlistEntry(domain, wildcard, note=note, source="old list", imported=imported)


OPTIONS = ImportOptions("DCB1596, 2026-12", "it@school.test", dt.date(2027, 12, 31))


def test_first_import_adds_every_domain_dated_today() -> None:
    result = plan(listed("b.test", "a.test", "*.police.test"), [], OPTIONS, TODAY)
    assert result.added == ("*.police.test", "a.test", "b.test")
    assert result.removed == ()
    assert result.unchanged == 0
    assert [e.name for e in result.entries] == ["a.test", "b.test", "*.police.test"]
    for entry in result.entries:
        assert (entry.source, entry.owner, entry.expires) == (
            "DCB1596, 2026-12",
            "it@school.test",
            dt.date(2027, 12, 31),
        )
        assert entry.imported == TODAY


def test_newer_copy_adds_removes_and_keeps_first_import_date() -> None:
    first = dt.date(2025, 3, 1)
    before = [
        existing("stays.test", first, note="checked by the DSL"),
        existing("goes.test", first),
        existing("hand-added.test", None),
    ]
    result = plan(listed("new.test", "stays.test", "hand-added.test"), before, OPTIONS, TODAY)
    assert result.added == ("new.test",)
    assert result.removed == ("goes.test",)
    assert result.unchanged == 2
    by_name = {e.name: e for e in result.entries}
    assert by_name["stays.test"].imported == first
    assert by_name["stays.test"].note == "checked by the DSL"
    assert by_name["stays.test"].source == "DCB1596, 2026-12"
    assert by_name["new.test"].imported == TODAY
    assert by_name["hand-added.test"].imported == TODAY  # no date recorded before: from now


def test_wildcard_and_exact_entries_are_different_entries() -> None:
    result = plan(listed("*.police.test"), [existing("police.test", TODAY)], OPTIONS, TODAY)
    assert result.added == ("*.police.test",)
    assert result.removed == ("police.test",)


# --- the written file --------------------------------------------------------------------------


def header(source: str = "DCB1596, 2026-12", file_name: str = "dcb1596.csv") -> ImportHeader:
    return ImportHeader(source, file_name, "ab" * 32, "Email Domain", TODAY)


@pytest.mark.parametrize(
    "options",
    [
        OPTIONS,
        ImportOptions("DCB1596"),
        ImportOptions('He said "secure"\\ \t\nnext line \x7f', "dsl@school.test"),
    ],
    ids=["all-keys", "source-only", "awkward-text"],
)
def test_written_file_loads_back_and_lints_clean(options: ImportOptions) -> None:
    result = plan(listed("a.test", "*.police.test", "bücher.test"), [], options, TODAY)
    text = render(result.entries, header(options.source, "list\n[[domain]].csv"))
    parsed = parse_toml(text, "out.toml")
    assert parsed.problems == ()
    assert lint(parsed.entries, TODAY) == []
    assert [(e.name, e.source, e.owner, e.expires, e.imported) for e in parsed.entries] == [
        (e.name, e.source, e.owner, e.expires, e.imported) for e in result.entries
    ]


def test_written_file_says_where_the_list_came_from() -> None:
    text = render(plan(listed("a.test"), [], OPTIONS, TODAY).entries, header())
    comments = [line for line in text.splitlines() if line.startswith("#")]
    assert '# source: "DCB1596, 2026-12"' in comments
    assert '# file:   "dcb1596.csv"' in comments
    assert f"# sha256: {'ab' * 32}" in comments
    assert "# date:   2026-12-01" in comments
    assert "imported = 2026-12-01" in text


@given(st.text())
def test_quote_round_trips_any_text(text: str) -> None:
    assert tomllib.loads(f"key = {quote(text)}")["key"] == text
    assert "\n" not in quote(text)


_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_DOMAIN = st.lists(_LABEL, min_size=1, max_size=3).map(lambda labels: ".".join([*labels, "test"]))


# Python's csv writer quotes a field holding "\r" only when "\r" is in its line terminator;
# spreadsheets always quote it, so a bare "\r" is left out of the generated text.
_TEXT = st.text(st.characters(blacklist_characters="\r"), max_size=20)


@given(
    st.lists(st.tuples(_TEXT, _DOMAIN), max_size=12),
    st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    st.sampled_from(["\r\n", "\n"]),
)
def test_any_csv_a_spreadsheet_writes_gives_its_domains_back(
    rows: list[tuple[str, str]], quoting: int, newline: str
) -> None:
    out = io.StringIO()
    writer = csv.writer(out, quoting=quoting, lineterminator=newline)
    writer.writerow(["Organisation", "Email Domain"])
    writer.writerows(rows)
    parsed = read_csv("\ufeff" + out.getvalue(), "list.csv", "Email Domain")
    expected = list(dict.fromkeys(domain for _, domain in rows))
    assert [d.name for d in parsed.domains] == expected
    assert len(parsed.warnings) == len(rows) - len(expected)  # one per duplicate
