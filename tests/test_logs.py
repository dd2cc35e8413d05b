"""The JSON log lines: what a reader of the gateway's logs (a person, jq, a grep in a script)
sees, whatever the fields hold."""

from __future__ import annotations

import datetime as dt
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from gateway import logs

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(autouse=True)
def _structlog_as_it_was() -> Iterator[None]:
    yield
    structlog.reset_defaults()  # the other tests log through structlog's defaults


def lines_of(emit: Any, level: str = "info") -> list[dict[str, Any]]:
    stream = io.StringIO()
    logs.configure(level, "json", stream)
    emit(logs.get("gateway.test"))
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@given(st.dictionaries(st.text(), JSON_VALUES, max_size=6))
def test_a_line_is_the_standard_json_of_its_fields(fields: dict[str, Any]) -> None:
    # The same text the standard library's json.dumps makes: ASCII, ", " and ": ".
    assert logs.render_json(None, "info", dict(fields)) == json.dumps(fields)


def test_what_json_cannot_hold_is_written_as_its_repr() -> None:
    class Own:
        def __structlog__(self) -> str:
            return "own words"

    fields = {"path": Path("/var/lib/gateway"), "tags": {"a"}, "own": Own(), "raw": b"\x00"}
    line = json.loads(logs.render_json(None, "info", fields))
    assert line == {
        "path": "PosixPath('/var/lib/gateway')",
        "tags": "{'a'}",
        "own": "own words",
        "raw": "b'\\x00'",
    }


def test_a_line_has_the_event_its_fields_the_level_and_the_time() -> None:
    def emit(log: Any) -> None:
        log.bind(queue_id="abc").info(
            "recipient verdict", recipient="a@secure.test", reasons=[], checked=True
        )

    before = dt.datetime.now(dt.UTC)
    (line,) = lines_of(emit)
    after = dt.datetime.now(dt.UTC)
    assert list(line) == [
        "queue_id",
        "recipient",
        "reasons",
        "checked",
        "event",
        "level",
        "timestamp",
    ]
    assert line["event"] == "recipient verdict"
    assert line["level"] == "info"
    assert line["timestamp"].endswith("Z")
    stamped = dt.datetime.fromisoformat(line["timestamp"])
    assert before - dt.timedelta(seconds=1) < stamped <= after


def test_levels_are_named_as_before_and_filtered() -> None:
    def emit(log: Any) -> None:
        log.debug("not shown")
        log.warning("a warning")
        try:
            raise ValueError("the cause")
        except ValueError:
            log.exception("hold failed")

    warning, error = lines_of(emit)
    assert warning["level"] == "warning"
    assert error["level"] == "error"
    assert error["event"] == "hold failed"
    assert "ValueError: the cause" in error["exception"]
    assert "exc_info" not in error


@given(st.integers(min_value=0, max_value=4_102_444_800 * 1_000_000))
def test_the_time_stamp_reads_as_iso_8601_utc(micros: int) -> None:
    now = micros / 1_000_000
    text = logs.timestamp(now)
    assert text.endswith("Z")
    expected = dt.datetime.fromtimestamp(now, dt.UTC)
    # Within a microsecond of the standard library's reading of the same float.
    assert abs(dt.datetime.fromisoformat(text) - expected) <= dt.timedelta(microseconds=1)
    assert len(text) in (20, 27)  # whole seconds drop the fraction, as isoformat() does


# Any field name a call can pass (not the method's own parameters, nor exc_info, whose value
# becomes a traceback), "level" and "timestamp" included.
FIELD_NAMES = st.text().filter(lambda name: name not in ("self", "event", "exc_info"))


@given(
    st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=6),
    st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=3),
    st.sampled_from(["debug", "info", "warning", "error", "critical"]),
)
def test_a_line_is_what_structlogs_own_chain_writes(
    fields: dict[str, Any], bound: dict[str, Any], level: str
) -> None:
    # The configured level method against the configured processors run one by one, as
    # structlog's own path runs them, at the same moment.
    stream = io.StringIO()
    logs.configure("debug", "json", stream)
    with mock.patch.object(time, "time", return_value=1796162389.25):
        getattr(logs.get("gateway.test").bind(**bound), level)("an event", **fields)
        expected: Any = {**bound, **fields, "event": "an event"}
        for processor in structlog.get_config()["processors"]:
            expected = processor(None, level, expected)
    assert stream.getvalue() == expected + "\n"
