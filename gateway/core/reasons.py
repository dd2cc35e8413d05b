"""Each reason code in plain words: a sentence for the person who sent the message, and a short
label for reviewers. Kept beside the codes (``core.model.Reason``) so that a new code cannot
ship without them; ``tests/core/test_reasons.py`` checks that every ``Reason`` has both.

A sentence is a template: ``{domain}`` is the recipient's domain, ``{address}`` the address.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.core.model import Reason


@dataclass(frozen=True)
class Words:
    sender: str  # for the sender's notice and the reviewer's page
    label: str  # a few words for lists, filters and reviewers' notices


WORDS: Mapping[Reason, Words] = {
    Reason.NOT_ALLOWLISTED: Words(
        "{domain} is not on our secure-email list", "Not on the secure-email list"
    ),
    Reason.ALLOWLIST_EXPIRED: Words(
        "{domain} is no longer on our secure-email list (its entry expired)",
        "Secure-email list entry expired",
    ),
    Reason.NO_SUCH_DOMAIN: Words("{domain} does not exist", "Domain does not exist"),
    Reason.NULL_MX: Words("{domain} does not accept email", "Accepts no email (null MX)"),
    Reason.STS_NO_RECORD: Words(
        "{domain} does not publish an MTA-STS policy in enforce mode", "No MTA-STS policy"
    ),
    Reason.STS_MULTIPLE_RECORDS: Words(
        "{domain}'s MTA-STS record is broken (there is more than one)",
        "More than one MTA-STS record",
    ),
    Reason.STS_RECORD_INVALID: Words(
        "{domain}'s MTA-STS record is broken", "Broken MTA-STS record"
    ),
    Reason.STS_POLICY_FETCH_ERROR: Words(
        "{domain}'s MTA-STS policy could not be fetched", "MTA-STS policy not fetched"
    ),
    Reason.STS_WEBPKI_INVALID: Words(
        "{domain}'s MTA-STS policy is not served with a valid certificate",
        "MTA-STS policy certificate invalid",
    ),
    Reason.STS_POLICY_INVALID: Words(
        "{domain}'s MTA-STS policy is broken", "Broken MTA-STS policy"
    ),
    Reason.STS_MODE_TESTING: Words(
        "{domain} publishes an MTA-STS policy in testing mode, not enforce mode",
        "MTA-STS in testing mode",
    ),
    Reason.STS_MODE_NONE: Words(
        "{domain} has withdrawn its MTA-STS policy", "MTA-STS policy withdrawn"
    ),
    Reason.STS_MX_MISMATCH: Words(
        "{domain}'s MTA-STS policy does not cover all of its mail servers",
        "MTA-STS does not cover the MX hosts",
    ),
    Reason.NO_TLS_RPT: Words(
        "{domain} does not publish a TLS reporting (TLS-RPT) record", "No TLS-RPT record"
    ),
    Reason.DNS_TEMPORARY_ERROR: Words(
        "{domain}'s security settings could not be checked just now",
        "DNS lookup failed for now",
    ),
    Reason.DANE_UNUSABLE: Words("{domain}'s DANE records cannot be used", "DANE records unusable"),
    Reason.DANE_NOT_DNSSEC: Words(
        "{domain} is not DNSSEC-signed, which DANE needs", "Not DNSSEC-signed"
    ),
    Reason.DANE_NO_TLSA: Words(
        "{domain} does not publish DANE records for its mail servers", "No DANE (TLSA) records"
    ),
    Reason.DANE_RESOLVER_UNTRUSTED: Words(
        "{domain}'s DANE records could not be checked here", "DANE not checkable here"
    ),
    # Message-level reasons: the policy adds the first two, the filter the third.
    Reason.SENDER_NOT_ALLOWED: Words(
        "your address is not one that may send safeguarding mail to others",
        "Sender may not send safeguarding mail",
    ),
    Reason.RECIPIENT_INVALID: Words(
        "the address {address} could not be read", "Recipient address unreadable"
    ),
    Reason.UPSTREAM_REFUSED: Words(
        "our mail server could not pass it on to {address}", "Refused by the upstream"
    ),
    # Direct delivery: the queue gave up, and a reviewer decides.
    Reason.DELIVERY_TLS_FAILED: Words(
        "none of {domain}'s mail servers could be reached over a connection its security "
        "policy vouches for, so it was not sent",
        "No secure connection to the MX hosts",
    ),
    Reason.DELIVERY_FAILED: Words(
        "{domain}'s mail servers did not accept it in time", "MX hosts did not take it"
    ),
}


def words_for(code: str) -> Words:
    """The words for a stored code; a code this version does not know (a hold written by
    another release) still reads as something, with the code itself."""
    try:
        return WORDS[Reason(code)]
    except (ValueError, KeyError):
        return Words("{domain} did not pass the check (" + code + ")", code)


def sender_words(code: str, domain: str, address: str) -> str:
    return words_for(code).sender.format(domain=domain or "?", address=address)


def label(code: str) -> str:
    return words_for(code).label


def labelled(code: str) -> str:
    """The label with its code, for reviewers and the trail: "No MTA-STS policy
    (sts-no-record)". The code stays so that a reviewer can look it up (and filter by it)."""
    words = label(code)
    return code if words == code else f"{words} ({code})"
