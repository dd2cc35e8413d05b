"""MTA-STS policy text (RFC 8461 §3.2) and applying a policy's mx patterns (§4.1)."""

from __future__ import annotations

import pytest

from gateway.core import mtasts
from gateway.core.model import Reason, StsMode, StsPolicy
from gateway.core.mtasts import MAX_AGE_CAP, StsError


def policy_text(
    *,
    version: str = "STSv1",
    mode: str = "enforce",
    max_age: str = "604800",
    mx: tuple[str, ...] = ("mx1.example.com", "*.example.net"),
    extra: tuple[str, ...] = (),
    eol: str = "\n",
) -> str:
    lines = [f"version: {version}", f"mode: {mode}"]
    lines += [f"mx: {pattern}" for pattern in mx]
    lines += [f"max_age: {max_age}", *extra]
    return eol.join(lines) + eol


def invalid(text: str) -> StsError:
    with pytest.raises(StsError) as caught:
        mtasts.parse_policy(text)
    assert caught.value.reason is Reason.STS_POLICY_INVALID
    return caught.value


# --- valid policies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mode", "max_age", "mx"),
    [
        (policy_text(), StsMode.ENFORCE, 604800, ("mx1.example.com", "*.example.net")),
        (policy_text(eol="\r\n"), StsMode.ENFORCE, 604800, ("mx1.example.com", "*.example.net")),
        (
            "version: STSv1\r\nmode: testing\nmx: a.example.com\r\nmax_age: 86400",
            StsMode.TESTING,
            86400,
            ("a.example.com",),
        ),
        (policy_text().rstrip("\n"), StsMode.ENFORCE, 604800, ("mx1.example.com", "*.example.net")),
        (
            "mode: enforce\nmax_age: 60\nmx: b.example.com\nversion: STSv1\n",
            StsMode.ENFORCE,
            60,
            ("b.example.com",),
        ),
        (
            "version:STSv1\nmode:\t enforce \t\nmx:  a.example.com\t\nmax_age: 5  \n",
            StsMode.ENFORCE,
            5,
            ("a.example.com",),
        ),
        (
            policy_text(mode="testing"),
            StsMode.TESTING,
            604800,
            ("mx1.example.com", "*.example.net"),
        ),
        (policy_text(mode="none", mx=()), StsMode.NONE, 604800, ()),
        (policy_text(mode="none", mx=("a.example.com",)), StsMode.NONE, 604800, ("a.example.com",)),
    ],
    ids=[
        "lf",
        "crlf",
        "mixed-line-ends",
        "no-final-newline",
        "any-field-order",
        "whitespace-after-colon-and-at-end",
        "testing",
        "none-without-mx",
        "none-with-mx",
    ],
)
def test_parse_policy_valid(text: str, mode: StsMode, max_age: int, mx: tuple[str, ...]) -> None:
    policy = mtasts.parse_policy(text)
    assert isinstance(policy, StsPolicy)
    assert policy.mode is mode
    assert policy.max_age == max_age
    assert policy.mx == mx


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0),
        ("1", 1),
        ("86400", 86400),
        ("0000086400", 86400),
        (str(MAX_AGE_CAP), MAX_AGE_CAP),
        (str(MAX_AGE_CAP + 1), MAX_AGE_CAP),
        ("9999999999", MAX_AGE_CAP),
    ],
    ids=["zero", "one", "day", "leading-zeros-10-digits", "cap", "cap+1", "ten-nines"],
)
def test_max_age_digits_and_cap(value: str, expected: int) -> None:
    assert MAX_AGE_CAP == 31_557_600
    assert mtasts.parse_policy(policy_text(max_age=value)).max_age == expected


@pytest.mark.parametrize(
    "value",
    [
        "+1",
        "1_000",
        "١٢",
        "١٢٣٤",
        "１２",
        "12345678901",
        "-1",
        "",
        "1.5",
        "1e3",
        "0x10",
        "ten",
        "1 2",
    ],
    ids=[
        "plus",
        "underscore",
        "arabic-indic",
        "arabic-indic-4",
        "fullwidth",
        "11-digits",
        "negative",
        "empty",
        "decimal",
        "exponent",
        "hex",
        "word",
        "inner-space",
    ],
)
def test_max_age_invalid(value: str) -> None:
    invalid(policy_text(max_age=value))


@pytest.mark.parametrize(
    "version",
    ["STSv2", "stsv1", "STSV1", "STSv1.0", "STSv1 x", "v1", ""],
    ids=["v2", "lower", "upper-v", "dotted", "trailing-word", "short", "empty"],
)
def test_version_must_be_exactly_stsv1(version: str) -> None:
    invalid(policy_text(version=version))


@pytest.mark.parametrize(
    "mode",
    ["Enforce", "ENFORCE", "Testing", "NONE", "enforced", "report", "enforce testing", ""],
    ids=["title", "upper", "testing-title", "none-upper", "enforced", "report", "two", "empty"],
)
def test_mode_is_case_sensitive_and_exact(mode: str) -> None:
    invalid(policy_text(mode=mode))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n",
        "mode: enforce\nmx: a.example.com\nmax_age: 1\n",
        "version: STSv1\nmx: a.example.com\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\nmx: a.example.com\n",
        policy_text(mx=()),
        policy_text(mode="testing", mx=()),
        "version: STSv1\nmode: enforce\nMX: a.example.com\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\nmx: a.example.com\nmax_age: 1\ngarbage\n",
        "version: STSv1\nmode: enforce\nmx: a.example.com\nmax_age: 1\nbad key: x\n",
        "version: STSv1\nmode: enforce\nmx: a.example.com\nmax_age: 1\n_key: x\n",
        "version: STSv1\nmode: enforce\nmx: a.example.com\nmax_age: 1\nempty:\n",
        "version: STSv1\nmode: enförce\nmx: a.example.com\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\x00\nmx: a.example.com\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\x7f\nmx: a.example.com\nmax_age: 1\n",
    ],
    ids=[
        "empty",
        "blank-lines",
        "no-version",
        "no-mode",
        "no-max-age",
        "enforce-without-mx",
        "testing-without-mx",
        "MX-is-not-mx",
        "line-without-colon",
        "space-in-key",
        "key-starts-with-underscore",
        "empty-value",
        "non-ascii-in-mode",
        "nul",
        "del",
    ],
)
def test_parse_policy_invalid(text: str) -> None:
    error = invalid(text)
    assert error.detail


# --- line ends: LF or CRLF, nothing else -----------------------------------------------------

# Every character str.splitlines() splits on, apart from LF and CRLF.
NOT_LINE_ENDS = ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
NOT_LINE_END_IDS = ["CR", "VT", "FF", "FS", "GS", "RS", "NEL", "LS", "PS"]


@pytest.mark.parametrize("sep", NOT_LINE_ENDS, ids=NOT_LINE_END_IDS)
def test_only_lf_and_crlf_end_a_line(sep: str) -> None:
    """Split at ``sep`` this text would be a valid policy; it must not be one."""
    text = f"version: STSv1{sep}mode: enforce\nmx: mx.example.com\nmax_age: 86400\n"
    assert mtasts.parse_policy(text.replace(sep, "\n")).mode is StsMode.ENFORCE  # the control
    invalid(text)


@pytest.mark.parametrize("sep", NOT_LINE_ENDS, ids=NOT_LINE_END_IDS)
def test_no_line_can_be_smuggled_inside_a_value(sep: str) -> None:
    """A first ``mode: none`` hidden after ``sep`` must never take effect."""
    text = (
        f"note: hello{sep}mode: none\n"
        "version: STSv1\nmode: enforce\nmx: m.example.com\nmax_age: 9\n"
    )
    assert mtasts.parse_policy(text.replace(sep, "\n")).mode is StsMode.NONE  # the control
    outcome: StsMode | Reason
    try:
        outcome = mtasts.parse_policy(text).mode
    except StsError as exc:
        outcome = exc.reason
    assert outcome in (StsMode.ENFORCE, Reason.STS_POLICY_INVALID)


def test_split_policy_lines_splits_on_lf_and_strips_one_cr() -> None:
    assert mtasts.split_policy_lines("a\r\nb\nc\rd\x0be\x85f\u2028g") == [
        "a",
        "b",
        "c\rd\x0be\x85f\u2028g",
    ]


# --- duplicates and unknown keys -------------------------------------------------------------


def test_mx_lines_accumulate_in_order() -> None:
    text = policy_text(mx=("a.example.com", "*.b.example.com", "c.example.org"))
    assert mtasts.parse_policy(text).mx == ("a.example.com", "*.b.example.com", "c.example.org")


@pytest.mark.parametrize(
    ("extra_first", "field", "expected"),
    [
        ("mode: testing", "mode", StsMode.TESTING),
        ("max_age: 10", "max_age", 10),
        ("mode: none", "mode", StsMode.NONE),
    ],
    ids=["mode", "max_age", "mode-none"],
)
def test_other_duplicate_keys_first_wins(extra_first: str, field: str, expected: object) -> None:
    text = extra_first + "\n" + policy_text()
    assert getattr(mtasts.parse_policy(text), field) == expected


def test_duplicate_version_first_wins() -> None:
    assert mtasts.parse_policy(policy_text(extra=("version: STSv2",))).mode is StsMode.ENFORCE
    invalid("version: STSv2\n" + policy_text())


def test_a_bad_first_duplicate_is_not_rescued_by_a_good_second() -> None:
    invalid("mode: Enforce\n" + policy_text())
    invalid("max_age: +1\n" + policy_text())


def test_unknown_keys_are_ignored() -> None:
    plain = mtasts.parse_policy(policy_text())
    text = policy_text(extra=("foo: bar", "Mode: none", "x-y.z_1: a value: with colons"))
    policy = mtasts.parse_policy(text)
    assert (policy.mode, policy.max_age, policy.mx) == (plain.mode, plain.max_age, plain.mx)
    assert policy.extensions["foo"] == "bar"
    assert policy.extensions["x-y.z_1"] == "a value: with colons"


def test_utf8_in_an_unknown_field_is_allowed() -> None:
    policy = mtasts.parse_policy(policy_text(extra=("comment: géré par l'équipe",)))
    assert policy.mode is StsMode.ENFORCE


def test_non_ascii_in_a_known_field_stays_invalid() -> None:
    invalid(policy_text(mode="enforcé"))
    invalid(policy_text(mx=("bücher.example",)))


# --- mx patterns -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "stored"),
    [
        ("mx.example.com", "mx.example.com"),
        ("*.example.com", "*.example.com"),
        ("MX.Example.COM", "mx.example.com"),
        ("*.EXAMPLE.com", "*.example.com"),
        ("mx.example.com.", "mx.example.com"),
        ("*.example.com.", "*.example.com"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("a-b.c1.example", "a-b.c1.example"),
        ("a" * 63 + ".example", "a" * 63 + ".example"),
    ],
    ids=[
        "literal",
        "wildcard",
        "upper-case",
        "upper-case-wildcard",
        "trailing-dot",
        "wildcard-trailing-dot",
        "a-label",
        "hyphen-digit",
        "63-char-label",
    ],
)
def test_mx_pattern_valid(pattern: str, stored: str) -> None:
    assert mtasts.parse_policy(policy_text(mx=(pattern,))).mx == (stored,)


@pytest.mark.parametrize(
    "pattern",
    [
        "*example.com",
        "a.*.example.com",
        "*.*.example.com",
        "*.",
        "*",
        "example.*",
        ".example.com",
        "example..com",
        "example.com..",
        "mx_1.example.com",
        "-mx.example.com",
        "mx-.example.com",
        "mx.example.com:25",
        "[192.0.2.1]",
        "mx example.com",
        "a" * 64 + ".example",
        "*.com.*",
    ],
    ids=[
        "star-glued-to-label",
        "star-in-the-middle",
        "two-stars",
        "star-dot",
        "star",
        "star-at-the-end",
        "leading-dot",
        "empty-label",
        "two-trailing-dots",
        "underscore",
        "leading-hyphen",
        "trailing-hyphen",
        "port",
        "address-literal",
        "space",
        "64-char-label",
        "star-both-ends",
    ],
)
def test_mx_pattern_invalid(pattern: str) -> None:
    invalid(policy_text(mx=("good.example.com", pattern)))


# RFC 1123 §2.1: "a valid host name can never have the dotted-decimal form #.#.#.#, since at
# least the highest-level component label will be alphabetic". An mx pattern names MX hosts
# (RFC 8461 §3.2, §4.1), so an all-numeric top-level label makes it an address, not a pattern.
@pytest.mark.parametrize(
    ("pattern", "valid"),
    [
        ("1.2.3.4", False),
        ("127.0.0.1", False),
        ("*.0.0.1", False),
        ("mx.example.123", False),
        ("1.2.3.4.", False),
        ("1.2.3.example", True),
        ("123.example", True),
        ("mx.example.a1", True),
        ("mx.example.1a", True),
    ],
    ids=[
        "ipv4",
        "loopback",
        "wildcard-over-digits",
        "numeric-tld",
        "ipv4-trailing-dot",
        "numeric-labels-below-a-name",
        "numeric-first-label",
        "tld-letter-digit",
        "tld-digit-letter",
    ],
)
def test_mx_pattern_top_level_label_is_not_all_numeric(pattern: str, valid: bool) -> None:
    text = policy_text(mx=(pattern,))
    if valid:
        assert mtasts.parse_policy(text).mx == (pattern.lower(),)
    else:
        invalid(text)


# --- mx_matches and uncovered_hosts (§4.1) ---------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("mx.example.com", "mx.example.com", True),
        ("MX.Example.COM", "mx.example.com", True),
        ("mx.example.com", "MX.EXAMPLE.COM", True),
        ("mx.example.com.", "mx.example.com", True),
        ("mx.example.com", "mx.example.com.", True),
        ("mx.example.com", "mx2.example.com", False),
        ("mx.example.com", "example.com", False),
        ("example.com", "mx.example.com", False),
        ("mx.example.com", "mx.example.com.evil.test", False),
        ("*.example.com", "mx.example.com", True),
        ("*.Example.COM.", "MX.example.com.", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "a.b.example.com", False),
        ("*.example.com", ".example.com", False),
        ("*.example.com", "mx.example.org", False),
        ("*.example.com", "mx.notexample.com", False),
        ("*.example.com", "mxexample.com", False),
        ("*.xn--bcher-kva.example", "mx.xn--bcher-kva.example", True),
    ],
    ids=[
        "literal",
        "literal-case-pattern",
        "literal-case-host",
        "pattern-trailing-dot",
        "host-trailing-dot",
        "other-host",
        "parent",
        "child-of-literal",
        "suffix-attack",
        "wildcard-one-label",
        "wildcard-case-and-dots",
        "wildcard-not-the-parent",
        "wildcard-not-two-labels",
        "wildcard-empty-label",
        "wildcard-other-tld",
        "wildcard-label-suffix",
        "wildcard-no-dot",
        "wildcard-a-labels",
    ],
)
def test_mx_matches(pattern: str, host: str, matches: bool) -> None:
    assert mtasts.mx_matches(pattern, host) is matches


@pytest.mark.parametrize(
    ("hosts", "uncovered"),
    [
        ((), ()),
        (("mx1.example.com", "a.backup.example.com"), ()),
        (
            ("mx2.example.com", "mx1.example.com", "backup.example.com", "a.b.backup.example.com"),
            ("mx2.example.com", "backup.example.com", "a.b.backup.example.com"),
        ),
        (("MX1.EXAMPLE.COM.",), ()),
    ],
    ids=["no-hosts", "all-covered", "some-uncovered-in-order", "case-and-dot"],
)
def test_uncovered_hosts(hosts: tuple[str, ...], uncovered: tuple[str, ...]) -> None:
    policy = StsPolicy(StsMode.ENFORCE, 86400, ("mx1.example.com", "*.backup.example.com"))
    assert mtasts.uncovered_hosts(policy, hosts) == uncovered


def test_a_policy_without_patterns_covers_nothing() -> None:
    policy = StsPolicy(StsMode.NONE, 86400, ())
    assert mtasts.uncovered_hosts(policy, ["mx.example.com"]) == ("mx.example.com",)


def test_parsed_patterns_feed_matching() -> None:
    policy = mtasts.parse_policy(policy_text(mx=("MX1.Example.com.", "*.Backup.Example.com")))
    assert mtasts.uncovered_hosts(
        policy, ["mx1.example.com", "x.backup.example.com", "z.test"]
    ) == ("z.test",)
