"""Logging: structlog, one JSON object a line by default, with context bound per operation.

``gateway serve`` logs to stdout (the service manager collects it); the one-shot commands log
to stderr so that their own output stays clean for pipes.

The filter writes a few lines per message and one per recipient, so a line must be cheap: one
JSON encoder made at start rather than one a line (``json.dumps`` with ``default=`` builds a
new encoder every call), and one processor for the level, the time stamp (formatted once a
second) and, only when there is one, the exception's text. The lines read as before, byte for
byte in form: the same events and fields in the same order, ASCII only, the standard ", " and
": " separators (scripts grep for '"event": "listening"').
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LEVELS["error"] = logging.ERROR
# structlog's names for two method names (``add_log_level``): warn is the stdlib's alias,
# exception() is error() with the traceback.
_LEVEL_OF = {"warn": "warning", "exception": "error"}


def configure(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    console = fmt == "console"
    renderer: Any = structlog.dev.ConsoleRenderer(colors=False) if console else render_json
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, stamp, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )


def get(name: str) -> Any:
    return structlog.get_logger(name)


def stamp(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """The level, the UTC time (ISO 8601, as ``2026-12-01T20:19:49.123456Z``) and, for an
    exception, its traceback as text."""
    event_dict["level"] = _LEVEL_OF.get(method_name, method_name)
    event_dict["timestamp"] = timestamp(time.time())
    if "exc_info" in event_dict:
        return structlog.processors.format_exc_info(logger, method_name, event_dict)
    return event_dict


_second: list[Any] = [-1, ""]  # the last whole second seen and its text: one strftime a second


def timestamp(now: float) -> str:
    micros = round(now * 1_000_000)
    whole, fraction = divmod(micros, 1_000_000)
    if whole != _second[0]:
        _second[:] = [whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))]
    # datetime.isoformat leaves the fraction out when it is zero; so does this.
    return f"{_second[1]}.{fraction:06d}Z" if fraction else f"{_second[1]}Z"


def _fallback(obj: Any) -> Any:
    """What JSON cannot hold: the object's own ``__structlog__`` if it has one, else its repr
    (as structlog's JSONRenderer does)."""
    own = getattr(obj, "__structlog__", None)
    return own() if callable(own) else repr(obj)


_ENCODER = json.JSONEncoder(default=_fallback)


def render_json(logger: Any, method_name: str, event_dict: EventDict) -> str:
    return _ENCODER.encode(event_dict)
