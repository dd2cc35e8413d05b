"""Property tests: the parsers fail only in their own way, and valid input round-trips."""

from __future__ import annotations

import base64
import email.header
import string
from collections.abc import Callable
from typing import TypeVar

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gateway.core import allowlist, headers, mtasts, tlsrpt
from gateway.core.addresses import AddressError, normalise_domain
from gateway.core.allowlist import ParsedFile
from gateway.core.model import Reason, StsMode, StsPolicy, StsRecord
from gateway.core.mtasts import MAX_AGE_CAP, StsError
from gateway.core.tlsrpt import TlsRptError

T = TypeVar("T")
E = TypeVar("E", bound=Exception)

SETTINGS = settings(database=None, max_examples=400, deadline=None)

# --- strategies ------------------------------------------------------------------------------

GRAMMAR = st.text(alphabet=st.sampled_from(string.printable[:95] + ";:= \t\r\n"), max_size=200)
AWKWARD = st.sampled_from(["\r", "\x0b", "\x0c", "\x85", "\u2028", "\x00", "é", "١", "\ud800"])
MIXED = st.lists(st.one_of(GRAMMAR, AWKWARD), max_size=8).map("".join)
ANY_TEXT = st.one_of(st.text(max_size=200), GRAMMAR, MIXED)

STS_RECORDS = st.one_of(
    ANY_TEXT,
    ANY_TEXT.map(lambda s: "v=STSv1;" + s),
    st.tuples(st.sampled_from(["", " ", "\t", " \t ", "x", "\n"]), ANY_TEXT).map(
        lambda parts: f"v=STSv1{parts[0]};{parts[1]}"
    ),
)
STS_POLICIES = st.one_of(
    ANY_TEXT,
    ANY_TEXT.map(lambda s: "version: STSv1\nmode: enforce\nmax_age: 86400\n" + s),
    st.lists(
        st.tuples(
            st.sampled_from(["version", "mode", "max_age", "mx", "x", "Mode", ""]),
            st.sampled_from([":", ": ", ":\t", " : ", "="]),
            st.one_of(
                GRAMMAR,
                st.sampled_from(["STSv1", "enforce", "testing", "none", "86400", "*.a.example"]),
            ),
            st.sampled_from(["\n", "\r\n", "\r", "\x0b", ""]),
        ),
        max_size=8,
    ).map(lambda lines: "".join("".join(parts) for parts in lines)),
)
TLSRPT_RECORDS = st.one_of(
    ANY_TEXT,
    ANY_TEXT.map(lambda s: "v=TLSRPTv1;" + s),
    st.tuples(st.sampled_from(["", " ", "\t", " \t ", "x", "\n"]), ANY_TEXT).map(
        lambda parts: f"v=TLSRPTv1{parts[0]};{parts[1]}"
    ),
)
TOML_TEXT = st.one_of(
    ANY_TEXT,
    ANY_TEXT.map(lambda s: "[[domain]]\nname = " + s),
    st.lists(
        st.sampled_from(
            [
                "[[domain]]",
                "[domain]",
                'name = "nhs.net"',
                'name = "*.police.uk"',
                'name = "uk"',
                "name = 5",
                "expires = 2030-01-01",
                'expires = "x"',
                "expires = 10:00:00",
                'owner = "x"',
                "colour = 1",
                "domain = 1",
                "[[other]]",
                "",
                "# c",
            ]
        ),
        max_size=12,
    ).map("\n".join),
)

LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
# RFC 1123 §2.1: a host name's top-level label is never all-numeric.
HOST = (
    st.lists(LABEL, min_size=2, max_size=4)
    .filter(lambda labels: not labels[-1].isdigit())
    .map(".".join)
)
WSP = st.text(alphabet=" \t", max_size=3)


def attempt(parse: Callable[[T], object], error: type[E], argument: T) -> tuple[object, E | None]:
    """Run ``parse``; catch only ``error``, so that any other exception fails the test."""
    try:
        return parse(argument), None
    except error as exc:
        return None, exc


def starts_with_version(record: str, version: str) -> bool:
    """The version, then the field delimiter *WSP ";" (RFC 8461 §3.1, RFC 8460 §3)."""
    return record.startswith(version) and record[len(version) :].lstrip(" \t").startswith(";")


def random_case(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if flip else c for c, flip in zip(text, flips, strict=True))


# --- never raise anything but their own error ------------------------------------------------


@SETTINGS
@given(STS_RECORDS)
def test_parse_record_raises_only_sts_error(text: str) -> None:
    record, error = attempt(mtasts.parse_record, StsError, text)
    if error is not None:
        assert error.reason is Reason.STS_RECORD_INVALID
    else:
        assert isinstance(record, StsRecord)
        assert 1 <= len(record.id) <= 32
        assert record.id.isascii()
        assert record.id.isalnum()


@SETTINGS
@given(st.lists(STS_RECORDS, max_size=4))
def test_select_record_raises_only_sts_error(records: list[str]) -> None:
    chosen, error = attempt(mtasts.select_record, StsError, records)
    count = sum(starts_with_version(r, "v=STSv1") for r in records)
    if error is not None:
        expected = Reason.STS_NO_RECORD if count == 0 else Reason.STS_MULTIPLE_RECORDS
        assert error.reason is expected
        assert count != 1
    else:
        assert chosen in records
        assert [r for r in records if starts_with_version(r, "v=STSv1")] == [chosen]


@SETTINGS
@given(STS_POLICIES)
def test_parse_policy_raises_only_sts_error(text: str) -> None:
    policy, error = attempt(mtasts.parse_policy, StsError, text)
    if error is not None:
        assert error.reason is Reason.STS_POLICY_INVALID
    else:
        assert isinstance(policy, StsPolicy)
        assert policy.mode in StsMode
        assert 0 <= policy.max_age <= MAX_AGE_CAP
        assert policy.mx or policy.mode is StsMode.NONE
        # what parsed was split on LF (and CRLF) only
        for ch in "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029":
            assert ch not in "".join(policy.mx) + policy.mode


@SETTINGS
@given(st.lists(TLSRPT_RECORDS, max_size=4))
def test_tlsrpt_select_raises_only_its_error(records: list[str]) -> None:
    chosen, error = attempt(tlsrpt.select_record, TlsRptError, records)
    count = sum(starts_with_version(r, "v=TLSRPTv1") for r in records)
    if error is not None:
        assert error.missing is (count == 0)
        assert count != 1
    else:
        assert chosen in records


@SETTINGS
@given(TLSRPT_RECORDS)
def test_tlsrpt_parse_raises_only_its_error(text: str) -> None:
    rua, error = attempt(tlsrpt.parse_record, TlsRptError, text)
    if error is not None:
        assert error.missing is False
    else:
        assert isinstance(rua, tuple)
        assert rua
        assert all(uri.lower().startswith(("mailto:", "https://")) for uri in rua)


@SETTINGS
@given(TOML_TEXT)
def test_parse_toml_never_raises(text: str) -> None:
    parsed = allowlist.parse_toml(text, "f.toml")
    assert isinstance(parsed, ParsedFile)
    lines = text.count("\n") + 1
    for problem in parsed.problems:
        assert problem.file == "f.toml"
        assert 0 <= problem.line <= lines
    for entry in parsed.entries:
        assert normalise_domain(entry.domain) == entry.domain
        assert "." in entry.domain


@SETTINGS
@given(ANY_TEXT)
def test_parse_txt_never_raises(text: str) -> None:
    parsed = allowlist.parse_txt(text, "f.txt")
    assert isinstance(parsed, ParsedFile)
    lines = text.count("\n") + 1
    assert all(1 <= p.line <= lines for p in parsed.problems)
    assert all(1 <= e.line <= lines for e in parsed.entries)
    assert all(normalise_domain(e.domain) == e.domain for e in parsed.entries)


@SETTINGS
@given(st.one_of(st.text(max_size=80), MIXED, HOST, HOST.map(lambda h: h.upper() + ".")))
def test_normalise_domain_raises_only_address_error(name: str) -> None:
    domain, error = attempt(normalise_domain, AddressError, name)
    if error is not None:
        return
    assert isinstance(domain, str)
    assert domain.isascii()
    assert domain == domain.lower()
    assert not domain.endswith(".")
    assert 1 <= len(domain) <= 253
    assert all(1 <= len(label) <= 63 for label in domain.split("."))
    assert not domain.rsplit(".", 1)[-1].isdigit()  # RFC 1123 §2.1
    assert normalise_domain(domain) == domain  # idempotent


# --- round trips -----------------------------------------------------------------------------


@st.composite
def mx_patterns(draw: st.DrawFn) -> tuple[str, str]:
    """(as written in the policy, as parsed)."""
    host = draw(HOST)
    canonical = ("*." if draw(st.booleans()) else "") + host
    written = random_case(draw, canonical) + ("." if draw(st.booleans()) else "")
    return written, canonical


@st.composite
def policies(draw: st.DrawFn) -> tuple[str, StsMode, int, tuple[str, ...]]:
    mode = draw(st.sampled_from(StsMode))
    max_age = draw(st.integers(0, 9_999_999_999))
    digits = str(max_age).zfill(draw(st.integers(len(str(max_age)), 10)))
    mx = draw(st.lists(mx_patterns(), min_size=0 if mode is StsMode.NONE else 1, max_size=4))
    extensions = draw(
        st.lists(
            st.tuples(st.from_regex(r"[a-z][a-z0-9_.-]{0,8}", fullmatch=True), GRAMMAR),
            max_size=3,
        )
    )
    lines: list[tuple[str, str | None]] = [
        (f"version:{draw(WSP)}STSv1", None),
        (f"mode:{draw(WSP)}{mode}", None),
        (f"max_age: {digits}", None),
    ]
    lines += [(f"mx:{draw(WSP)}{written}{draw(WSP)}", canonical) for written, canonical in mx]
    for name, value in extensions:
        value = value.strip(" \t\r\n")
        if name not in ("version", "mode", "max_age", "mx") and value and value.isprintable():
            lines.append((f"{name}: {value}", None))
    lines = draw(st.permutations(lines))
    eols = draw(st.lists(st.sampled_from(["\n", "\r\n"]), min_size=len(lines), max_size=len(lines)))
    text = "".join(line + eol for (line, _), eol in zip(lines, eols, strict=True))
    if draw(st.booleans()):
        text = text.removesuffix("\n").removesuffix("\r")
    patterns = tuple(canonical for _, canonical in lines if canonical is not None)
    return text, mode, min(max_age, MAX_AGE_CAP), patterns


@SETTINGS
@given(policies())
def test_policy_round_trip(case: tuple[str, StsMode, int, tuple[str, ...]]) -> None:
    text, mode, max_age, mx = case
    policy = mtasts.parse_policy(text)
    assert (policy.mode, policy.max_age, policy.mx) == (mode, max_age, mx)


@SETTINGS
@given(policies(), st.sampled_from(["\r", "\x0b", "\x0c", "\x85", "\u2028"]))
def test_a_foreign_line_end_never_separates_fields(
    case: tuple[str, StsMode, int, tuple[str, ...]], sep: str
) -> None:
    """Replace the first line end of a valid policy with a character that is not LF/CRLF:
    the two lines become one, and when the first was a known field, the policy is invalid."""
    text, _, _, _ = case
    first_key = text.split("\n", 1)[0].split(":", 1)[0]
    joined = text.replace("\r\n", "\n").replace("\n", sep, 1)
    assume(sep in joined and first_key in ("version", "mode", "max_age", "mx"))
    _, error = attempt(mtasts.parse_policy, StsError, joined)
    assert error is not None, f"{sep!r} was taken for a line end"
    assert error.reason is Reason.STS_POLICY_INVALID


@st.composite
def records(draw: st.DrawFn) -> tuple[str, str]:
    record_id = draw(st.from_regex(r"[A-Za-z0-9]{1,32}", fullmatch=True))
    fields = [f"id={record_id}"]
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,10}", fullmatch=True))
        value = draw(st.from_regex(r"[\x21-\x3a\x3c\x3e-\x7e]{1,12}", fullmatch=True))
        if name != "id" and name != "v":
            fields.insert(draw(st.integers(0, len(fields))), f"{name}={value}")
    text = "v=STSv1" + draw(WSP) + ";" + draw(WSP)
    for index, item in enumerate(fields):
        text += item
        if index < len(fields) - 1:
            text += draw(WSP) + ";" + draw(WSP)
    if draw(st.booleans()):
        text += draw(WSP) + ";" + draw(WSP)
    return text, record_id


@SETTINGS
@given(records())
def test_record_round_trip(case: tuple[str, str]) -> None:
    text, record_id = case
    assert mtasts.parse_record(text).id == record_id
    assert mtasts.select_record(["v=spf1 -all", text]) == text


@SETTINGS
@given(
    st.lists(
        st.one_of(
            st.builds(lambda u, h: f"mailto:{u}@{h}", LABEL, HOST),
            st.builds(lambda h, p: f"https://{h}/{p}", HOST, LABEL),
        ),
        min_size=1,
        max_size=4,
    ),
    st.lists(st.tuples(WSP, WSP), min_size=4, max_size=4),
)
def test_tlsrpt_round_trip(uris: list[str], spaces: list[tuple[str, str]]) -> None:
    rua = uris[0] + "".join(
        f"{before},{after}{uri}" for uri, (before, after) in zip(uris[1:], spaces, strict=False)
    )
    assert tlsrpt.parse_record(f"v=TLSRPTv1; rua={rua};") == tuple(uris)
    before, after = spaces[0]
    assert tlsrpt.parse_record(f"v=TLSRPTv1{before};{after}rua={rua}") == tuple(uris)


URIS = st.lists(
    st.one_of(
        st.builds(lambda u, h: f"mailto:{u}@{h}", LABEL, HOST),
        st.builds(lambda h, p: f"https://{h}/{p}", HOST, LABEL),
    ),
    min_size=1,
    max_size=3,
)


@SETTINGS
@given(st.lists(URIS, min_size=1, max_size=3), st.lists(WSP, min_size=4, max_size=4))
def test_tlsrpt_every_rua_field_counts(fields: list[list[str]], spaces: list[str]) -> None:
    """RFC 8460 §3: more than one rua field is allowed; each adds its URIs, in order."""
    first, between = f"{spaces[0]};{spaces[1]}", f"{spaces[2]};{spaces[3]}"
    text = "v=TLSRPTv1" + first + between.join("rua=" + ",".join(uris) for uris in fields)
    expected = tuple(uri for uris in fields for uri in uris)
    assert tlsrpt.parse_record(text) == expected


@SETTINGS
@given(HOST, HOST)
def test_mx_matches_properties(host: str, other: str) -> None:
    parent = host.split(".", 1)[1]
    assert mtasts.mx_matches(host, host)
    assert mtasts.mx_matches(host.upper() + ".", host)
    assert mtasts.mx_matches("*." + parent, host)
    assert not mtasts.mx_matches("*." + host, host)
    assert not mtasts.mx_matches("*." + parent, "x." + host)
    if "." in parent:
        assert not mtasts.mx_matches("*." + parent.split(".", 1)[1], host)
    assert mtasts.mx_matches(host, other) is (host == other)


@SETTINGS
@given(HOST, st.lists(LABEL, min_size=1, max_size=3))
def test_allowlist_wildcard_covers_every_depth_below_only(parent: str, labels: list[str]) -> None:
    entries = allowlist.parse_txt(f"*.{parent}\n", "f").entries
    assert len(entries) == 1
    wildcard = entries[0]
    assert wildcard.covers(".".join([*labels, parent]))
    assert not wildcard.covers(parent)
    assert not wildcard.covers(labels[0] + parent)


# --- headers (RFC 5322 §3.5, RFC 2231 §5) -----------------------------------------------------

FIELD_NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,15}", fullmatch=True)
FIELD_VALUE = st.text(alphabet=string.ascii_letters + string.digits + " []()=?:.,@", max_size=30)
FIELD_BLOCKS = st.lists(
    st.tuples(FIELD_NAME, FIELD_VALUE, st.booleans()), min_size=1, max_size=6
).map(
    lambda fields: "".join(
        f"{name}: {value}\r\n" + ("\tfolded\r\n" if fold else "") for name, value, fold in fields
    ).encode()
)


@SETTINGS
@given(FIELD_BLOCKS, st.sampled_from([b"\r\n", b"\n"]), st.binary(max_size=40))
def test_a_message_without_a_body_reads_as_with_one(block: bytes, eol: bytes, body: bytes) -> None:
    """The body is optional (RFC 5322 §3.5): the fields alone read as they do before a body."""
    block = block.replace(b"\r\n", eol)
    alone = headers.parse(block)
    with_body = headers.parse(block + eol + body)
    assert alone.fields == with_body.fields
    assert alone.malformed is with_body.malformed is False
    assert alone.size == len(block)


LANGUAGE = st.from_regex(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8}){0,2}", fullmatch=True)


@SETTINGS
@given(
    st.lists(st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=20), max_size=4),
    st.lists(st.one_of(st.none(), LANGUAGE), min_size=4, max_size=4),
    st.sampled_from(["utf-8", "UTF-8", "iso-8859-1", "us-ascii"]),
)
def test_a_language_tag_never_changes_the_decoded_text(
    texts: list[str], languages: list[str | None], charset: str
) -> None:
    """RFC 2231 §5: ``charset*language`` decodes as the charset alone would."""

    def word(text: str, language: str | None) -> str:
        data = text.encode(charset, "replace")
        tag = f"{charset}*{language}" if language else charset
        return f"=?{tag}?b?{base64.b64encode(data).decode()}?="

    plain = " ".join(word(text, None) for text in texts)
    tagged = " ".join(word(text, lang) for text, lang in zip(texts, languages, strict=False))
    assert headers.decode_words(tagged) == headers.decode_words(plain)


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=120))
def test_ascii_text_without_an_encoded_word_reads_as_it_is(value: str) -> None:
    # What the email package itself makes of it, the way decode_words went before its
    # shortcut for values with no encoded word in them.
    assume("=?" not in value)
    assert headers.decode_words(value) == value
    assert headers.decode_words(value) == str(
        email.header.make_header(email.header.decode_header(value))
    )
