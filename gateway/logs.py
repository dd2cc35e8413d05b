"""Logging: structlog, one JSON object a line by default, with context bound per operation.

``gateway serve`` logs to stdout (the service manager collects it); the one-shot commands log
to stderr so that their own output stays clean for pipes.

The filter writes a few lines per message and one per recipient, so a line must be cheap
(and a message's recipient lines go out in one write: ``info_lines``).
structlog is configured as usual (``structlog.configure``, the processors ``merge_contextvars``,
``stamp`` and ``render_json``), and the bound loggers' level methods, while that JSON chain is
the one configured, run it inline: one dict built from the bound context and the call's fields,
the level, the time stamp (formatted once a second), the exception's text only when there is
one, one JSON encoder made at start (``json.dumps`` with ``default=`` builds a new encoder
every call, ``JSONEncoder.encode`` a new C encoder), and one write and flush of the line. Any
other chain (the console's, ``structlog.testing.capture_logs``) goes through structlog's own
path. The lines read as before, byte for byte: the same events and fields in the same order,
ASCII only, the standard ", " and ": " separators (scripts grep for '"event": "listening"').
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from json import encoder as json_encoder
from typing import Any, TextIO

import structlog
from structlog.contextvars import merge_contextvars
from structlog.processors import format_exc_info
from structlog.typing import EventDict

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LEVELS["error"] = logging.ERROR
# structlog's names for two method names (``add_log_level``): warn is the stdlib's alias,
# exception() is error() with the traceback.
_LEVEL_OF = {"warn": "warning", "exception": "error"}


def configure(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    console = fmt == "console"
    chain: list[Any] = (
        [merge_contextvars, stamp, structlog.dev.ConsoleRenderer(colors=False)]
        if console
        else list(_JSON_CHAIN)  # a copy: capture_logs() edits the configured list in place
    )
    writer = LineWriter(stream or sys.stdout)
    structlog.configure(
        processors=chain,
        wrapper_class=_wrapper(_LEVELS[level]),
        logger_factory=lambda *_: writer,  # one writer, not one PrintLogger per call
        # A module's logger is assembled once, at its first line, not at every line; a test's
        # capture_logs() still sees every line (it edits the configured chain in place).
        cache_logger_on_first_use=True,
    )


def get(name: str) -> Any:
    return structlog.get_logger(name)


def info_lines(log: Any, event: str, rows: Sequence[dict[str, Any]]) -> None:
    """A line of ``event`` per row of fields, as ``log.info(event, **row)`` writes each, in one
    write when ``configure`` made the logger (structlog's defaults, as in tests: one a row)."""
    own = getattr(log, "info_lines", None)
    if own is not None:
        own(event, rows)
        return
    for row in rows:
        log.info(event, **row)


class LineWriter:
    """What structlog's PrintLogger does, a line at a time: the line and its newline in one
    write, then a flush, so that the service manager (and ``kill -9``) sees every line whole."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()  # store threads and the loop may log at once

    def msg(self, message: str) -> None:
        with self._lock:
            self._stream.write(message + "\n")
            self._stream.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def stamp(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """The level, the UTC time (ISO 8601, as ``2026-12-01T20:19:49.123456Z``) and, for an
    exception, its traceback as text."""
    event_dict["level"] = _LEVEL_OF.get(method_name, method_name)
    event_dict["timestamp"] = timestamp(time.time())
    if "exc_info" in event_dict:
        return format_exc_info(logger, method_name, event_dict)
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
# The C encoder JSONEncoder.encode makes on every call, made once, with json.dumps's settings
# (ASCII, ", " and ": ", NaN allowed). Without the circular-reference check: a line that loops
# fails here and is encoded again by _ENCODER, which raises the ValueError it always did.
_make_c_encoder: Any = getattr(json_encoder, "c_make_encoder", None)
_C_ENCODE: Any = (
    _make_c_encoder(
        None,
        _fallback,
        json_encoder.encode_basestring_ascii,
        None,
        _ENCODER.key_separator,
        _ENCODER.item_separator,
        False,
        False,
        True,
    )
    if _make_c_encoder is not None
    else None
)


def render_json(logger: Any, method_name: str, event_dict: EventDict) -> str:
    if _C_ENCODE is not None:
        try:
            return "".join(_C_ENCODE(event_dict, 0))
        except Exception:  # noqa: S110 - the standard encoder says what is wrong, as before
            pass
    return _ENCODER.encode(event_dict)


_JSON_CHAIN: list[Any] = [merge_contextvars, stamp, render_json]


def _line_method(level: str, structlogs: Callable[..., Any]) -> Callable[..., Any]:
    """A level method that runs the JSON chain inline (the same steps, in the same order, as
    structlog's ``_process_event``), or ``structlogs`` own method under any other chain."""
    # The last two fields, always ASCII: written after the encoded fields rather than encoded.
    tail = f', "level": "{level}", "timestamp": "'

    def method(self: Any, event: str, *args: Any, **fields: Any) -> Any:
        if args or self._processors != _JSON_CHAIN:  # args: log.info("%s held", hold_id)
            return structlogs(self, event, *args, **fields)
        return getattr(self._logger, level)(_line(self, level, tail, event, fields))

    method.__name__ = level
    return method


def _line(self: Any, level: str, tail: str, event: str, fields: dict[str, Any]) -> str:
    """One line of the JSON chain, as text (without its newline)."""
    line = {**self._context, **fields}
    line["event"] = event
    merge_contextvars(self._logger, level, line)
    if "exc_info" in line or "level" in line or "timestamp" in line:
        # The exception's text comes after the time; a field named level or timestamp
        # keeps its place: the chain's own steps, as structlog runs them.
        return render_json(self._logger, level, stamp(self._logger, level, line))
    fields_text = render_json(self._logger, level, line)[:-1]
    return f'{fields_text}{tail}{timestamp(time.time())}"}}'


def _lines_method(enabled: bool, structlogs: Callable[..., Any]) -> Callable[..., Any]:
    """``info_lines(event, rows)``: a line of ``event`` per row of fields, each the line that
    ``info(event, **row)`` writes, all of them in one write and flush (one system call where
    a message's five recipients made five). The lines are whole in it, in order."""
    tail = ', "level": "info", "timestamp": "'

    def info_lines(self: Any, event: str, rows: Sequence[dict[str, Any]]) -> None:
        if not enabled or not rows:
            return
        if self._processors != _JSON_CHAIN:
            for row in rows:
                structlogs(self, event, **row)
            return
        self._logger.info("\n".join(_line(self, "info", tail, event, row) for row in rows))

    return info_lines


@functools.cache
def _wrapper(min_level: int) -> type[Any]:
    """structlog's filtering bound logger for ``min_level``, its enabled level methods taking
    the inline JSON path; the methods below the level stay structlog's no-ops."""
    base: Any = structlog.make_filtering_bound_logger(min_level)
    names = {"debug": "debug", "info": "info", "msg": "info", "warning": "warning"}
    names |= {"warn": "warning", "error": "error", "critical": "critical", "fatal": "critical"}
    methods = {
        name: _line_method(level, getattr(base, name))
        for name, level in names.items()
        if base.is_enabled_for(None, logging.getLevelName(level.upper()))
    }
    methods["info_lines"] = _lines_method(min_level <= logging.INFO, base.info)
    return type(f"Line{base.__name__}", (base,), methods)
