"""The SMTP face's replies when the filter fails: generic, from the error tree, never 500."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiosmtpd.smtp import Session

from gateway.errors import DecryptError, GatewayError, LookupFailed
from gateway.filter.message import Incoming
from gateway.filter.orchestrator import Filter
from gateway.smtp.handler import Handler
from gateway.smtp.reply import SmtpReply
from gateway.smtp.server import DsnEnvelope


class FailingFilter:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def handle(self, incoming: Incoming) -> SmtpReply:
        raise self.error


def _envelope() -> DsnEnvelope:
    envelope = DsnEnvelope()
    envelope.mail_from = "a@school.test"
    envelope.rcpt_tos = ["b@council.test"]
    envelope.original_content = b"Subject: hi\r\n\r\nbody\r\n"
    return envelope


async def _data_reply(error: Exception) -> str:
    handler = Handler(cast(Filter, FailingFilter(error)), max_recipients=10)
    session = Session(asyncio.get_running_loop())
    session.peer = ("127.0.0.1", 40000)
    return await handler.handle_DATA(cast(Any, None), session, _envelope())


@pytest.mark.parametrize(
    ("error", "reply"),
    [
        (RuntimeError("database is locked at /srv/data"), "451 4.3.0 "),
        (LookupFailed("SERVFAIL from 127.0.0.53", temporary=True), "451 4.3.0 "),
        (DecryptError("hold abc: wrong key"), "451 4.3.0 "),  # a fault: never a bounce
    ],
)
async def test_a_failing_filter_gets_a_generic_reply(error: Exception, reply: str) -> None:
    text = await _data_reply(error)
    assert text.startswith(reply)
    assert str(error) not in text  # no internals in the reply


async def test_the_exception_hook_answers_451_not_aiosmtpds_500() -> None:
    handler = Handler(cast(Filter, FailingFilter(GatewayError())), max_recipients=10)
    assert (await handler.handle_exception(KeyError("x"))).startswith("451 4.3.0 ")
