"""The Jinja2 environment: every template autoescaped, undefined names an error, and the few
filters the pages use to show times, ages and sizes the way people read them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from gateway.audit import words
from gateway.core import reasons, timefmt
from gateway.core.auditchain import Entry
from gateway.core.display import visible
from gateway.store import HeldRecipient

TEMPLATES = Path(__file__).parent / "templates"


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(age=age, when=when, size=size, visible=visible, data=audit_data)
    env.globals["reason_words"] = reason_words
    env.globals["sentence"] = entry_sentence
    return env


def age(seconds: float) -> str:
    """45 min, 5 h 12 min, 3 days 4 h."""
    minutes = int(max(seconds, 0) // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} days {hours} h" if hours else f"{days} days"


def when(timestamp: float | None) -> str:
    return timefmt.or_dash(timefmt.day_and_time, timestamp)


def reason_words(code: str, recipient: HeldRecipient) -> str:
    """A reason code in the sender's words, as the notices put it (``core.reasons``)."""
    return reasons.sender_words(code, recipient.domain, recipient.address)


def entry_sentence(entry: Entry) -> str:
    """The entry as its sentence (``audit.words``); the page folds its details away."""
    return words.sentence(entry.event, entry.actor, entry.hold_id, entry.data)


def size(count: int) -> str:
    return words.size_words(count)


def audit_data(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """An audit entry's details as (name, text) pairs for a definition list."""
    shown = []
    for key, value in data.items():
        if isinstance(value, str):
            text = value or "-"
        elif not value and isinstance(value, list | dict):
            text = "-"
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            text = ", ".join(value)
        elif isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            text = "; ".join(f"{k}: {v}" for k, v in value.items())
        else:
            text = json.dumps(value, ensure_ascii=False, sort_keys=True)
        shown.append((key.replace("_", " "), text))
    return shown
