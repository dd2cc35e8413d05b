"""What every portal page handler reaches, built once by the runtime
(``gateway.runtime.portal``), and the pages' Jinja2 environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from gateway import logs
from gateway.audit.words import size_words
from gateway.core import timefmt
from gateway.core.display import visible
from gateway.portal.limits import Limits
from gateway.portal.service import Portal
from gateway.portal.viewer import Signer

TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class PortalApp:
    """What every page handler reaches."""

    portal: Portal
    signer: Signer
    templates: jinja2.Environment
    organisation: str
    limits: Limits = field(default_factory=Limits)
    log: Any = field(default_factory=lambda: logs.get("gateway.portal"))


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Shown, never obeyed: bidi overrides and control characters from the message are made
    # visible, as on the reviewer's pages.
    env.filters.update(visible=visible, size=size_words, when=_when)
    return env


def _when(timestamp: float | None) -> str:
    return timefmt.or_dash(timefmt.day_and_time, timestamp)
