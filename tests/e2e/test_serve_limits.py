"""`gateway serve` started as Docker and systemd start services, with a soft open-files limit
of 1024 under a higher hard one, raises its soft limit to the hard one."""

import contextlib
import re
import resource
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rig.gatewayproc import Gateway, message

SERVICE_SOFT_LIMIT = 1024


@contextlib.contextmanager
def soft_open_files(limit: int) -> Iterator[int]:
    """This process's soft RLIMIT_NOFILE at `limit` (its children inherit it); the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_files_limits(pid: int) -> tuple[int, int]:
    text = Path(f"/proc/{pid}/limits").read_text()
    match = re.search(r"^Max open files\s+(\d+)\s+(\d+)", text, re.MULTILINE)
    assert match, text
    return int(match.group(1)), int(match.group(2))


def test_serve_raises_its_open_files_limit_to_the_hard_limit(
    serve: Callable[..., Gateway],
) -> None:
    with soft_open_files(SERVICE_SOFT_LIMIT) as hard:
        if hard <= SERVICE_SOFT_LIMIT:
            pytest.fail(f"the hard open-files limit here ({hard}) leaves nothing to raise")
        gw = serve()
    assert gw.proc.pid is not None
    assert open_files_limits(gw.proc.pid) == (hard, hard)
    [raised] = gw.proc.events("open files limit raised")
    assert (raised["before"], raised["now"]) == (SERVICE_SOFT_LIMIT, hard)
    reply = gw.send("head@school.test", ["colleague@secure.test"], message())
    assert reply.code == 250, reply
