"""The hosts tried for one transaction and why each was passed over, and what the
transaction's failure says when every host failed.

Apart from ``mx`` because it is the one place that decides between "try the next host" and
"this is the domain's answer": a 4xx tries the next host (RFC 5321 §4.5.4.1), a 5xx is final,
and a connection lost during DATA is never retried on another host (the first may have the
message). ``give_up`` turns the reasons gathered into the ``DeliveryFailed`` the queue reads:
stage ``tls`` when every reason was TLS or authentication (the queue turns that into
``delivery-tls-failed``), otherwise the stage of the last SMTP reply or connection failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NoReturn

from gateway.delivery.transport import Outcome, Reply, Sent, Transaction, failure
from gateway.errors import DeliveryFailed

# Why a host was passed over; "tls" covers every authentication reason.
TLS, REQUIRETLS, CONNECT, SMTP = "tls", "requiretls", "connect", "smtp"


class HostFailed(Exception):
    """Why one host was passed over: its kind (above), the line saying why, and the reply and
    stage when the host answered."""

    def __init__(
        self, kind: str, why: str, reply: Reply | None = None, stage: str = "connect"
    ) -> None:
        super().__init__(why)
        self.kind = kind
        self.why = why
        self.reply = reply
        self.stage = stage
        self.timed_out = False


@dataclass
class Attempts:
    """The lines and reasons gathered while trying the hosts of one transaction."""

    lines: list[str] = field(default_factory=list)
    failures: list[HostFailed] = field(default_factory=list)

    def add(self, line: str, reason: HostFailed) -> None:
        self.lines.append(line)
        self.failures.append(reason)


def next_host_or_fail(reply: Reply, stage: str, where: str, attempts: Attempts) -> NoReturn:
    """A 4xx: try the next host (RFC 5321 §4.5.4.1). A 5xx is the domain's answer: final."""
    if reply.temporary:
        raise HostFailed(SMTP, f"{stage}: {reply}", reply, stage)
    raise failure(reply, stage, hosts=(*attempts.lines, f"{where}: {stage}: {reply}"))


def nobody_accepted(sent: Sent) -> Sent:
    """Every RCPT refused: all of them 4xx, try the next host; else the domain's answer."""
    replies = list(sent.refused.values())
    if replies and all(r.temporary for r in replies):
        raise HostFailed(SMTP, f"RCPT: {replies[0]}", replies[0], "RCPT")
    return sent


def lost_in_data(exc: BaseException, where: str, attempts: Attempts) -> DeliveryFailed:
    # The host may have the message: no other host now; the queue retries later, and
    # RFC 5321 §6.1 accepts the rare duplicate that may follow.
    reply = Reply(451, f"4.4.2 {where}: connection lost during DATA: {exc}")
    outcome = Outcome.TIMED_OUT if isinstance(exc, TimeoutError) else Outcome.UNREACHABLE
    return failure(reply, "DATA", outcome, (*attempts.lines, f"{where}: {reply.text}"))


def lost_connection(exc: BaseException, stage: str) -> HostFailed:
    what = "no connection" if stage == "connect" else f"{stage}: connection lost"
    lost = HostFailed(CONNECT, f"{what}: {exc}", stage=stage)
    lost.timed_out = isinstance(exc, TimeoutError)
    return lost


def give_up(t: Transaction, attempts: Attempts) -> DeliveryFailed:
    hosts = tuple(attempts.lines)
    kinds = {f.kind for f in attempts.failures}
    if t.requiretls and REQUIRETLS in kinds and kinds <= {TLS, REQUIRETLS}:
        # RFC 8689 §4.1 / §5: no next hop can keep the promise.
        reply = Reply(550, "5.7.30 REQUIRETLS support required")
        return failure(reply, "tls", Outcome.REFUSED, hosts)
    if kinds <= {TLS, REQUIRETLS}:
        reply = Reply(451, "4.7.5 no MX host could be reached over TLS its policy authenticates")
        return failure(reply, "tls", Outcome.DEFERRED, hosts)
    replies = [f for f in attempts.failures if f.kind == SMTP and f.reply is not None]
    if replies:
        last = replies[-1]
        assert last.reply is not None
        return failure(last.reply, last.stage, Outcome.DEFERRED, hosts)
    connects = [f for f in attempts.failures if f.kind == CONNECT]
    timed_out = bool(connects) and all(f.timed_out for f in connects)
    outcome = Outcome.TIMED_OUT if timed_out else Outcome.UNREACHABLE
    return failure(Reply(421, "4.4.1 no MX host could be reached"), "connect", outcome, hosts)
