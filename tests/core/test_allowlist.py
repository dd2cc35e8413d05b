"""The organisation's allowlist: parsing entries, locating problems, matching domains."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.core import allowlist
from gateway.core.addresses import AddressError
from gateway.core.allowlist import Allowlist, AllowlistEntry, MatchStatus, ParsedFile
from gateway.core.policy import today_utc

DAY = dt.date(2030, 1, 31)


def entry(name: str, expires: dt.date | None = None, owner: str = "") -> AllowlistEntry:
    domain, wildcard = allowlist.parse_name(name)
    return AllowlistEntry(domain, wildcard, owner=owner, expires=expires, file="f", line=1)


# --- parse_name ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "domain", "wildcard"),
    [
        ("nhs.net", "nhs.net", False),
        ("NHS.net.", "nhs.net", False),
        ("*.police.uk", "police.uk", True),
        ("*.Police.UK.", "police.uk", True),
        ("bücher.example", "xn--bcher-kva.example", False),
        ("*.bücher.example", "xn--bcher-kva.example", True),
    ],
    ids=["exact", "case-and-dot", "wildcard", "wildcard-case-dot", "idn", "idn-wildcard"],
)
def test_parse_name(name: str, domain: str, wildcard: bool) -> None:
    assert allowlist.parse_name(name) == (domain, wildcard)


@pytest.mark.parametrize(
    "name",
    [
        "uk",
        "UK.",
        "*.uk",
        "*.com",
        "*",
        "*.",
        "*police.uk",
        "*.*.police.uk",
        "police.*.uk",
        "a b",
        "",
    ],
    ids=[
        "bare-tld",
        "bare-tld-dot",
        "wildcard-tld",
        "wildcard-com",
        "star",
        "star-dot",
        "star-glued",
        "two-stars",
        "star-in-the-middle",
        "space",
        "empty",
    ],
)
def test_parse_name_refuses(name: str) -> None:
    with pytest.raises(AddressError):
        allowlist.parse_name(name)


# --- parse_txt -------------------------------------------------------------------------------


def test_parse_txt_entries_comments_and_lines() -> None:
    text = (
        "# secure partners\n"  # 1
        "nhs.net\n"  # 2
        "\n"  # 3
        "*.police.uk   # all forces\n"  # 4
        "   cjsm.net  \r\n"  # 5
        "# nhs.uk\n"  # 6
        "bad_domain-.test\n"  # 7
        "uk\n"  # 8
        "Bücher.Example.\n"  # 9
    )
    parsed = allowlist.parse_txt(text, "quick.txt")
    assert isinstance(parsed, ParsedFile)
    assert [(e.name, e.line, e.file) for e in parsed.entries] == [
        ("nhs.net", 2, "quick.txt"),
        ("*.police.uk", 4, "quick.txt"),
        ("cjsm.net", 5, "quick.txt"),
        ("xn--bcher-kva.example", 9, "quick.txt"),
    ]
    assert all(e.expires is None for e in parsed.entries)
    assert [(p.file, p.line) for p in parsed.problems] == [("quick.txt", 7), ("quick.txt", 8)]
    assert "bad_domain-.test" in parsed.problems[0].message
    assert str(parsed.problems[1]).startswith("quick.txt:8: ")


def test_parse_txt_empty() -> None:
    assert allowlist.parse_txt("", "f") == ParsedFile((), ())
    assert allowlist.parse_txt("# only a comment\n\n", "f") == ParsedFile((), ())


# --- parse_toml ------------------------------------------------------------------------------

GOOD_TOML = """\
# partners
[[domain]]
name = "nhs.net"
owner = "IG team"
note = "NHSmail"
source = "DCB1596"

[[domain]]
note = "the name need not come first"
name = "*.police.uk"
expires = 2030-01-31

[[ domain ]]  # spaced header
name = "cjsm.net"
expires = 2030-01-31T23:30:00-02:00

[[domain]]
name = "local.example"
expires = 2030-01-31T10:00:00
"""


def test_parse_toml_entries() -> None:
    parsed = allowlist.parse_toml(GOOD_TOML, "partners.toml")
    assert parsed.problems == ()
    got = [(e.name, e.line, e.expires, e.owner, e.note, e.source) for e in parsed.entries]
    assert got == [
        ("nhs.net", 3, None, "IG team", "NHSmail", "DCB1596"),
        ("*.police.uk", 10, dt.date(2030, 1, 31), "", "the name need not come first", ""),
        # an offset date-time counts by its UTC date: 23:30 at -02:00 is 01:30 UTC next day
        ("cjsm.net", 14, dt.date(2030, 2, 1), "", "", ""),
        ("local.example", 18, dt.date(2030, 1, 31), "", "", ""),
    ]
    assert {e.file for e in parsed.entries} == {"partners.toml"}


@pytest.mark.parametrize(
    ("text", "line", "message", "kept"),
    [
        ('[[domain]]\nnote = "x"\nname = "not a domain!"\n', 3, "invalid domain", False),
        ('[[domain]]\nname = "uk"\n', 2, "too broad", False),
        ('[[domain]]\nname = "*.uk"\n', 2, "too broad", False),
        ('[[domain]]\nname = "a..b.example"\n', 2, "invalid domain", False),
        ('[[domain]]\nnote = "no name"\n', 1, "no name", False),
        ("[[domain]]\nname = 5\n", 2, "no name", False),
        ('[[domain]]\nname = "a.example"\nexpires = "2030-01-01"\n', 3, "malformed date", False),
        ('[[domain]]\nname = "a.example"\nexpires = 10:00:00\n', 3, "malformed date", False),
        ('[[domain]]\nname = "a.example"\nexpires = 20300101\n', 3, "malformed date", False),
        ('[[domain]]\nname = "a.example"\nimported = "today"\n', 3, "date for imported", False),
        ('[[domain]]\nname = "a.example"\ncolour = "red"\n', 3, "unknown key 'colour'", True),
        ('[[domain]]\nname = "a.example"\nexpirs = 2030-01-01\n', 3, "unknown key 'expirs'", True),
        ('[[domain]]\nname = "a.example"\nowner = 5\n', 3, "owner must be a string", True),
        ('[[domain]]\nname = "a.example"\nnote = \n', 3, "not valid TOML", False),
        ('[[domain]]\nname = "a.example"\nexpires = 2030-02-30\n', 3, "not valid TOML", False),
        ('[[domain]]\nname = "a.example"\nname = "b.example"\n', 3, "not valid TOML", False),
    ],
    ids=[
        "invalid-domain",
        "bare-tld",
        "wildcard-tld",
        "empty-label",
        "no-name",
        "name-not-a-string",
        "date-as-string",
        "time-not-date",
        "integer-date",
        "imported-as-string",
        "unknown-key",
        "misspelt-expires",
        "owner-not-a-string",
        "toml-syntax",
        "impossible-date",
        "duplicate-key",
    ],
)
def test_parse_toml_problems(text: str, line: int, message: str, kept: bool) -> None:
    parsed = allowlist.parse_toml(text, "f.toml")
    assert len(parsed.problems) == 1, parsed.problems
    problem = parsed.problems[0]
    assert (problem.file, problem.line) == ("f.toml", line)
    assert message in problem.message
    assert str(problem).startswith(f"f.toml:{line}: ")
    assert bool(parsed.entries) is kept


def test_parse_toml_locates_problems_of_later_entries() -> None:
    text = (
        '[[domain]]\nname = "a.example"\n'  # 1-2
        "\n"  # 3
        '[[domain]]\nnote = "second"\nname = "bad name"\n'  # 4-6
        "\n"  # 7
        '[[domain]]\nname = "c.example"\nwho = "x"\n'  # 8-10
        "\n"  # 11
        '[[domain]]\nname = "d.example"\n'  # 12-13
    )
    parsed = allowlist.parse_toml(text, "f")
    assert [(p.line, p.message.split(":")[0]) for p in parsed.problems] == [
        (6, "invalid domain 'bad name'"),
        (10, "unknown key 'who'"),
    ]
    assert [(e.name, e.line) for e in parsed.entries] == [
        ("a.example", 2),
        ("c.example", 9),
        ("d.example", 13),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('foo = 1\n[[domain]]\nname = "a.example"\n', "unknown top-level key 'foo'"),
        ("domain = 1\n", "'domain' must be an array of tables"),
        ('[domain]\nname = "a.example"\n', "'domain' must be an array of tables"),
    ],
    ids=["unknown-top-level", "domain-not-array", "domain-single-table"],
)
def test_parse_toml_document_problems(text: str, message: str) -> None:
    parsed = allowlist.parse_toml(text, "f")
    assert [p.line for p in parsed.problems] == [1]
    assert message in parsed.problems[0].message


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('[["domain"]]\nname = "uk"\n\n[[domain]]\nname = "ok.example"\n', 2),
        ('[[domain]]\nnote = """\nname = x\n"""\nname = "uk"\n', 5),
        ('domain = [\n  { name = "ok.example" },\n  { name = "uk" },\n]\n', 3),
    ],
    ids=["quoted-table-name", "name-inside-multiline-string", "inline-tables"],
)
def test_parse_toml_locates_entries_in_any_toml_spelling(text: str, line: int) -> None:
    parsed = allowlist.parse_toml(text, "f")
    assert [(p.line, "too broad" in p.message) for p in parsed.problems] == [(line, True)]


def test_parse_toml_empty() -> None:
    assert allowlist.parse_toml("", "f") == ParsedFile((), ())
    assert allowlist.parse_toml("# nothing yet\n", "f") == ParsedFile((), ())


@pytest.mark.parametrize(
    "text", ["x = " + "[" * 5000, "x = " + "{a = " * 5000], ids=["arrays", "inline-tables"]
)
def test_parse_toml_never_raises_on_deep_nesting(text: str) -> None:
    parsed = allowlist.parse_toml(text, "f")
    assert parsed.entries == ()
    assert parsed.problems


# --- expiry and matching ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expires", "today", "expired"),
    [
        (None, DAY, False),
        (DAY, DAY - dt.timedelta(days=1), False),
        (DAY, DAY, False),
        (DAY, DAY + dt.timedelta(days=1), True),
    ],
    ids=["no-expiry", "day-before", "on-the-day", "day-after"],
)
def test_expiry_is_inclusive(expires: dt.date | None, today: dt.date, expired: bool) -> None:
    assert entry("a.example", expires).expired(today) is expired
    status = Allowlist([entry("a.example", expires)]).match("a.example", today).status
    assert status is (MatchStatus.EXPIRED if expired else MatchStatus.ALLOWED)


@pytest.mark.parametrize(
    ("names", "domain", "status"),
    [
        (["nhs.net"], "nhs.net", MatchStatus.ALLOWED),
        (["nhs.net"], "mail.nhs.net", MatchStatus.NONE),
        (["nhs.net"], "nhs.net.evil.test", MatchStatus.NONE),
        (["nhs.net"], "xnhs.net", MatchStatus.NONE),
        (["*.police.uk"], "a.police.uk", MatchStatus.ALLOWED),
        (["*.police.uk"], "a.b.police.uk", MatchStatus.ALLOWED),
        (["*.police.uk"], "police.uk", MatchStatus.NONE),
        (["*.police.uk"], "xpolice.uk", MatchStatus.NONE),
        (["*.police.uk"], "police.uk.evil.test", MatchStatus.NONE),
        (["*.police.uk"], "uk", MatchStatus.NONE),
        (["*.police.uk", "police.uk"], "police.uk", MatchStatus.ALLOWED),
        (["bücher.example"], "xn--bcher-kva.example", MatchStatus.ALLOWED),
        (["*.bücher.example"], "mx.xn--bcher-kva.example", MatchStatus.ALLOWED),
        (["xn--bcher-kva.example"], "xn--bcher-kva.example", MatchStatus.ALLOWED),
        ([], "nhs.net", MatchStatus.NONE),
    ],
    ids=[
        "exact",
        "exact-not-child",
        "exact-not-suffix-attack",
        "exact-not-label-suffix",
        "wildcard-child",
        "wildcard-grandchild",
        "wildcard-not-itself",
        "wildcard-not-label-suffix",
        "wildcard-not-suffix-attack",
        "wildcard-not-parent",
        "wildcard-and-exact",
        "idn-entry-a-label-lookup",
        "idn-wildcard",
        "a-label-entry",
        "empty-list",
    ],
)
def test_match(names: list[str], domain: str, status: MatchStatus) -> None:
    match = Allowlist(entry(n) for n in names).match(domain, DAY)
    assert match.status is status
    assert (match.entry is None) is (status is MatchStatus.NONE)


def test_exact_beats_wildcard() -> None:
    wild, exact = entry("*.police.uk", owner="wild"), entry("met.police.uk", owner="exact")
    for order in ([wild, exact], [exact, wild]):
        match = Allowlist(order).match("met.police.uk", DAY)
        assert match.status is MatchStatus.ALLOWED
        assert match.entry is exact


def test_nearest_wildcard_wins() -> None:
    far, near = entry("*.police.uk", owner="far"), entry("*.met.police.uk", owner="near")
    match = Allowlist([far, near]).match("a.met.police.uk", DAY)
    assert match.entry is near


@pytest.mark.parametrize(
    ("entries", "domain", "status", "owner"),
    [
        ([("met.police.uk", "old", "exact")], "met.police.uk", MatchStatus.EXPIRED, "exact"),
        (
            [("met.police.uk", "old", "exact"), ("*.police.uk", None, "wild")],
            "met.police.uk",
            MatchStatus.ALLOWED,
            "wild",
        ),
        (
            [("*.police.uk", "old", "wild"), ("met.police.uk", None, "exact")],
            "met.police.uk",
            MatchStatus.ALLOWED,
            "exact",
        ),
        (
            [("nhs.net", "old", "first"), ("nhs.net", "new", "second")],
            "nhs.net",
            MatchStatus.ALLOWED,
            "second",
        ),
        (
            [("met.police.uk", "old", "exact"), ("*.police.uk", "old", "wild")],
            "met.police.uk",
            MatchStatus.EXPIRED,
            "exact",
        ),
        ([("*.police.uk", "old", "wild")], "a.police.uk", MatchStatus.EXPIRED, "wild"),
    ],
    ids=[
        "expired-alone",
        "expired-exact-current-wildcard",
        "expired-wildcard-current-exact",
        "expired-and-renewed-duplicate",
        "all-expired-reports-most-specific",
        "expired-wildcard",
    ],
)
def test_expired_only_when_nothing_current_matches(
    entries: list[tuple[str, str | None, str]], domain: str, status: MatchStatus, owner: str
) -> None:
    dates = {"old": DAY - dt.timedelta(days=1), "new": DAY, None: None}
    built = [entry(name, dates[when], owner) for name, when, owner in entries]
    match = Allowlist(built).match(domain, DAY)
    assert match.status is status
    assert match.entry is not None
    assert match.entry.owner == owner


def test_entry_covers() -> None:
    assert entry("*.police.uk").covers("a.b.police.uk")
    assert not entry("*.police.uk").covers("police.uk")
    assert entry("nhs.net").covers("nhs.net")
    assert not entry("nhs.net").covers("a.nhs.net")
    assert entry("*.police.uk").name == "*.police.uk"


@pytest.mark.parametrize(
    ("now", "date"),
    [
        (0.0, dt.date(1970, 1, 1)),
        (86_399.9, dt.date(1970, 1, 1)),
        (86_400.0, dt.date(1970, 1, 2)),
        (1_896_134_399.0, dt.date(2030, 1, 31)),
    ],
    ids=["epoch", "last-second-of-day", "midnight-utc", "2030-01-31"],
)
def test_today_utc(now: float, date: dt.date) -> None:
    assert today_utc(now) == date


# --- lint ------------------------------------------------------------------------------------


def test_lint_duplicates() -> None:
    parsed = allowlist.parse_toml(
        '[[domain]]\nname = "nhs.net"\n\n[[domain]]\nname = "NHS.net."\n\n'
        '[[domain]]\nname = "*.police.uk"\n\n[[domain]]\nname = "police.uk"\n',
        "a.toml",
    )
    more = allowlist.parse_txt("x.example\n*.police.uk\n", "b.txt")
    problems = allowlist.lint(parsed.entries + more.entries, DAY)
    assert [str(p) for p in problems] == [
        "a.toml:5: duplicate of a.toml:2",
        "b.txt:2: duplicate of a.toml:8",
    ]


@pytest.mark.parametrize(
    ("expires", "flagged"),
    [(DAY - dt.timedelta(days=1), True), (DAY, False), (None, False)],
    ids=["yesterday", "today", "never"],
)
def test_lint_expired(expires: dt.date | None, flagged: bool) -> None:
    problems = allowlist.lint([entry("old.example", expires)], DAY)
    assert [p.message for p in problems] == (
        ["old.example expired on 2030-01-30"] if flagged else []
    )


@pytest.mark.parametrize(
    ("name", "flagged"),
    [
        ("partner.gsi.gov.uk", True),
        ("gsi.gov.uk", True),
        ("*.gcsx.gov.uk", True),
        ("x.gse.gov.uk", True),
        ("a.b.gsx.gov.uk", True),
        ("gov.uk", False),
        ("notgsi.gov.uk", False),
        ("gsi.gov.uk.example", False),
    ],
    ids=["gsi", "gsi-apex", "gcsx-wildcard", "gse", "gsx-deep", "gov-uk", "lookalike", "suffix"],
)
def test_lint_warns_about_the_retired_gsi_family(name: str, flagged: bool) -> None:
    problems = allowlist.lint([entry(name)], DAY)
    assert any("retired" in p.message for p in problems) is flagged


def test_lint_clean() -> None:
    assert allowlist.lint([entry("nhs.net"), entry("*.police.uk"), entry("police.uk")], DAY) == []


def test_the_same_list_asked_again_answers_for_the_day_it_is_asked_about() -> None:
    # A list answers many messages; an entry expiring at midnight stops matching the next day.
    listed = Allowlist(
        [AllowlistEntry("school.test", wildcard=False, expires=dt.date(2026, 3, 31))]
    )
    for _ in range(2):
        assert listed.match("school.test", dt.date(2026, 3, 31)).status is MatchStatus.ALLOWED
        assert listed.match("school.test", dt.date(2026, 4, 1)).status is MatchStatus.EXPIRED
        assert listed.match("other.test", dt.date(2026, 3, 31)).status is MatchStatus.NONE
