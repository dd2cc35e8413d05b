"""The scenarios: what is sent, how much, with which tool, and what the gateway must do with it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from bench import zones

SENDER = "teacher@school.test"
FLAG = "[SECURE] Referral notes for J"
PLAIN = "Minutes of the staff meeting"
KB5 = 5_000
MB1 = 1_000_000
SLOW_DELAY = 2.0  # seconds a slow policy host keeps the gateway waiting (cold start)


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    recipients: tuple[str, ...]
    subject: str
    size: int
    count: int  # messages in the throughput run
    sessions: int  # concurrent SMTP sessions in the throughput run
    tool: str  # "smtp-source" or "driver" (bench/load.py) for the throughput run
    latency_count: int  # messages in the latency run (driver, one session); 0: use the load's
    expect: str  # the gateway's reply: "relayed", "held", "relayed+held" or "queued"
    notices: int = 0  # notices the gateway sends per message (2 per hold: sender, reviewers)
    relayed: int = 1  # copies the gateway relays per message
    warm: bool = True  # the policy cache is warm (one message per domain sent first)
    cold: bool = False  # empty policy cache, 200 domains, fetches watched
    extra: dict[str, object] = field(default_factory=dict)
    # Where the relayed copies arrive: "plain" (smtp-sink, the relay of every target) or "tls"
    # (bench/tls_sink.py, the recipient domain's MX host, reached over verified STARTTLS).
    sink: str = "plain"
    direct: bool = False  # the gateway delivers flagged mail to the MX itself
    client_tls: bool = False  # the client says STARTTLS to the target (bench/load.py)
    skip: tuple[str, ...] = ()  # targets that cannot take part (the bare relay has no TLS)

    def load_messages(self) -> list[dict[str, object]]:
        """The throughput run as a bench.load message list."""
        if self.cold:
            # Three messages per domain, one after another in the queue, so that concurrent
            # workers take them together: the gateway must fetch the policy once for the three.
            return [
                {
                    "from": SENDER,
                    "to": [f"caseworker@{domain}"],
                    "subject": self.subject,
                    "size": self.size,
                    "tag": domain,
                    "repeat": 3,
                }
                for domain in zones.cold_domains()
            ]
        return [
            {
                "from": SENDER,
                "to": list(self.recipients),
                "subject": self.subject,
                "size": self.size,
                "tag": self.name,
                "repeat": self.count,
            }
        ]


MIXED = (
    "a.colleague@secure.test",  # secure: MTA-STS enforce
    "b.colleague@multistring.test",  # secure: MTA-STS enforce
    "c.colleague@dane.test",  # secure: DANE
    "d.worker@nosts.test",  # held: no MTA-STS
    "e.worker@unlisted.test",  # held: not on the allowlist
)

TLS_IN = Scenario(
    "tls_in",
    "5 KB unflagged, the client using STARTTLS to the target (relayed unchecked)",
    ("office@nosts.test",),
    PLAIN,
    KB5,
    count=3000,
    sessions=20,
    tool="driver",
    latency_count=1000,
    expect="relayed",
    client_tls=True,
    skip=("bare",),
)

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "unflagged_5k",
        "5 KB unflagged (body keyword scan, relayed unchecked)",
        ("office@nosts.test",),
        PLAIN,
        KB5,
        count=3000,
        sessions=20,
        tool="smtp-source",
        latency_count=1000,
        expect="relayed",
    ),
    Scenario(
        "flagged_secure_5k",
        "5 KB flagged to a secure domain (secure.test, relayed)",
        ("colleague@secure.test",),
        FLAG,
        KB5,
        count=2000,
        sessions=20,
        tool="smtp-source",
        latency_count=1000,
        expect="relayed",
    ),
    Scenario(
        "flagged_insecure_5k",
        "5 KB flagged to an insecure domain (nosts.test, held: AES-GCM + fsync, 2 notices)",
        ("worker@nosts.test",),
        FLAG,
        KB5,
        count=600,
        sessions=20,
        tool="smtp-source",
        latency_count=300,
        expect="held",
        notices=2,
        relayed=0,
    ),
    Scenario(
        "mixed_5rcpt",
        "5 KB flagged, 5 recipients: 3 secure (relayed), 2 insecure (held, 2 notices)",
        MIXED,
        FLAG,
        KB5,
        count=600,
        sessions=20,
        tool="driver",
        latency_count=200,
        expect="relayed+held",
        notices=2,
    ),
    Scenario(
        "large_1mb",
        "1 MB flagged to secure.test, 200 concurrent sessions (relayed)",
        ("colleague@secure.test",),
        FLAG,
        MB1,
        count=400,
        sessions=200,
        tool="smtp-source",
        latency_count=60,
        expect="relayed",
    ),
    Scenario(
        "cold_start_200",
        "cold start: empty policy cache, 200 domains x 3 flagged 5 KB messages, 50 sessions",
        (),
        FLAG,
        KB5,
        count=3 * zones.COLD_COUNT,
        sessions=50,
        tool="driver",
        latency_count=0,
        expect="relayed",
        warm=False,
        cold=True,
    ),
    Scenario(
        "flagged_direct_tls",
        "5 KB flagged, delivered direct to the MX (MTA-STS enforce) over verified STARTTLS",
        (f"colleague@{zones.DIRECT_DOMAIN}",),
        FLAG,
        KB5,
        count=2000,
        sessions=20,
        tool="smtp-source",
        latency_count=500,
        expect="queued",
        sink="tls",
        direct=True,
        skip=("bare",),
    ),
    # tls_in's baseline: the same client, load and sink, in the clear. unflagged_5k is not
    # one: smtp-source (C) costs the 2 shared cores far less than bench/load.py.
    replace(
        TLS_IN,
        name="plain_in",
        title="5 KB unflagged, the client of tls_in in the clear (relayed unchecked)",
        client_tls=False,
    ),
    TLS_IN,
)


def by_name(names: list[str]) -> list[Scenario]:
    if not names:
        return list(SCENARIOS)
    known = {s.name: s for s in SCENARIOS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; known: {sorted(known)}")
    return [known[n] for n in names]
