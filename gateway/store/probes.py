"""The last active probe of each domain: what `gateway allowlist check --live` and
`gateway check --probe` found, for the web allowlist page. Facts about servers, never mail."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProbeRecord:
    domain: str
    at: float  # seconds since the epoch
    secure: bool
    summary: str  # one line: why secure or not
    hosts: tuple[Mapping[str, Any], ...] = ()  # per MX host: the facts the probe found
