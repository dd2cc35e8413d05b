"""The one reply type of the SMTP face: a code, an enhanced status code (RFC 3463) and text."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SmtpReply:
    code: int
    enhanced: str
    text: str

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    def __str__(self) -> str:
        return f"{self.code} {self.enhanced} {self.text}"
