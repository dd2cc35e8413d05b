"""RFC 2920 pipelining on the way in, and the idle timer: what every command of a session pays.

aiosmtpd writes each reply on its own and makes a new timer for every command. ``PipelinedSMTP``
is aiosmtpd's session with two changes and nothing else: the 250s of a pipelined group go out
in one write with the reply that ends the group (RFC 2920 §3.2), and one timer stays for the
session while its deadline moves. ``server.GatewaySMTP`` builds on it.
"""

from __future__ import annotations

from typing import Any

from aiosmtpd.smtp import SMTP

# The replies push may keep back while more of a pipelined group is in (RFC 2920 §3.2).
_KEPT_BACK = (b"250 ", b"251 ")


class PipelinedSMTP(SMTP):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._kept: list[bytes] = []  # replies kept back for one write (push)
        self._deadline = 0.0  # when a silent session ends (_reset_timeout)
        super().__init__(*args, **kwargs)

    async def push(self, status: str | bytes) -> None:
        """aiosmtpd's push, with RFC 2920 §3.2's buffering of a pipelined group's replies: a
        250 or 251 (MAIL, RCPT, RSET, NOOP: commands after which the session only reads the
        next command) is kept back while the client's next command line is already in, and
        goes out in one write with the next reply that is not kept. Nothing is kept while the
        session waits for input (that next line is there), and every other reply (354, 220,
        421, refusals) sends what was kept first, so the order is that of the commands."""
        if isinstance(status, str):
            status = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii")
        line = status + b"\r\n"
        if line[:4] in _KEPT_BACK and self._next_command_in():
            self._kept.append(line)
            return
        if self._kept:
            self._kept.append(line)
            line = b"".join(self._kept)
            self._kept.clear()
        assert self._writer is not None
        self._writer.write(line)
        await self._writer.drain()

    def _reset_timeout(self, duration: float | None = None) -> None:
        # aiosmtpd cancels its timer and makes a new one for every command; here the one
        # timer stays and only the deadline moves: when it comes early, it is set again for
        # what is left. The session still ends after [smtp] command_timeout of silence.
        self._deadline = self.loop.time() + (duration or self._timeout_duration)
        handle = self._timeout_handle
        if handle is not None and not handle.cancelled() and handle.when() <= self._deadline:
            return
        if handle is not None:
            handle.cancel()
        self._timeout_handle = self.loop.call_at(self._deadline, self._timeout_due)

    def _timeout_due(self) -> None:
        if self.loop.time() < self._deadline:
            self._timeout_handle = self.loop.call_at(self._deadline, self._timeout_due)
            return
        self._timeout_cb()  # type: ignore[no-untyped-call]  # aiosmtpd: closes the transport

    def _next_command_in(self) -> bool:
        # StreamReader's own buffer: the client's next command line, complete, already read.
        buffered = getattr(self._reader, "_buffer", None)
        return isinstance(buffered, bytearray) and buffered.find(b"\n") >= 0
