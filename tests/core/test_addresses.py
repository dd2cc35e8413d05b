"""Canonical domains (A-labels, lower case, no trailing dot) and mail address splitting."""

from __future__ import annotations

import pytest

from gateway.core import addresses, allowlist
from gateway.core.addresses import AddressError

LABEL63 = "a" * 63
NAME253 = ".".join([LABEL63, LABEL63, LABEL63, "b" * 61])  # 63+1+63+1+63+1+61 = 253


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("example.com", "example.com"),
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("  example.com \t", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("Bücher.Example.", "xn--bcher-kva.example"),
        ("BÜCHER.EXAMPLE", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("XN--BCHER-KVA.EXAMPLE.", "xn--bcher-kva.example"),
        ("münchen.de", "xn--mnchen-3ya.de"),
        ("ＥＸＡＭＰＬＥ.com", "example.com"),
        ("bücher。example", "xn--bcher-kva.example"),
        ("ß.example", "xn--zca.example"),
        ("_mta-sts.example.com", "_mta-sts.example.com"),
        ("_smtp._tls.example.com", "_smtp._tls.example.com"),
        ("a-b.example", "a-b.example"),
        (LABEL63 + ".example", LABEL63 + ".example"),
        (NAME253, NAME253),
        (NAME253 + ".", NAME253),
        ("localhost", "localhost"),
    ],
    ids=[
        "plain",
        "case",
        "trailing-dot",
        "surrounding-space",
        "u-label",
        "u-label-case-dot",
        "u-label-upper",
        "a-label",
        "a-label-upper-dot",
        "munchen",
        "fullwidth-uts46",
        "ideographic-full-stop",
        "sharp-s-idna2008",
        "service-label",
        "two-service-labels",
        "hyphen",
        "63-char-label",
        "253-chars",
        "253-chars-and-dot",
        "single-label",
    ],
)
def test_normalise_domain(name: str, canonical: str) -> None:
    assert addresses.normalise_domain(name) == canonical


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("bücher.example", "xn--bcher-kva.example"),
        ("Bücher.Example.", "XN--BCHER-KVA.example"),
        ("NHS.net.", "nhs.net"),
        ("münchen.de", "xn--mnchen-3ya.de"),
    ],
    ids=["u-vs-a", "mixed-case-dots", "ascii", "munchen"],
)
def test_equal_names_normalise_equal(left: str, right: str) -> None:
    assert addresses.normalise_domain(left) == addresses.normalise_domain(right)


@pytest.mark.parametrize(
    "name",
    [
        "",
        " ",
        ".",
        "..",
        "a..b",
        ".example.com",
        "example.com..",
        "-a.example",
        "a-.example",
        "a b.example",
        "a@b.example",
        "exa!mple.com",
        "exa*mple.com",
        "*.example.com",
        "a/b.example",
        "a\x00.example",
        "a\nb.example",
        "a" * 64 + ".example",
        NAME253 + "c",
        "x" + "." + NAME253,
        "xn--abc.example",
        "xn--.example",
        "xn--bcher-kva-.example",
        "💩.example",
        "a\u200db.example",
        "bücher..example",
        "ü" * 64 + ".example",
    ],
    ids=[
        "empty",
        "space",
        "dot",
        "two-dots",
        "empty-label",
        "leading-dot",
        "two-trailing-dots",
        "leading-hyphen",
        "trailing-hyphen",
        "inner-space",
        "at-sign",
        "bang",
        "star",
        "wildcard",
        "slash",
        "nul",
        "newline",
        "64-char-label",
        "254-chars",
        "255-chars",
        "bad-punycode",
        "empty-punycode",
        "a-label-trailing-hyphen",
        "emoji-disallowed-in-idna2008",
        "zero-width-joiner",
        "idn-empty-label",
        "idn-label-too-long",
    ],
)
def test_normalise_domain_invalid(name: str) -> None:
    # Twice: a name seen before (the canonical forms are remembered) is refused again.
    for _ in range(2):
        with pytest.raises(AddressError):
            addresses.normalise_domain(name)


@pytest.mark.parametrize("name", ["example.com。", "bücher.example．"], ids=["ascii", "idn"])
def test_a_trailing_full_stop_variant_is_a_trailing_dot(name: str) -> None:
    assert addresses.normalise_domain(name) == addresses.normalise_domain(name[:-1] + ".")


def test_address_error_is_a_value_error() -> None:
    assert issubclass(AddressError, ValueError)


@pytest.mark.parametrize(
    ("address", "local", "domain"),
    [
        ("alice@example.com", "alice", "example.com"),
        ("Alice.Smith@Example.COM", "Alice.Smith", "example.com"),
        ("<alice@example.com>", "alice", "example.com"),
        ("  bob@example.com  ", "bob", "example.com"),
        ("bob@example.com.", "bob", "example.com"),
        ("jörg@bücher.example", "jörg", "xn--bcher-kva.example"),
        ('"a@b"@example.com', '"a@b"', "example.com"),
        ("first+tag@nhs.net", "first+tag", "nhs.net"),
    ],
    ids=[
        "plain",
        "local-case-kept",
        "angle-brackets",
        "surrounding-space",
        "trailing-dot",
        "idn",
        "quoted-at-sign",
        "plus-tag",
    ],
)
def test_split_address(address: str, local: str, domain: str) -> None:
    assert addresses.split_address(address) == (local, domain)
    assert addresses.address_domain(address) == domain


@pytest.mark.parametrize(
    "address",
    ["", "<>", "alice", "alice@", "@example.com", "alice@bad..domain", "alice@-x.example"],
    ids=["empty", "null-path", "no-at", "no-domain", "no-local", "bad-domain", "hyphen-domain"],
)
def test_split_address_invalid(address: str) -> None:
    with pytest.raises(AddressError):
        addresses.split_address(address)


@pytest.mark.parametrize(
    ("name", "parent", "below"),
    [
        ("a.police.uk", "police.uk", True),
        ("a.b.police.uk", "police.uk", True),
        ("police.uk", "police.uk", False),
        ("xpolice.uk", "police.uk", False),
        ("uk", "police.uk", False),
    ],
    ids=["child", "grandchild", "itself", "label-suffix", "parent"],
)
def test_is_subdomain(name: str, parent: str, below: bool) -> None:
    assert addresses.is_subdomain(name, parent) is below


def test_to_unicode() -> None:
    assert addresses.to_unicode("xn--bcher-kva.example") == "bücher.example"
    assert addresses.to_unicode("example.com") == "example.com"
    assert addresses.to_unicode("xn--abc.example") == "xn--abc.example"  # undecodable: as given


# RFC 1123 §2.1: "a valid host name can never have the dotted-decimal form #.#.#.#, since at
# least the highest-level component label will be alphabetic". Where a domain is expected (an
# allowlist entry, a recipient's domain), an all-numeric top-level label means an address.
@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("1.2.3.4", None),
        ("127.0.0.1", None),
        ("127.0.0.1.", None),
        ("１２７.０.０.１", None),  # fullwidth digits, mapped by UTS #46 first
        ("10.0.0.256", None),
        ("mx.example.123", None),
        ("12345", None),
        ("1.2.3.example", "1.2.3.example"),
        ("3com.example", "3com.example"),
        ("example.a1", "example.a1"),
        ("example.1a", "example.1a"),
        ("127.0.0.1.example", "127.0.0.1.example"),
    ],
    ids=[
        "ipv4",
        "loopback",
        "loopback-trailing-dot",
        "fullwidth-loopback",
        "dotted-quad-out-of-range",
        "numeric-tld",
        "one-numeric-label",
        "numeric-labels-below-a-name",
        "leading-digit-label",
        "tld-letter-digit",
        "tld-digit-letter",
        "address-below-a-name",
    ],
)
def test_a_numeric_top_level_label_is_not_a_domain(name: str, canonical: str | None) -> None:
    if canonical is None:
        with pytest.raises(AddressError):
            addresses.normalise_domain(name)
        with pytest.raises(AddressError):
            addresses.split_address(f"alice@{name}")
        [problem] = allowlist.parse_txt(name, "list.txt").problems
        assert problem.line == 1
    else:
        assert addresses.normalise_domain(name) == canonical
        assert addresses.split_address(f"alice@{name}") == ("alice", canonical)
        [entry] = allowlist.parse_txt(name, "list.txt").entries
        assert entry.domain == canonical
