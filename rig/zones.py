"""The zone spec: one row per test domain drives DNS, nginx, the allowlist and the verdicts.

Every domain also gets ``mta-sts.<domain> A 127.0.0.1`` and an A record for each MX host:
127.0.0.1 unless the row's ``addresses`` gives the host its own (the direct-delivery rows do, so
each MX host is a server of its own). Adding a scenario is adding one row to ZONES.
"""

import dataclasses
import datetime as dt
from dataclasses import dataclass

SECURE = "secure"
NOT_SECURE = "not-secure"
UNDETERMINED = "undetermined"

POLICY_PATH = "/.well-known/mta-sts.txt"
MAX_AGE = 86400

# A TLSA row names the rig certificate its association data is taken from; CA means the root.
CA = "ca"
SELF_SIGNED = "self-signed:"  # prefix: a self-signed leaf for the host named after it
LOOPBACK_ADDRESS = "127.0.0.1"


def self_signed(host: str) -> str:
    """The TLSA `cert` naming a self-signed leaf for `host` (what a DANE-EE host presents)."""
    return SELF_SIGNED + host


@dataclass(frozen=True)
class Policy:
    """What https://mta-sts.<domain>/.well-known/mta-sts.txt answers."""

    mode: str = "enforce"
    mx: tuple[str, ...] = ()
    max_age: int = MAX_AGE
    status: int = 200
    content_type: str = "text/plain"
    redirect_to: str | None = None
    # The names on the certificate nginx presents; None means the true mta-sts.<domain>.
    cert_names: tuple[str, ...] | None = None

    @property
    def body(self) -> str:
        lines = ["version: STSv1", f"mode: {self.mode}"]
        lines += [f"mx: {mx}" for mx in self.mx]
        lines.append(f"max_age: {self.max_age}")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Tlsa:
    """A TLSA record at _<port>._tcp.<host>, its data digested from the rig certificate `cert`."""

    host: str
    usage: int
    selector: int
    mtype: int
    cert: str
    port: int = 25

    @property
    def owner(self) -> str:
        return f"_{self.port}._tcp.{self.host}"


@dataclass(frozen=True)
class Domain:
    """One test domain: how it is set up, and what `gateway check` must say about it."""

    name: str
    verdict: str
    reasons: tuple[str, ...] = ()
    note: str = ""
    mx: tuple[tuple[int, str], ...] = ()
    # Each _mta-sts TXT record, as its character-strings (several strings form one record).
    sts: tuple[tuple[str, ...], ...] = ()
    policy: Policy | None = None
    tlsrpt: str | None = None
    tlsa: tuple[Tlsa, ...] = ()
    allowlisted: bool = True
    expires: dt.date | None = None
    # Served as its own zone whose DS in test. matches none of its keys: validation fails, so a
    # validating resolver answers SERVFAIL although the zone holds a complete secure setup.
    dnssec_bogus: bool = False
    # (host, IPv4 address) for hosts that are not on 127.0.0.1.
    addresses: tuple[tuple[str, str], ...] = ()

    def address(self, host: str) -> str:
        return dict(self.addresses).get(host, LOOPBACK_ADDRESS)

    @property
    def mta_sts_host(self) -> str:
        return f"mta-sts.{self.name}"

    @property
    def mx_hosts(self) -> tuple[str, ...]:
        return tuple(host for _, host in sorted(self.mx))


def _record(sts_id: str) -> tuple[tuple[str, ...], ...]:
    return ((f"v=STSv1; id={sts_id};",),)


def _secure_like(
    name: str,
    verdict: str = SECURE,
    reasons: tuple[str, ...] = (),
    *,
    note: str,
    tlsrpt: bool = True,
    **changes: object,
) -> Domain:
    """Two MX hosts, an enforce policy listing both, and (unless `tlsrpt` is off) TLS-RPT."""
    hosts = (f"mx1.{name}", f"mx2.{name}")
    base = Domain(
        name=name,
        verdict=verdict,
        reasons=reasons,
        note=note,
        mx=((10, hosts[0]), (20, hosts[1])),
        sts=_record("20261126a"),
        policy=Policy(mx=hosts),
        tlsrpt=f"v=TLSRPTv1; rua=mailto:tlsrpt@{name}" if tlsrpt else None,
    )
    return dataclasses.replace(base, **changes)


def _sts_domain(
    name: str,
    policy: Policy,
    reasons: tuple[str, ...],
    note: str,
    sts: tuple[tuple[str, ...], ...] | None = None,
) -> Domain:
    """One MX host mx.<name>, a record and `policy`: the row's arguments say what goes wrong."""
    return Domain(
        name=name,
        verdict=NOT_SECURE,
        reasons=reasons,
        note=note,
        mx=((10, f"mx.{name}"),),
        sts=_record("20261126a") if sts is None else sts,
        policy=policy,
    )


ZONES: tuple[Domain, ...] = (
    _secure_like("secure.test", note="enforce policy covering both MX, TLS-RPT"),
    Domain(
        "nosts.test",
        NOT_SECURE,
        ("sts-no-record",),
        note="MX only, no MTA-STS record",
        mx=((10, "mx.nosts.test"),),
    ),
    _sts_domain(
        "testing.test",
        Policy(mode="testing", mx=("mx.testing.test",)),
        ("sts-mode-testing",),
        "policy in testing mode",
    ),
    _sts_domain(
        "policy404.test",
        Policy(mx=("mx.policy404.test",), status=404),
        ("sts-policy-fetch-error",),
        "record present, policy URL answers 404",
    ),
    _sts_domain(
        "redirect.test",
        Policy(
            mx=("mx.redirect.test",),
            status=301,
            redirect_to=f"https://mta-sts.secure.test{POLICY_PATH}",
        ),
        ("sts-policy-fetch-error",),
        "policy URL redirects (RFC 8461 forbids following)",
    ),
    _sts_domain(
        "mediatype.test",
        Policy(mx=("mx.mediatype.test",), content_type="text/html"),
        ("sts-policy-fetch-error",),
        "valid policy served as text/html",
    ),
    _sts_domain(
        "wrongcert.test",
        Policy(mx=("mx.wrongcert.test",), cert_names=("mta-sts.other.test",)),
        ("sts-webpki-invalid",),
        "policy host presents a certificate for another name",
    ),
    Domain(
        "mxmismatch.test",
        NOT_SECURE,
        ("sts-mx-mismatch",),
        note="enforce policy does not cover the MX",
        mx=((10, "mail.mxmismatch.test"),),
        sts=_record("20261126a"),
        policy=Policy(mx=("mx.elsewhere.test",)),
    ),
    _secure_like(
        "servfail.test",
        UNDETERMINED,
        ("dns-temporary-error",),
        note="DNSSEC-bogus zone: the resolver answers SERVFAIL",
        dnssec_bogus=True,
    ),
    _secure_like(
        "multistring.test",
        note="_mta-sts TXT split into two character-strings",
        sts=(("v=STSv1; ", "id=multi1;"),),
    ),
    Domain(
        "wildcard.test",
        SECURE,
        note="policy mx pattern *.mail.wildcard.test",
        mx=((10, "mx1.mail.wildcard.test"),),
        sts=_record("20261126a"),
        policy=Policy(mx=("*.mail.wildcard.test",)),
    ),
    _secure_like(
        "unlisted.test",
        NOT_SECURE,
        ("not-allowlisted",),
        note="secure transport but not in the allowlist",
        allowlisted=False,
    ),
    _secure_like(
        "expired.test",
        NOT_SECURE,
        ("allowlist-expired",),
        note="secure transport, allowlist entry expired",
        expires=dt.date(2020, 1, 1),
    ),
    Domain(
        "nullmx.test",
        NOT_SECURE,
        ("null-mx",),
        note="RFC 7505 null MX",
        mx=((0, "."),),
    ),
    _sts_domain(
        "multirecord.test",
        Policy(mx=("mx.multirecord.test",)),
        ("sts-multiple-records",),
        "two v=STSv1 records",
        sts=(("v=STSv1; id=a1;",), ("v=STSv1; id=a2;",)),
    ),
    _sts_domain(
        "badrecord.test",
        Policy(mx=("mx.badrecord.test",)),
        ("sts-record-invalid",),
        "record id has invalid characters",
        sts=(("v=STSv1; id=not_valid!;",),),
    ),
    _sts_domain(
        "badpolicy.test",
        Policy(mode="Enforce", mx=("mx.badpolicy.test",)),
        ("sts-policy-invalid",),
        "policy mode in the wrong case",
    ),
    _secure_like(
        "notlsrpt.test",
        note="secure but no TLS-RPT record (not-secure when TLS-RPT is required)",
        tlsrpt=False,
    ),
    Domain(
        "dane.test",
        SECURE,
        note="no MTA-STS; signed TLSA 3 1 1 for the MX",
        mx=((10, "mx.dane.test"),),
        tlsa=(Tlsa("mx.dane.test", 3, 1, 1, cert="mx.dane.test"),),
    ),
    Domain(
        "daneunusable.test",
        NOT_SECURE,
        ("dane-unusable",),
        note="no MTA-STS; only a TLSA with usage 0 (PKIX-TA), unusable for SMTP",
        mx=((10, "mx.daneunusable.test"),),
        tlsa=(Tlsa("mx.daneunusable.test", 0, 0, 1, cert=CA),),
    ),
)


def _delivery(
    name: str,
    verdict: str,
    reasons: tuple[str, ...],
    first: int,
    *,
    note: str,
    policy_mx: tuple[str, ...] | None = None,
    tlsa: tuple[Tlsa, ...] = (),
) -> Domain:
    """A domain for direct delivery: mx1 and mx2 on 127.0.0.<first> and <first + 1>, and an
    enforce policy naming `policy_mx` (None: no MTA-STS at all)."""
    hosts = (f"mx1.{name}", f"mx2.{name}")
    return Domain(
        name=name,
        verdict=verdict,
        reasons=reasons,
        note=note,
        mx=((10, hosts[0]), (20, hosts[1])),
        sts=_record("20261201a") if policy_mx is not None else (),
        policy=Policy(mx=policy_mx) if policy_mx is not None else None,
        tlsa=tlsa,
        addresses=((hosts[0], f"127.0.0.{first}"), (hosts[1], f"127.0.0.{first + 1}")),
    )


# The domains the direct-delivery tests send to, each MX host its own server (rig.mx).
DELIVERY_ZONES: tuple[Domain, ...] = (
    _delivery(
        "deliver-sts.test",
        SECURE,
        (),
        21,
        note="direct delivery: enforce policy naming both MX hosts",
        policy_mx=("mx1.deliver-sts.test", "mx2.deliver-sts.test"),
    ),
    _delivery(
        "deliver-partial.test",
        NOT_SECURE,
        ("sts-mx-mismatch",),
        23,
        note="direct delivery: the policy names mx2 only",
        policy_mx=("mx2.deliver-partial.test",),
    ),
    _delivery(
        "deliver-dane.test",
        SECURE,
        (),
        25,
        note="direct delivery: DANE-EE (self-signed) for mx1, DANE-TA (rig CA) for mx2",
        tlsa=(
            Tlsa("mx1.deliver-dane.test", 3, 1, 1, cert=self_signed("mx1.deliver-dane.test")),
            Tlsa("mx2.deliver-dane.test", 2, 0, 1, cert=CA),
        ),
    ),
    _delivery(
        "deliver-plain.test",
        NOT_SECURE,
        ("sts-no-record",),
        27,
        note="direct delivery: no MTA-STS, no DANE",
    ),
)
ZONES += DELIVERY_ZONES


def by_name(name: str) -> Domain:
    """The row for `name`; KeyError names the missing domain."""
    for row in ZONES:
        if row.name == name:
            return row
    raise KeyError(name)
