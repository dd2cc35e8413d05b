"""TLS-RPT (RFC 8460 §3): choosing and parsing the ``_smtp._tls`` TXT record."""

from __future__ import annotations

import pytest

from gateway.core import tlsrpt
from gateway.core.tlsrpt import TlsRptError

RECORD = "v=TLSRPTv1; rua=mailto:tlsrpt@example.com"

# --- select_record ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([RECORD], RECORD),
        (["v=spf1 -all", RECORD, "v=STSv1; id=1"], RECORD),
        (["v=TLSRPTv1;rua=https://r.example.com/"], "v=TLSRPTv1;rua=https://r.example.com/"),
        (["V=TLSRPTv1; rua=mailto:a@example.com", RECORD], RECORD),
    ],
    ids=["one", "among-others", "no-space", "wrong-case-discarded"],
)
def test_select_record(records: list[str], expected: str) -> None:
    assert tlsrpt.select_record(records) == expected


@pytest.mark.parametrize(
    ("records", "missing"),
    [
        ([], True),
        (["v=spf1 -all", "v=STSv1; id=1"], True),
        (["v=TLSRPTv1 rua=mailto:a@example.com"], True),
        (["v=TLSRPTv2; rua=mailto:a@example.com"], True),
        ([" v=TLSRPTv1; rua=mailto:a@example.com"], True),
        ([RECORD, "v=TLSRPTv1; rua=https://r.example.com/"], False),
        ([RECORD, RECORD], False),
    ],
    ids=[
        "none",
        "only-others",
        "no-semicolon",
        "other-version",
        "leading-space",
        "two",
        "two-identical",
    ],
)
def test_select_record_needs_exactly_one(records: list[str], missing: bool) -> None:
    """``missing`` is true only when there is no record at all (§3: not one => no TLSRPT)."""
    with pytest.raises(TlsRptError) as caught:
        tlsrpt.select_record(records)
    assert caught.value.missing is missing


# --- parse_record ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rua"),
    [
        (RECORD, ("mailto:tlsrpt@example.com",)),
        ("v=TLSRPTv1;rua=https://reports.example.com/v1", ("https://reports.example.com/v1",)),
        (
            "v=TLSRPTv1; rua=mailto:a@example.com,https://r.example.com/tlsrpt",
            ("mailto:a@example.com", "https://r.example.com/tlsrpt"),
        ),
        (
            "v=TLSRPTv1; rua=mailto:a@example.com , \tmailto:b@example.org",
            ("mailto:a@example.com", "mailto:b@example.org"),
        ),
        (
            "v=TLSRPTv1; rua=mailto:a@example.com,mailto:b@example.com,https://c.example/x",
            ("mailto:a@example.com", "mailto:b@example.com", "https://c.example/x"),
        ),
        ("v=TLSRPTv1; rua=mailto:a@example.com;", ("mailto:a@example.com",)),
        ("v=TLSRPTv1;\t rua=mailto:a@example.com \t; ", ("mailto:a@example.com",)),
        ("v=TLSRPTv1; ext=1; rua=mailto:a@example.com", ("mailto:a@example.com",)),
        ("v=TLSRPTv1; rua=mailto:a@example.com; x-y.z=v", ("mailto:a@example.com",)),
        ("v=TLSRPTv1; rua=MAILTO:a@example.com", ("MAILTO:a@example.com",)),
        ("v=TLSRPTv1; rua=mailto:a%2Cb@example.com", ("mailto:a%2Cb@example.com",)),
        (
            "v=TLSRPTv1; rua=mailto:a@example.com?subject=tls",
            ("mailto:a@example.com?subject=tls",),
        ),
        (
            "v=TLSRPTv1; rua=https://r.example.com/report?domain=example.com&x=1",
            ("https://r.example.com/report?domain=example.com&x=1",),
        ),
    ],
    ids=[
        "mailto",
        "https",
        "mailto-and-https",
        "whitespace-around-comma",
        "three",
        "trailing-semicolon",
        "whitespace-around-semicolon",
        "extension-first",
        "extension-after",
        "scheme-case-insensitive",
        "percent-encoded-comma",
        "query",
        "https-query-with-equals",
    ],
)
def test_parse_record_valid(text: str, rua: tuple[str, ...]) -> None:
    assert tlsrpt.parse_record(text) == rua


# RFC 8460 §3: field-delim = *WSP ";" *WSP, after the version as after every field; real
# domains publish "v=TLSRPTv1 ; rua=...". The record is theirs, not one to discard.
@pytest.mark.parametrize(
    "text",
    [
        "v=TLSRPTv1 ; rua=mailto:tlsrpt@example.com",
        "v=TLSRPTv1\t;rua=mailto:tlsrpt@example.com",
        "v=TLSRPTv1 \t ; rua=mailto:tlsrpt@example.com ;",
    ],
    ids=["space", "tab", "mixed-and-trailing"],
)
def test_whitespace_before_the_first_semicolon_is_a_record(text: str) -> None:
    assert tlsrpt.select_record(["v=spf1 -all", text]) == text
    assert tlsrpt.parse_record(text) == ("mailto:tlsrpt@example.com",)


def test_whitespace_before_the_semicolon_still_counts_as_a_second_record() -> None:
    with pytest.raises(TlsRptError) as caught:
        tlsrpt.select_record([RECORD, "v=TLSRPTv1 ; rua=mailto:b@example.com"])
    assert caught.value.missing is False


# RFC 8460 §3: tlsrpt-record = tlsrpt-version 1*(field-delim tlsrpt-field) and tlsrpt-field =
# tlsrpt-rua / tlsrpt-extension, so a second rua field is grammatical; "the record supports the
# ability to declare more than one rua, and if there exists more than one, the reporter MAY
# attempt to deliver to each". A second field adds its URIs; it is neither dropped nor an error.
@pytest.mark.parametrize(
    ("text", "rua"),
    [
        (
            "v=TLSRPTv1; rua=mailto:first@example.com; rua=mailto:second@example.com",
            ("mailto:first@example.com", "mailto:second@example.com"),
        ),
        (
            "v=TLSRPTv1; rua=mailto:a@example.com,https://r.example/a; rua=https://r.example/b",
            ("mailto:a@example.com", "https://r.example/a", "https://r.example/b"),
        ),
        (
            "v=TLSRPTv1; rua=mailto:a@example.com; ext=1; rua=mailto:b@example.com;",
            ("mailto:a@example.com", "mailto:b@example.com"),
        ),
    ],
    ids=["two-fields", "list-then-field", "extension-between"],
)
def test_every_rua_field_counts(text: str, rua: tuple[str, ...]) -> None:
    assert tlsrpt.parse_record(text) == rua


@pytest.mark.parametrize(
    "text",
    [
        "v=TLSRPTv1;",
        "v=TLSRPTv1; ext=1",
        "v=TLSRPTv1; rua=",
        "v=TLSRPTv1; rua=http://reports.example.com/",
        "v=TLSRPTv1; rua=ftp://reports.example.com/",
        "v=TLSRPTv1; rua=tlsrpt@example.com",
        "v=TLSRPTv1; rua=mailto:",
        "v=TLSRPTv1; rua=https://",
        "v=TLSRPTv1; rua=mailto:a@example.com,http://r.example.com/",
        "v=TLSRPTv1; rua=mailto:a@example.com,",
        "v=TLSRPTv1; rua=mailto:a@example.com,,mailto:b@example.com",
        "v=TLSRPTv1; rua=mailto:a b@example.com",
        "v=TLSRPTv1; rua=mailto:a@example.com; junk",
        "v=TLSRPTv1;; rua=mailto:a@example.com",
        "v=TLSRPTv1; _x=1; rua=mailto:a@example.com",
        "v=TLSRPTv1; RUA=mailto:a@example.com",
        "v=TLSRPTv2; rua=mailto:a@example.com",
        "rua=mailto:a@example.com",
        "v=TLSRPTv1 x; rua=mailto:a@example.com",
        "v=TLSRPTv1; rua=mailto:a@example.com; rua=http://r.example.com/",
        "",
    ],
    ids=[
        "version-alone",
        "no-rua",
        "empty-rua",
        "http",
        "ftp",
        "no-scheme",
        "empty-mailto",
        "empty-https",
        "one-bad-of-two",
        "trailing-comma",
        "empty-between-commas",
        "space-in-uri",
        "field-without-equals",
        "empty-field",
        "bad-extension-name",
        "RUA-is-not-rua",
        "other-version",
        "no-version",
        "word-before-first-semicolon",
        "second-rua-bad",
        "empty",
    ],
)
def test_parse_record_invalid(text: str) -> None:
    with pytest.raises(TlsRptError) as caught:
        tlsrpt.parse_record(text)
    assert caught.value.missing is False
    assert caught.value.detail


def test_tlsrpt_error_is_a_value_error() -> None:
    assert issubclass(TlsRptError, ValueError)
    assert TlsRptError("x").missing is False
