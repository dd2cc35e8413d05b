"""The open-files limit at start (gateway.runtime.limits), over the limits a service may be
given; the OS calls are replaced, since a test cannot raise its own hard limit."""

from __future__ import annotations

import resource
from typing import Any

import pytest

from gateway.runtime import limits

INF = resource.RLIM_INFINITY


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append(("info", event, fields))

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append(("warning", event, fields))


@pytest.mark.parametrize(
    ("soft", "hard", "refused", "now", "event"),
    [
        (1024, 524288, False, 524288, "open files limit raised"),  # Docker 25+, systemd
        (1024, INF, False, limits.NR_OPEN, "open files limit raised"),
        (20000, 20000, False, 20000, None),  # nothing to raise
        (1024, 4096, True, 1024, "open files limit not raised"),
    ],
)
def test_raise_open_files(
    monkeypatch: pytest.MonkeyPatch,
    soft: int,
    hard: int,
    refused: bool,
    now: int,
    event: str | None,
) -> None:
    state = {"limits": (soft, hard)}

    def setrlimit(which: int, wanted: tuple[int, int]) -> None:
        assert which == resource.RLIMIT_NOFILE
        if refused:
            raise ValueError("not allowed to raise maximum limit")
        state["limits"] = wanted

    monkeypatch.setattr(limits.resource, "getrlimit", lambda which: state["limits"])
    monkeypatch.setattr(limits.resource, "setrlimit", setrlimit)
    log = Log()
    assert limits.raise_open_files(log) == now
    assert state["limits"] == (now, hard)
    assert [line[1] for line in log.lines] == ([event] if event else [])
