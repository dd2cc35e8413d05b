"""Normalise mail addresses and domain names so that equal names compare equal.

A domain is kept in one canonical form: A-labels (RFC 5890), lower case, no trailing dot.
``Bücher.Example.`` and ``xn--bcher-kva.example`` are the same domain. IDNA2008 with the UTS #46
mapping comes from the ``idna`` package: a pure table-driven codec, the one piece of the core
that is not the standard library, because a hand-written IDNA would be wrong in the corners.
"""

from __future__ import annotations

import functools
import re

import idna

# RFC 5321 §4.1.2 Let-dig [Ldh-str]; RFC 1035 §2.3.4 label and name lengths. Underscores are
# allowed so that service labels (_mta-sts, _smtp._tls) pass through the same function.
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)\Z")
_MAX_NAME = 253


class AddressError(ValueError):
    """An address or domain that cannot be a mail domain."""


# A message's recipients, its sender and From: each come through here, and a gateway writes
# to a few hundred partner domains: their canonical forms are remembered (``_canonical``, the
# name alone decides the answer), the bound keeping a mail-merge to thousands of domains from
# growing it. A name that is refused is not remembered: it is checked again, and refused again.
def normalise_domain(name: str) -> str:
    """Return the canonical A-label form of ``name``; raise AddressError if it is not a domain."""
    return _canonical(name)


# A pure function of the text, asked for the same few domains several times a message (each
# recipient, the sender, the From: field, the policy's checks): the most recent answers are
# kept. A refusal (AddressError) is not: it is worked out, and raised, every time.
@functools.lru_cache(maxsize=4096)
def _canonical(name: str) -> str:
    text = name.strip()
    if not text.isascii():
        # UTS #46 maps the full stops of other scripts (。．｡) to "." before anything else,
        # so that a trailing one is stripped like an ASCII dot.
        try:
            text = idna.uts46_remap(text, std3_rules=False, transitional=False)
        except idna.IDNAError as exc:
            raise AddressError(f"not a valid internationalised domain: {exc}") from exc
    if text.endswith("."):
        text = text[:-1]
    if not text:
        raise AddressError("empty domain")
    if text.isascii():
        text = text.lower()
        labels = text.split(".")
        for label in labels:
            if label.startswith("xn--"):
                _check_a_label(label)
    else:
        try:
            text = idna.encode(text, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise AddressError(f"not a valid internationalised domain: {exc}") from exc
        labels = text.split(".")
    for label in labels:
        if not _LABEL.match(label):
            raise AddressError(f"invalid label {label!r}")
    if labels[-1].isdigit():
        # RFC 1123 §2.1: a host name's top-level label is never all-numeric, so "127.0.0.1"
        # is an IPv4 address written without brackets. Address literals ("[192.0.2.1]",
        # RFC 5321 §4.1.3) are not domains either; the SMTP face deals with them.
        raise AddressError(f"{text!r} is an address, not a domain: its last label is numeric")
    if len(text) > _MAX_NAME:
        raise AddressError("domain longer than 253 characters")
    return text


def _check_a_label(label: str) -> None:
    try:
        idna.decode(label)
    except (idna.IDNAError, UnicodeError) as exc:
        raise AddressError(f"invalid A-label {label!r}: {exc}") from exc


def to_unicode(domain: str) -> str:
    """The U-label form, for people to read. Falls back to the A-label form."""
    try:
        return str(idna.decode(domain))
    except (idna.IDNAError, UnicodeError):
        return domain


def split_address(address: str) -> tuple[str, str]:
    """Split ``local@domain`` at the last ``@`` and normalise the domain.

    The local part is kept as given: only the receiving host may interpret it (RFC 5321 §2.4).
    """
    text = address.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    local, sep, domain = text.rpartition("@")
    if not sep or not local:
        raise AddressError(f"not a mail address: {address!r}")
    return local, normalise_domain(domain)


def address_domain(address: str) -> str:
    return split_address(address)[1]


def is_subdomain(name: str, parent: str) -> bool:
    """True when ``name`` lies strictly below ``parent`` (both canonical)."""
    return name.endswith("." + parent)
