"""Classification: which messages are safeguarding mail, from headers (and optionally body)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core import classify, headers

RULES = classify.Rules.build(
    "X-Safeguarding",
    ["yes", "true", "1"],
    ["SAFEGUARDING", "OFFICIAL-SENSITIVE", "SECURE", "ENCRYPT"],
    ["3de9faa6-9fe1-49b3-9a08-227a296b54a6"],
    [],
)
LABEL = "3de9faa6-9fe1-49b3-9a08-227a296b54a6"


def findings(raw: bytes, rules: classify.Rules = RULES) -> list[str]:
    return [str(f) for f in classify.classify_headers(headers.parse(raw), rules)]


@pytest.mark.parametrize(
    ("header_lines", "expected"),
    [
        ("Subject: hello", []),
        ("X-Safeguarding: yes", ["header: X-Safeguarding: yes"]),
        ("x-safeguarding:   TRUE  ", ["header: X-Safeguarding: TRUE"]),
        ("X-Safeguarding: 1", ["header: X-Safeguarding: 1"]),
        ("X-Safeguarding: no", []),
        ("X-Safeguarding: yesplease", []),
        ("Subject: [SECURE] referral", ["subject-marker: [SECURE]"]),
        ("Subject: Referral (secure)", ["subject-marker: (SECURE)"]),
        ("Subject: {Encrypt} notes", ["subject-marker: {ENCRYPT}"]),
        ("Subject: [ OFFICIAL-SENSITIVE ] minutes", ["subject-marker: [OFFICIAL-SENSITIVE]"]),
        ("Subject: [safeguarding] concern", ["subject-marker: [SAFEGUARDING]"]),
        ("Subject: secure without brackets", []),
        ("Subject: [SECURE) mismatched brackets", []),
        ("Subject: [INSECURE]", []),
        ("Subject: [SECURED]", []),
        ("Subject: =?utf-8?q?=5BSECURE=5D_caf=C3=A9?=", ["subject-marker: [SECURE]"]),
        ("Subject: =?utf-8?b?W3NlY3VyZV0gbm90ZXM=?=", ["subject-marker: [SECURE]"]),
        ("Subject: Re:\r\n [SECURE] folded", ["subject-marker: [SECURE]"]),
        (
            f"msip_labels: MSIP_Label_{LABEL}_Enabled=true; MSIP_Label_{LABEL}_SiteId=x",
            [f"sensitivity-label: {LABEL}"],
        ),
        (f"msip_labels: MSIP_Label_{LABEL.upper()}_Enabled=True", [f"sensitivity-label: {LABEL}"]),
        (f"msip_labels: MSIP_Label_{LABEL}_Enabled=false", []),
        ("msip_labels: MSIP_Label_00000000-0000-0000-0000-000000000000_Enabled=true", []),
        ("this line has no colon", ["malformed-header: a header line could not be read"]),
        (
            "Subject: =?x-unknown-charset?q?abc?=",
            ["malformed-subject: the subject could not be decoded"],
        ),
    ],
)
def test_classification(header_lines: str, expected: list[str]) -> None:
    raw = f"From: a@school.test\r\n{header_lines}\r\n\r\nbody [SECURE] in body\r\n".encode()
    assert findings(raw) == expected


# RFC 5322 §3.5: message = (fields / obs-fields) [CRLF body]: the body is optional, and a
# message of fields alone ends with the last field's CRLF. That is a readable header block.
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"From: a@school.test\r\nSubject: hello\r\n", []),
        (b"From: a@school.test\nSubject: hello\n", []),
        (b"From: a@school.test\r\nSubject: hello", []),
        (b"From: a@school.test\r\nSubject: [SECURE] notes\r\n", ["subject-marker: [SECURE]"]),
        (
            b"From: a@school.test\r\nSubject: Re:\r\n [SECURE] folded\r\n",
            ["subject-marker: [SECURE]"],
        ),
        (b"From: a@school.test\r\nX-Safeguarding: yes\r\n", ["header: X-Safeguarding: yes"]),
        (b"From: a@school.test\r\nSubject: hello\r\n\r\n", []),
        # what is not a field stays malformed, body or no body
        (
            b"From: a@school.test\r\nno colon here\r\n",
            ["malformed-header: a header line could not be read"],
        ),
        (
            b"From: a@school.test\r\nSubject: hello\r\n\r\r\n",
            ["malformed-header: a header line could not be read"],
        ),
    ],
    ids=[
        "crlf",
        "bare-lf",
        "no-final-line-end",
        "marker",
        "folded-marker",
        "header-rule",
        "empty-body",
        "bad-line",
        "stray-cr-line",
    ],
)
def test_a_message_without_a_body(raw: bytes, expected: list[str]) -> None:
    assert findings(raw) == expected
    assert headers.parse(raw).size == len(raw)


# RFC 2231 §5: encoded-word := "=?" charset ["*" language] "?" encoding "?" encoded-text "?=".
# The language tag names the text's language; the charset before it decodes the text.
@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("=?iso-8859-2*sl?Q?=5BSECURE=5D_p=F8=EDli=B9?=", ["subject-marker: [SECURE]"]),
        ("=?utf-8*en-us?b?W3NlY3VyZV0gbm90ZXM=?=", ["subject-marker: [SECURE]"]),
        ("=?UTF-8*EN?Q?=5BSEC?= =?utf-8?q?URE=5D?= notes", ["subject-marker: [SECURE]"]),
        ("=?us-ascii*en?q?no_marker?=", []),
        ("=?x-unknown*en?q?abc?=", ["malformed-subject: the subject could not be decoded"]),
        ("=?*en?q?abc?=", ["malformed-subject: the subject could not be decoded"]),
    ],
    ids=[
        "iso-8859-2-slovenian",
        "utf-8-base64-region",
        "marker-across-words",
        "no-marker",
        "unknown-charset-with-language",
        "language-without-charset",
    ],
)
def test_an_encoded_word_with_a_language_tag(subject: str, expected: list[str]) -> None:
    raw = f"From: a@school.test\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()
    assert findings(raw) == expected


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("=?iso-8859-2*sl?Q?p=F8=EDli=B9?=", "příliš"),
        ("=?utf-8*en?q?a?= =?utf-8*fr?q?b?=", "ab"),
        ("=?utf-8*en?q?a?= x =?utf-8?q?b?=", "a x b"),
        ("Re: =?utf-8*de-CH?q?Gr=C3=BCezi?=", "Re: Grüezi"),
    ],
    ids=["slovenian", "adjacent-words-two-languages", "words-with-text-between", "prefix"],
)
def test_decode_words_drops_the_language(value: str, text: str) -> None:
    assert headers.decode_words(value) == text


def test_a_continuation_before_any_field_is_malformed() -> None:
    assert findings(b" orphan\r\nSubject: hi\r\n\r\n") == [
        "malformed-header: a header line could not be read"
    ]


def test_markers_in_the_body_do_not_flag_without_body_rules() -> None:
    assert findings(b"Subject: hi\r\n\r\n[SECURE] X-Safeguarding: yes\r\n") == []


def test_findings_never_carry_the_subject_text() -> None:
    raw = b"Subject: [SECURE] Child J. Doe, 12 Oak Street\r\n\r\nbody\r\n"
    for finding in classify.classify_headers(headers.parse(raw), RULES):
        assert "Doe" not in finding.detail
        assert "Oak" not in finding.detail


def test_configured_markers_and_header_replace_the_defaults() -> None:
    rules = classify.Rules.build("X-Sensitive", ["on"], ["RESTRICTED"], [], [])
    assert findings(b"X-Sensitive: ON\r\nSubject: [SECURE]\r\n\r\n", rules) == [
        "header: X-Sensitive: ON"
    ]
    assert findings(b"Subject: (restricted) x\r\n\r\n", rules) == ["subject-marker: (RESTRICTED)"]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (b"Subject: x\r\n\r\nPlease see the child protection plan.\r\n", ["child protection"]),
        (b"Subject: x\r\n\r\nNothing to see.\r\n", []),
        (
            b"Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\nQ2hpbGQgUHJvdGVjdGlvbiBwbGFu\r\n",
            ["child protection"],
        ),
        (
            b"Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: application/octet-stream\r\n\r\nchild protection\r\n"
            b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n",
            [],
        ),
    ],
)
def test_body_keywords_in_text_parts_only(message: bytes, expected: list[str]) -> None:
    found = classify.scan_body(message, ["Child Protection"], 1 << 20)
    assert [f.detail.lower() for f in found] == expected


def test_body_scan_reads_only_up_to_its_limit() -> None:
    message = b"Subject: x\r\n\r\n" + b"a" * 5000 + b" child protection\r\n"
    assert classify.scan_body(message, ["child protection"], 1000) == ()
    assert classify.scan_body(message, ["child protection"], 10_000) != ()


@given(st.binary(max_size=2000))
def test_header_parse_and_classification_never_raise(raw: bytes) -> None:
    parsed = headers.parse(raw)
    classify.classify_headers(parsed, RULES)
    assert parsed.size <= len(raw) + 2


@given(st.lists(st.sampled_from([b"\r\n", b"\n", b"\r", b"a", b".", b"\r\n.\r\n"]), max_size=40))
def test_normalised_line_endings_are_all_crlf(parts: list[bytes]) -> None:
    out = headers.normalise_line_endings(b"".join(parts))
    assert b"\r" not in out.replace(b"\r\n", b"")
    assert b"\n" not in out.replace(b"\r\n", b"")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"a\nb", b"a\r\nb"),
        (b"a\rb", b"a\r\nb"),
        (b"a\r\nb", b"a\r\nb"),
        (b"a\n.\nMAIL FROM:<x>", b"a\r\n.\r\nMAIL FROM:<x>"),
        (b"\r\r\n", b"\r\n\r\n"),
    ],
)
def test_normalise_line_endings(raw: bytes, expected: bytes) -> None:
    assert headers.normalise_line_endings(raw) == expected


def test_header_block_and_unfolding() -> None:
    parsed = headers.parse(b"From: a@x.test\r\nSubject: one\r\n\ttwo\r\nX: y\r\n\r\nbody: no\r\n")
    assert parsed.fields == (("From", "a@x.test"), ("Subject", "one two"), ("X", "y"))
    assert not parsed.malformed
    assert parsed.get_all("subject") == ["one two"]


def test_trace_headers_cannot_be_split_by_a_hostile_helo() -> None:
    prefix = headers.trace_headers(
        helo="evil\r\nX-Injected: 1",
        client_ip="127.0.0.1",
        hostname="gw.test",
        protocol="ESMTP",
        queue_id="q1",
        date="Thu, 26 Nov 2026 10:00:00 GMT",
        summary="flagged",
    )
    lines = prefix.split(b"\r\n")
    assert not any(line.startswith(b"X-Injected") for line in lines)
    assert lines[0].startswith(b"Received: from evilX-Injected: 1 ([127.0.0.1])")
    assert prefix.endswith(b"X-Safeguarding-Gateway: flagged\r\n")


@given(
    st.text(alphabet="abc ChildProtectin\r\n=é", max_size=120),
    st.sampled_from(
        [
            b"",
            b"Content-Type: text/plain; charset=utf-8\r\n",
            b'Content-Type: text/plain; charset="iso-8859-1"\r\n',
            b"Content-Transfer-Encoding: quoted-printable\r\n",
            b"Content-Type: text/html\r\n",
        ]
    ),
    st.sampled_from([["child protection"], ["Protection"], ["é"]]),
)
def test_the_raw_bytes_shortcut_agrees_with_a_full_parse(
    body: str, header: bytes, keywords: list[str]
) -> None:
    charset = "latin-1" if b"iso-8859-1" in header else "utf-8"
    message = b"Subject: x\r\n" + header + b"\r\n" + body.encode(charset)
    assert classify.scan_body(message, keywords, 1 << 20) == classify.scan_parsed(message, keywords)


ENCODED_HEADERS = [
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: 'quoted-printable'\r\n",
    b'Content-Type: text/plain; charset="iso-8859-1"\r\n',
    b"Content-Type: text/plain; charset = windows-1252\r\n",
]
PLAIN_HEADERS = [
    b"Content-Type: text/plain; charset=utf-8\r\n",
    b"Content-Type: text/plain; charset=us-ascii\r\n",
]


def _in_case(text: bytes, upper: list[bool]) -> bytes:
    flips = upper + [False] * len(text)
    return bytes(c ^ 0x20 if flips[i] and chr(c).isalpha() else c for i, c in enumerate(text))


@given(st.sampled_from(ENCODED_HEADERS + PLAIN_HEADERS), st.lists(st.booleans(), max_size=60))
def test_an_encoded_part_is_seen_in_any_letter_case(header: bytes, upper: list[bool]) -> None:
    # RFC 2045 §5.1, §6.1: field names, "charset" and the encodings are case-insensitive.
    message = b"Subject: x\r\n" + _in_case(header, upper) + b"\r\nNothing to see here.\r\n"
    encoded = header in ENCODED_HEADERS
    assert classify.plainly_absent(message, ["child protection"]) is not encoded


@given(st.text(max_size=300))
def test_a_helo_name_is_kept_to_its_printable_characters(helo: str) -> None:
    prefix = headers.trace_headers(
        helo=helo,
        client_ip="127.0.0.1",
        hostname="gw.test",
        protocol="ESMTP",
        queue_id="q1",
        date="Thu, 26 Nov 2026 10:00:00 GMT",
        summary="flagged",
    )
    shown = "".join(ch for ch in helo if ch.isprintable())[:200] or "unknown"
    assert prefix.decode("utf-8", "surrogatepass").startswith(f"Received: from {shown} (")
