"""The gateway's JSON log lines, byte for byte: what an operator's jq filters and greps were
written against. A line per case, as the filter and the store write them: the fields in the
order given (bound first, then the call's, then the event, the worker, the level and the
time), ASCII only, the standard ", " and ": " separators, and a newline after each."""

from __future__ import annotations

import io
import json
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from gateway import logs

NOW = 1796162389.25  # 2026-12-01T21:59:49.250000Z
WHOLE_SECOND = 1796162400.0  # 2026-12-01T22:00:00Z


@pytest.fixture(autouse=True)
def _structlog_as_it_was() -> Iterator[None]:
    yield
    structlog.reset_defaults()  # the other tests log through structlog's defaults
    structlog.contextvars.clear_contextvars()


def received(log: Any) -> None:
    log.bind(queue_id="3f9a0c1d2e4b").info(
        "message received",
        client="127.0.0.1",
        sender="teacher@school.test",
        recipients=["a@secure.test", "b@nosts.test"],
        size=5120,
        message_id="<referral-j@school.test>",
        flagged=True,
        findings=["subject-marker [SECURE]"],
    )


def verdict(log: Any) -> None:
    log.bind(queue_id="3f9a0c1d2e4b").info(
        "recipient verdict",
        recipient="b@nosts.test",
        domain="nosts.test",
        action="hold",
        reasons=["sts-no-record"],
        transport="none",
        checked=True,
    )


def held(log: Any) -> None:
    log.bind(queue_id="3f9a0c1d2e4b").info(
        "held",
        hold_id="54ca13ad2318d876",
        recipients=["b@nosts.test"],
        reasons=["sts-no-record"],
        new=True,
    )


def relayed(log: Any) -> None:
    log.bind(queue_id="3f9a0c1d2e4b").info(
        "relayed", recipients=["a@secure.test"], upstream="250 2.0.0 Ok: queued as ABC123"
    )


def audit_appended(log: Any) -> None:
    # Logged straight on the module's logger, without a bind first.
    log.info("audit appended", seq=12, audit_event="held", hold_id="54ca13ad2318d876", head="5d1c")


def not_ascii(log: Any) -> None:
    log.warning("upstream refused", refused={"zoë@école.test": '550 5.1.1 non, "merci"\t'})


RAISED: list[BaseException] = []  # what the emitters below raised, for the expected text


def failed_hold() -> BaseException:
    try:
        raise OSError(28, "No space left on device")
    except OSError as exc:
        RAISED.append(exc)
        return exc


def warning_with_exception(log: Any) -> None:
    log.bind(queue_id="3f9a0c1d2e4b").warning("relay journal late", exc_info=failed_hold())


def exception(log: Any) -> None:
    try:
        raise failed_hold()
    except OSError:
        log.bind(queue_id="3f9a0c1d2e4b").exception("hold failed")


LINES: list[tuple[str, Callable[[Any], None], str]] = [
    (
        "accepted",
        received,
        '{"queue_id": "3f9a0c1d2e4b", "client": "127.0.0.1", "sender": "teacher@school.test", '
        '"recipients": ["a@secure.test", "b@nosts.test"], "size": 5120, '
        '"message_id": "<referral-j@school.test>", "flagged": true, '
        '"findings": ["subject-marker [SECURE]"], "event": "message received", '
        '"level": "info", "timestamp": "2026-12-01T21:59:49.250000Z"}',
    ),
    (
        "verdict",
        verdict,
        '{"queue_id": "3f9a0c1d2e4b", "recipient": "b@nosts.test", "domain": "nosts.test", '
        '"action": "hold", "reasons": ["sts-no-record"], "transport": "none", "checked": true, '
        '"event": "recipient verdict", "level": "info", '
        '"timestamp": "2026-12-01T21:59:49.250000Z"}',
    ),
    (
        "held",
        held,
        '{"queue_id": "3f9a0c1d2e4b", "hold_id": "54ca13ad2318d876", '
        '"recipients": ["b@nosts.test"], "reasons": ["sts-no-record"], "new": true, '
        '"event": "held", "level": "info", "timestamp": "2026-12-01T21:59:49.250000Z"}',
    ),
    (
        "relayed",
        relayed,
        '{"queue_id": "3f9a0c1d2e4b", "recipients": ["a@secure.test"], '
        '"upstream": "250 2.0.0 Ok: queued as ABC123", "event": "relayed", "level": "info", '
        '"timestamp": "2026-12-01T21:59:49.250000Z"}',
    ),
    (
        "unbound",
        audit_appended,
        '{"seq": 12, "audit_event": "held", "hold_id": "54ca13ad2318d876", "head": "5d1c", '
        '"event": "audit appended", "level": "info", '
        '"timestamp": "2026-12-01T21:59:49.250000Z"}',
    ),
    (
        "not ascii",
        not_ascii,
        '{"refused": {"zo\\u00eb@\\u00e9cole.test": "550 5.1.1 non, \\"merci\\"\\t"}, '
        '"event": "upstream refused", "level": "warning", '
        '"timestamp": "2026-12-01T21:59:49.250000Z"}',
    ),
]


def written(emit: Callable[[Any], None], now: float, monkeypatch: pytest.MonkeyPatch) -> str:
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    monkeypatch.setattr(time, "time", lambda: now)
    emit(logs.get("gateway.test"))
    monkeypatch.undo()
    return stream.getvalue()


@pytest.mark.parametrize(
    ("emit", "line"), [(e, line) for _, e, line in LINES], ids=[n for n, *_ in LINES]
)
def test_each_line_reads_byte_for_byte_as_before(
    emit: Callable[[Any], None], line: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert written(emit, NOW, monkeypatch) == line + "\n"


def test_a_worker_is_named_after_the_event(monkeypatch: pytest.MonkeyPatch) -> None:
    # [smtp] workers > 1: each worker binds its number for every line it writes.
    structlog.contextvars.bind_contextvars(worker=1)
    assert written(relayed, NOW, monkeypatch) == (
        '{"queue_id": "3f9a0c1d2e4b", "recipients": ["a@secure.test"], '
        '"upstream": "250 2.0.0 Ok: queued as ABC123", "event": "relayed", "worker": 1, '
        '"level": "info", "timestamp": "2026-12-01T21:59:49.250000Z"}\n'
    )


def test_a_whole_second_has_no_fraction(monkeypatch: pytest.MonkeyPatch) -> None:
    assert written(audit_appended, WHOLE_SECOND, monkeypatch).endswith(
        '"level": "info", "timestamp": "2026-12-01T22:00:00Z"}\n'
    )


@pytest.mark.parametrize(
    ("emit", "event", "level"),
    [
        (warning_with_exception, "relay journal late", "warning"),
        (exception, "hold failed", "error"),
    ],
)
def test_an_exception_is_written_as_its_traceback(
    emit: Callable[[Any], None], event: str, level: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    RAISED.clear()
    text = written(emit, NOW, monkeypatch)
    (raised,) = RAISED
    trace = "".join(traceback.format_exception(raised)).rstrip("\n")
    # The traceback's text comes last, after the time, as structlog's format_exc_info puts it.
    assert text == (
        f'{{"queue_id": "3f9a0c1d2e4b", "event": "{event}", "level": "{level}", '
        f'"timestamp": "2026-12-01T21:59:49.250000Z", "exception": {json.dumps(trace)}}}\n'
    )
    assert trace.startswith("Traceback (most recent call last):\n")
    assert trace.endswith("OSError: [Errno 28] No space left on device")


def test_lines_below_the_level_are_not_written(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    logs.configure("warning", "json", stream)
    log = logs.get("gateway.test")
    log.info("relayed")
    log.bind(queue_id="x").debug("relayed")
    assert stream.getvalue() == ""


def test_positional_arguments_are_interpolated_as_structlog_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def emit(log: Any) -> None:
        log.info("%s held as %s", "message", "54ca13ad2318d876", new=True)

    assert written(emit, NOW, monkeypatch) == (
        '{"new": true, "event": "message held as 54ca13ad2318d876", "level": "info", '
        '"timestamp": "2026-12-01T21:59:49.250000Z"}\n'
    )


def test_a_field_named_like_the_level_keeps_its_place(monkeypatch: pytest.MonkeyPatch) -> None:
    def emit(log: Any) -> None:
        log.info("listening", level="ignored", port=10025)

    assert written(emit, NOW, monkeypatch) == (
        '{"level": "info", "port": 10025, "event": "listening", '
        '"timestamp": "2026-12-01T21:59:49.250000Z"}\n'
    )


def test_the_console_format_reads_the_same_fields() -> None:
    stream = io.StringIO()
    logs.configure("info", "console", stream)
    logs.get("gateway.test").bind(queue_id="3f9a0c1d2e4b").info("held", hold_id="54ca13ad2318d876")
    (line,) = stream.getvalue().splitlines()
    assert "[info     ] held" in line
    assert "hold_id=54ca13ad2318d876" in line
    assert "queue_id=3f9a0c1d2e4b" in line


def test_captured_lines_are_the_calls_fields() -> None:
    # structlog.testing.capture_logs(), as tests of other parts use it, under the JSON set-up:
    # a logger used before the capture, and so assembled already, is captured too.
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    log = logs.get("gateway.test")
    log.info("listening", port=10025)
    with structlog.testing.capture_logs() as captured:
        log.info("relayed", recipients=["a@secure.test"])
        log.bind(queue_id="3f9a0c1d2e4b").warning("relay failed", stage="data")
    log.info("stopped")
    assert captured == [
        {"recipients": ["a@secure.test"], "event": "relayed", "log_level": "info"},
        {
            "queue_id": "3f9a0c1d2e4b",
            "stage": "data",
            "event": "relay failed",
            "log_level": "warning",
        },
    ]
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == [
        "listening",
        "stopped",
    ]


VERDICTS = [
    {
        "recipient": "a@secure.test",
        "domain": "secure.test",
        "action": "relay",
        "reasons": [],
        "transport": "mta-sts-enforce",
        "checked": True,
    },
    {
        "recipient": "b@nosts.test",
        "domain": "nosts.test",
        "action": "hold",
        "reasons": ["sts-no-record"],
        "transport": "none",
        "checked": True,
    },
]


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_a_messages_recipient_lines_are_each_as_its_own_line_in_one_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    separate = io.StringIO()
    logs.configure("info", "json", separate)
    monkeypatch.setattr(time, "time", lambda: NOW)
    for row in VERDICTS:
        logs.get("gateway.test").bind(queue_id="3f9a0c1d2e4b").info("recipient verdict", **row)

    together = CountingStream()
    logs.configure("info", "json", together)
    logged = logs.get("gateway.test").bind(queue_id="3f9a0c1d2e4b")
    logs.info_lines(logged, "recipient verdict", VERDICTS)
    assert together.getvalue() == separate.getvalue()
    assert together.writes == 1
    first = together.getvalue().splitlines()[0]
    assert first == (
        '{"queue_id": "3f9a0c1d2e4b", "recipient": "a@secure.test", "domain": "secure.test", '
        '"action": "relay", "reasons": [], "transport": "mta-sts-enforce", "checked": true, '
        '"event": "recipient verdict", "level": "info", '
        '"timestamp": "2026-12-01T21:59:49.250000Z"}'
    )


def test_recipient_lines_below_the_level_or_captured_are_as_single_lines() -> None:
    quiet = io.StringIO()
    logs.configure("warning", "json", quiet)
    logs.info_lines(logs.get("gateway.test").bind(queue_id="x"), "recipient verdict", VERDICTS)
    assert quiet.getvalue() == ""

    logs.configure("info", "json", io.StringIO())
    with structlog.testing.capture_logs() as captured:
        logs.info_lines(logs.get("gateway.test"), "recipient verdict", VERDICTS)
    expected = [{**row, "event": "recipient verdict", "log_level": "info"} for row in VERDICTS]
    assert captured == expected

    structlog.reset_defaults()  # not configured (as in other tests): a line a row all the same
    with structlog.testing.capture_logs() as captured:
        logs.info_lines(logs.get("gateway.test"), "recipient verdict", VERDICTS)
    assert captured == expected
