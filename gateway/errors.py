"""The gateway's exceptions. Third-party exceptions are translated into these at the edge that
calls the library (dns.py, stsfetch.py), never further in.

    GatewayError
    ├── ConfigError          a bad configuration; the program stops with exit status 2
    ├── AllowlistError       an allowlist file that cannot be read
    └── LookupFailed         a DNS or HTTPS lookup that did not give an answer
        └── PolicyFetchError the MTA-STS policy could not be fetched (carries a PolicyStatus)
"""

from __future__ import annotations

from gateway.core.model import PolicyStatus


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""

    temporary = False


class ConfigError(GatewayError):
    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


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


class DeliveryFailed(GatewayError):
    """A delivery transaction failed as a whole: nothing was delivered.

    ``code`` and ``text`` are the upstream's reply, or the one a transport stands in when there
    was none (421 when it could not connect, 451 when the connection dropped or timed out
    mid-transaction); ``stage`` says where (connect, MAIL, DATA); ``outcome`` names what
    happened (``refused``, ``deferred``, ``unreachable``, ``timed-out``: the values of
    ``gateway.delivery.transport.Outcome``). Only a permanent refusal is not ``temporary``.
    """

    def __init__(self, code: int, text: str, stage: str, outcome: str) -> None:
        super().__init__(f"upstream {stage}: {code} {text}")
        self.code = code
        self.text = text
        self.stage = stage
        self.outcome = outcome
        self.temporary = outcome != "refused"
