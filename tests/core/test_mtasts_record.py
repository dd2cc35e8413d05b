"""MTA-STS discovery (RFC 8461 §3.1): choosing and parsing the ``_mta-sts`` TXT record."""

from __future__ import annotations

import pytest

from gateway.core import mtasts
from gateway.core.model import Reason, StsRecord
from gateway.core.mtasts import StsError

# --- select_record ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        (["v=STSv1; id=abc"], "v=STSv1; id=abc"),
        (["v=spf1 -all", "v=STSv1; id=abc", "google-site-verification=x"], "v=STSv1; id=abc"),
        (["v=STSv1;id=abc"], "v=STSv1;id=abc"),
        # §3.1 discards only what does not start with v=STSv1; the survivor may still be
        # invalid, which is parse_record's business
        (["v=STSv1; junk"], "v=STSv1; junk"),
        (["V=STSv1; id=a", "v=STSv1; id=b"], "v=STSv1; id=b"),
        (["v=STSv10; id=a", "v=STSv1; id=b"], "v=STSv1; id=b"),
    ],
    ids=["one", "among-others", "no-space", "invalid-survivor", "case-sensitive", "v10"],
)
def test_select_record_keeps_the_one_sts_record(records: list[str], expected: str) -> None:
    assert mtasts.select_record(records) == expected


# RFC 8461 §3.1: sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
# and sts-field-delim = *WSP ";" *WSP: whitespace may come before the first ';' too, and real
# domains publish it. Such a record is the domain's record, not a stranger to be discarded.
WHITESPACE_BEFORE_DELIMITER = [
    ("v=STSv1 ; id=abc", "abc"),
    ("v=STSv1\t; id=abc", "abc"),
    ("v=STSv1 \t ;id=abc", "abc"),
    ("v=STSv1 ; id=abc ; ext=1 ;", "abc"),
    ("v=STSv1  ;  id=20190429T010101", "20190429T010101"),
]


@pytest.mark.parametrize(("text", "record_id"), WHITESPACE_BEFORE_DELIMITER)
def test_whitespace_before_the_first_semicolon_is_a_record(text: str, record_id: str) -> None:
    assert mtasts.select_record(["v=spf1 -all", text]) == text
    assert mtasts.parse_record(text).id == record_id


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        (["v=STSv1 ; id=a", "v=STSv1; id=b"], Reason.STS_MULTIPLE_RECORDS),
        (["v=STSv1 ; id=a", "v=STSv1\t; id=a"], Reason.STS_MULTIPLE_RECORDS),
        # whitespace belongs to the delimiter: anything else after the version is another tag
        (["v=STSv1 x; id=a"], Reason.STS_NO_RECORD),
        (["v=STSv1\n; id=a"], Reason.STS_NO_RECORD),
        (["v=STSv1\u00a0; id=a"], Reason.STS_NO_RECORD),
    ],
    ids=["spaced-and-plain", "two-spaced", "word-before-delimiter", "lf", "nbsp"],
)
def test_whitespace_before_the_semicolon_counts_once(records: list[str], reason: Reason) -> None:
    with pytest.raises(StsError) as caught:
        mtasts.select_record(records)
    assert caught.value.reason is reason


def test_select_record_takes_any_iterable() -> None:
    assert mtasts.select_record(r for r in ["x", "v=STSv1; id=1"]) == "v=STSv1; id=1"


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        ([], Reason.STS_NO_RECORD),
        (["v=spf1 -all"], Reason.STS_NO_RECORD),
        (["V=STSV1; id=abc"], Reason.STS_NO_RECORD),
        ([" v=STSv1; id=abc"], Reason.STS_NO_RECORD),
        (["v=STSv1 id=abc"], Reason.STS_NO_RECORD),
        (["v=STSv1"], Reason.STS_NO_RECORD),
        (["v=STSv2; id=abc"], Reason.STS_NO_RECORD),
        (["v=STSv1; id=a", "v=STSv1; id=b"], Reason.STS_MULTIPLE_RECORDS),
        (["v=STSv1; id=a", "v=STSv1; id=a"], Reason.STS_MULTIPLE_RECORDS),
        (["v=STSv1; id=a", "v=spf1", "v=STSv1; junk"], Reason.STS_MULTIPLE_RECORDS),
    ],
    ids=[
        "empty",
        "other-only",
        "wrong-case",
        "leading-space",
        "no-semicolon",
        "bare-version",
        "other-version",
        "two",
        "two-identical",
        "two-one-invalid",
    ],
)
def test_select_record_needs_exactly_one(records: list[str], reason: Reason) -> None:
    with pytest.raises(StsError) as caught:
        mtasts.select_record(records)
    assert caught.value.reason is reason


# --- parse_record ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "record_id", "extensions"),
    [
        ("v=STSv1; id=20160831085700Z;", "20160831085700Z", {}),
        ("v=STSv1;id=abc", "abc", {}),
        ("v=STSv1; id=abc", "abc", {}),
        ("v=STSv1;\tid=abc\t", "abc", {}),
        ("v=STSv1;  id=abc  ;  ", "abc", {}),
        ("v=STSv1; id=abc \t; \t", "abc", {}),
        ("v=STSv1; id=a", "a", {}),
        ("v=STSv1; id=" + "Z9" * 16, "Z9" * 16, {}),
        # compared as an opaque string: never case-folded
        ("v=STSv1; id=AbC123", "AbC123", {}),
        ("v=STSv1; id=first; id=second", "first", {}),
        ("v=STSv1; foo=bar; id=abc", "abc", {"foo": "bar"}),
        ("v=STSv1; id=abc; x-y.z_1=v:a/l!ue", "abc", {"x-y.z_1": "v:a/l!ue"}),
        ("v=STSv1; id=abc; ext=one; ext=two", "abc", {"ext": "one"}),
        # "ID" is not "id" (%s in the ABNF): an extension, beside the real id
        ("v=STSv1; ID=upper; id=lower", "lower", {"ID": "upper"}),
    ],
    ids=[
        "rfc-example",
        "no-whitespace",
        "space",
        "tabs",
        "spaces-around-semicolon",
        "mixed-whitespace-trailing",
        "one-char-id",
        "32-char-id",
        "opaque-case",
        "first-id-wins",
        "extension-before-id",
        "extension-charset",
        "first-extension-wins",
        "id-is-case-sensitive",
    ],
)
def test_parse_record_valid(text: str, record_id: str, extensions: dict[str, str]) -> None:
    record = mtasts.parse_record(text)
    assert isinstance(record, StsRecord)
    assert record.id == record_id
    assert dict(record.extensions) == extensions


@pytest.mark.parametrize(
    "text",
    [
        "v=STSv1;",
        "v=STSv1; ",
        "v=STSv1; foo=bar",
        "v=STSv1; id=",
        "v=STSv1; id=" + "a" * 33,
        "v=STSv1; id=abc_def",
        "v=STSv1; id=abc-def",
        "v=STSv1; id=abc.def",
        "v=STSv1; id=abc!",
        "v=STSv1; id=ab cd",
        "v=STSv1; id=abc\n",
        "v=STSv1; id=abc\r\n",
        "v=STSv1; id=äbc",
        "v=STSv1; id=١٢٣",
        "v=STSv1; id=１２３",
        "v=STSv1; ID=abc",
        "v=STSv1; id",
        "v=STSv1; id=abc; junk",
        "v=STSv1;; id=abc",
        "v=STSv1; id=abc;;",
        "v=STSv1; id=abc; foo=a=b",
        "v=STSv1; id=abc; foo=",
        "v=STSv1; id=abc; _foo=bar",
        "v=STSv1; id=abc; " + "e" * 33 + "=x",
        "v=STSv1; id=abc; foo=a b",
        "v=STSv1 id=abc",
        "v=STSv1 x; id=abc",
        "v=STSv2; id=abc",
        "",
        "id=abc",
    ],
    ids=[
        "version-alone",
        "version-and-space",
        "missing-id",
        "empty-id",
        "33-char-id",
        "underscore",
        "hyphen",
        "dot",
        "punctuation",
        "inner-space",
        "trailing-lf",
        "trailing-crlf",
        "non-ascii-letter",
        "arabic-digits",
        "fullwidth-digits",
        "upper-case-ID-only",
        "id-without-equals",
        "field-without-equals",
        "empty-field",
        "two-trailing-delimiters",
        "equals-in-extension-value",
        "empty-extension-value",
        "extension-name-underscore-first",
        "extension-name-too-long",
        "space-in-extension-value",
        "no-semicolon",
        "word-before-semicolon",
        "wrong-version",
        "empty",
        "no-version",
    ],
)
def test_parse_record_invalid(text: str) -> None:
    with pytest.raises(StsError) as caught:
        mtasts.parse_record(text)
    assert caught.value.reason is Reason.STS_RECORD_INVALID
    assert caught.value.detail
    assert str(caught.value) == caught.value.detail


def test_sts_error_is_a_value_error() -> None:
    assert issubclass(StsError, ValueError)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "v=STSv1; id=abc; v=STSv1",
            id="repeated-version-field",
        ),
        pytest.param(
            "v=STSv1; id=abc; id=not_an_id",
            id="later-duplicate-id-malformed",
        ),
    ],
)
def test_parse_record_first_duplicate_wins_whatever_follows(text: str) -> None:
    assert mtasts.parse_record(text).id == "abc"


def test_parse_record_rejects_what_select_would_discard() -> None:
    """parse_record checks the prefix itself, so a caller cannot skip select_record."""
    with pytest.raises(StsError) as caught:
        mtasts.parse_record("v=spf1 id=abc")
    assert caught.value.reason is Reason.STS_RECORD_INVALID
