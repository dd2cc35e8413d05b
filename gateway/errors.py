"""The gateway's exceptions: one tree. Third-party exceptions are translated into these at the
edge that calls the library (posture/dns.py, posture/stsfetch.py, delivery/, store/crypto.py),
never further in, and the library's exception is kept as the cause (``raise ... from exc``).

    GatewayError             temporary; public_reply (generic, for SMTP); log_fields()
    ├── ConfigError          a bad configuration; the program stops with exit status 2
    ├── AllowlistError       an allowlist file that cannot be read
    ├── LookupFailed         a DNS or HTTPS lookup that did not give an answer
    │   └── PolicyFetchError the MTA-STS policy could not be fetched (carries a PolicyStatus)
    ├── DeliveryFailed       the upstream did not take a message (stage, its reply; at the end)
    ├── ReviewError          a review action that cannot be done (say why to the reviewer)
    ├── UserError            an account change that cannot be made (say why to the person)
    ├── DecryptError         a held message's blob cannot be opened (wrong key, damage)
    ├── StoreUnavailable     the shared database cannot be reached or answer in time
    ├── SchemaMismatch       the database's schema is not the one this release knows
    └── WorkerFailed         a worker process stopped while `gateway serve` started

The SMTP face never shows an error's text: whoever is at the other end of the connection gets a
deliberately generic reply, and the operator gets the detail and its cause in the log. A
temporary error is a 4xx reply (the sending MTA keeps the message and retries, RFC 5321 §4.2.5
and §6.1), a permanent one a 5xx; the enhanced code's class digit always matches the reply's
first digit (RFC 3463 §3.1).
"""

from __future__ import annotations

from gateway.core.model import PolicyStatus
from gateway.smtp.reply import SmtpReply

# RFC 3463 §3.5: X.3.0 "other or undefined mail system status".
TEMPORARY_REPLY = SmtpReply(451, "4.3.0", "Temporary error; please try again later")
PERMANENT_REPLY = SmtpReply(554, "5.3.0", "Permanent error; the message cannot be accepted")


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""

    temporary = False

    @property
    def public_reply(self) -> SmtpReply:
        """What the SMTP client is told: generic on purpose, so no internals leak."""
        return TEMPORARY_REPLY if self.temporary else PERMANENT_REPLY

    def log_fields(self) -> dict[str, object]:
        """Fields for a structured log event: what failed, and the exception behind it."""
        fields: dict[str, object] = {
            "error": type(self).__name__,
            "detail": str(self),
            "temporary": self.temporary,
        }
        cause = self.__cause__
        if cause is not None:
            fields["cause"] = f"{type(cause).__name__}: {cause}"
        return fields


def reply_for(error: BaseException) -> SmtpReply:
    """The SMTP face's reply to an error that escaped the filter. Whatever escapes is a fault
    of ours, permanent or not, and a fault must never bounce mail that a retry after the fix
    would deliver: always the generic 451 4.3.0 (ARCHITECTURE decision 2)."""
    del error  # logged by the caller with log_fields(); the reply is the same for all
    return TEMPORARY_REPLY


def log_fields(error: BaseException) -> dict[str, object]:
    """Log fields for any exception, ours or not."""
    if isinstance(error, GatewayError):
        return error.log_fields()
    return {"error": type(error).__name__, "detail": str(error), "temporary": True}


class ConfigError(GatewayError):
    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem

    def log_fields(self) -> dict[str, object]:
        return {**super().log_fields(), "key": self.key}


class AllowlistError(GatewayError):
    pass


class LookupFailed(GatewayError):
    def __init__(self, detail: str, *, temporary: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.temporary = temporary


class PolicyFetchError(LookupFailed):
    def __init__(self, status: PolicyStatus, detail: str, *, temporary: bool = False) -> None:
        super().__init__(detail, temporary=temporary)
        self.status = status

    def log_fields(self) -> dict[str, object]:
        return {**super().log_fields(), "status": self.status.value}


class ReviewError(GatewayError):
    """A review action that cannot be done: the message says why, for the reviewer."""


class UserError(GatewayError):
    """An account change that cannot be made: the message says why, for the person asking."""


class DecryptError(GatewayError):
    """A held message's blob that cannot be decrypted: the wrong key, or a damaged file."""


class StoreUnavailable(GatewayError):
    """The store's database did not answer (unreachable, restarting, a statement timed out):
    temporary, so the SMTP client is told 451 and retries; the node reconnects by itself."""

    temporary = True


class SchemaMismatch(GatewayError):
    """The database's schema is older or newer than this release's: the message names the
    command that fixes it. A node refuses to start rather than guess."""

    def __init__(self, found: int, known: int) -> None:
        if found < known:
            advice = "run `gateway store migrate` to bring it up to date"
        else:
            advice = "a newer release has migrated it: upgrade this node to that release"
        super().__init__(
            f"the store's schema is version {found} and this release knows version {known}:"
            f" {advice}"
        )
        self.found = found
        self.known = known


class DeliveryFailed(GatewayError):
    """A delivery transaction failed as a whole: nothing was delivered.

    ``code`` and ``text`` are the upstream's reply, or the one a transport stands in when there
    was none (421 when it could not connect, 451 when the connection dropped or timed out
    mid-transaction); ``stage`` says where (connect, MAIL, DATA); ``outcome`` names what
    happened (``refused``, ``deferred``, ``unreachable``, ``timed-out``: the values of
    ``gateway.delivery.transport.Outcome``). Only a permanent refusal is not ``temporary``.
    ``hosts`` says, one line per MX host tried, why each was not used (direct delivery).
    """

    def __init__(
        self, code: int, text: str, stage: str, outcome: str, hosts: tuple[str, ...] = ()
    ) -> None:
        super().__init__(f"upstream {stage}: {code} {text}")
        self.code = code
        self.text = text
        self.stage = stage
        self.outcome = outcome
        self.temporary = outcome != "refused"
        self.hosts = hosts

    def log_fields(self) -> dict[str, object]:
        fields = {"stage": self.stage, "upstream": f"{self.code} {self.text}"}
        return {**super().log_fields(), **fields, "outcome": self.outcome}


class WorkerFailed(GatewayError):
    """A worker process exited, or never said it was listening, while the gateway started."""
