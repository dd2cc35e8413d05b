"""A stateful SMTP client for hypothesis: every rule is one step of a session (or a pipelined
burst of them) against a live `gateway serve`, and the model of the session it keeps says what
the gateway may answer.

Invariants, after every step:

* the process is up, and its log shows no traceback and no error line;
* a well-formed command of a well-formed transaction from a trusted client (loopback, greeted
  with EHLO) never gets a 5xx: MAIL, RCPT, and the reply to the end of DATA;
* a 250 at the end of DATA means a new copy at the upstream or a new hold;
* XFORWARD never changes the transaction: a well-formed one gets 250 outside it and 503
  inside it, anything else a 5xx;

and when a session ends, no notice is stuck in the outbox.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from fuzz import mailgen, xforwardgen
from fuzz.mailgen import Address, Body
from fuzz.watch import Counts, GatewayWatch
from rig.gatewayproc import Gateway, RawSession, Reply

SENDERS = st.one_of(
    mailgen.well_formed_address((mailgen.LOCAL_DOMAIN,)),
    st.just(Address("", True)),  # the null reverse-path, RFC 5321 §4.5.5
)
MAX_RECIPIENTS = 100  # [smtp] max_recipients: past it, 452 (a 4xx) is right


@dataclass
class Transaction:
    """The model of the transaction in progress, as far as the gateway's replies showed it."""

    sender: Address | None = None
    smtputf8: bool = False
    well_formed: bool = True  # every command the gateway took in it was well-formed
    recipients: list[Address] = field(default_factory=list)


OnReply = Callable[[Reply], None]


def must_refuse(address: Address, smtputf8: bool) -> bool:
    """Addresses the SMTP face refuses at MAIL/RCPT whatever else they hold: non-ASCII without
    SMTPUTF8 (553 5.6.7, RFC 6531 §3.4) and control characters (553)."""
    controls = any(ord(c) < 32 or ord(c) == 127 for c in address.text)
    return controls or (address.utf8 and not smtputf8)


class SmtpSessions(RuleBasedStateMachine):
    """One example is one client session (reconnecting when the gateway closes it)."""

    gateway: Gateway  # set by the test before it runs the machine
    watch: GatewayWatch

    def __init__(self) -> None:
        super().__init__()
        self.conn: RawSession | None = None
        self.greeted = False
        self.tx = Transaction()
        # False after a line the model cannot follow (a random command may have changed the
        # transaction): nothing is judged well-formed until EHLO or RSET starts afresh.
        self.known = True
        self.transcript: list[str] = []

    # ---- the connection

    def _connect(self) -> RawSession:
        if self.conn is None:
            self.conn = RawSession(self.gateway.address)
            greeting = self.conn.reply()
            self._note(b"(connect)", greeting)
            assert greeting.code == 220, f"greeting {greeting}"
            self.greeted = False
            self.tx = Transaction()
        return self.conn

    def _closed(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self.greeted = False
        self.known = True
        self.tx = Transaction()

    def _note(self, line: bytes, reply: Reply | None) -> None:
        self.transcript.append(f"C: {line[:200]!r}\nS: {reply}")

    def _exchange(self, steps: list[tuple[bytes, OnReply]]) -> None:
        """Send every line at once (pipelining, RFC 2920), then read and judge each reply."""
        conn = self._connect()
        conn.send(b"".join(line + b"\r\n" for line, _ in steps))
        for line, on_reply in steps:
            try:
                reply = conn.reply()
            except (EOFError, ConnectionError):
                self._note(line, None)
                self._closed()  # the gateway closed the session (421, or after QUIT)
                return
            except TimeoutError:
                raise AssertionError(f"no reply to {line[:200]!r}") from None
            self._note(line, reply)
            on_reply(reply)
            if self.conn is None:
                return

    def _expect_no_5xx(self, what: str, reply: Reply) -> None:
        assert reply.code < 500, f"{what} got {reply}\n" + "\n".join(self.transcript[-20:])

    # ---- commands, each a line and what its reply must be and does to the model

    def _ehlo(self, verb: str, name: str) -> tuple[bytes, OnReply]:
        good = name == "client.school.test"

        def on_reply(reply: Reply) -> None:
            if good:
                self._expect_no_5xx(f"{verb} {name}", reply)
            if reply.code == 250:  # EHLO and HELO reset the transaction (RFC 5321 §4.1.4)
                self.tx, self.known = Transaction(), True
            self.greeted = reply.code == 250 and good and verb == "EHLO"

        return mailgen.command(verb, name), on_reply

    def _mail(self, sender: Address, params: list[str], smtputf8: bool) -> tuple[bytes, OnReply]:
        args = [*params, *(["SMTPUTF8"] if smtputf8 else [])]
        good = (
            self.greeted
            and self.known
            and self.tx.sender is None
            and sender.well_formed
            and (smtputf8 or not sender.utf8)
        )
        line = mailgen.command("MAIL", " ".join([f"FROM:<{sender.text}>", *args]))

        def on_reply(reply: Reply) -> None:
            if good:
                self._expect_no_5xx(f"MAIL FROM:<{sender.text}>", reply)
            assert not (reply.code == 250 and must_refuse(sender, smtputf8)), (
                f"MAIL FROM:<{sender.text!r}> taken: {reply}"
            )
            if reply.code == 250 and self.tx.sender is None:
                self.tx = Transaction(sender, smtputf8, good)

        return line, on_reply

    def _rcpt(self, recipient: Address, params: list[str]) -> tuple[bytes, OnReply]:
        tx = self.tx
        good = (
            self.known
            and tx.sender is not None
            and tx.well_formed
            and recipient.well_formed
            and (tx.smtputf8 or not recipient.utf8)
            and len(tx.recipients) < MAX_RECIPIENTS
        )
        line = mailgen.command("RCPT", " ".join([f"TO:<{recipient.text}>", *params]))

        def on_reply(reply: Reply) -> None:
            if good:
                self._expect_no_5xx(f"RCPT TO:<{recipient.text}>", reply)
            assert not (reply.code == 250 and must_refuse(recipient, tx.smtputf8)), (
                f"RCPT TO:<{recipient.text!r}> taken: {reply}"
            )
            if reply.code == 250:
                self.tx.recipients.append(recipient)
                self.tx.well_formed = self.tx.well_formed and recipient.well_formed

        return line, on_reply

    def _data(self, body: Body | None) -> tuple[bytes, OnReply]:
        """DATA, then (on 354) the body, dot-stuffed, and the end-of-data line."""

        def on_reply(reply: Reply) -> None:
            # A refused DATA leaves the transaction as it was (RFC 5321 §4.1.1.4).
            if reply.code == 354:
                self._send_body(body)

        return b"DATA", on_reply

    def _send_body(self, body: Body | None) -> None:
        conn = self._connect()
        tx, self.tx = self.tx, Transaction()
        good = bool(
            body
            and body.well_formed
            and tx.well_formed
            and tx.sender
            and self.known
            and self.greeted
        )
        before = self.watch.counts()
        data = mailgen.dot_stuffed(body.data) if body is not None else b""
        try:
            conn.send(data + b".\r\n")
            reply = conn.reply()
        except (EOFError, ConnectionError):
            self._closed()
            return
        self._note(b"(message) .", reply)
        if good:
            self._expect_no_5xx("the end of DATA of a well-formed message", reply)
        if reply.code == 250 and "already relayed" not in reply.text:
            self._expect_copy_or_hold(before, reply)

    def _expect_copy_or_hold(self, before: Counts, reply: Reply) -> None:
        # The 250 comes after the upstream's 250 or after the hold is on disk: no waiting.
        after = self.watch.counts()
        assert after.relayed > before.relayed or after.holds > before.holds, (
            f"250 with no copy upstream and no hold: {reply}\n" + "\n".join(self.transcript[-20:])
        )

    def _any(self, line: bytes) -> tuple[bytes, OnReply]:
        """A line of any content: the model forgets what it knew about the transaction."""

        def on_reply(reply: Reply) -> None:
            if reply.code == 354:
                self._send_body(None)
            elif reply.code == 221 or (reply.code == 220 and line.upper().startswith(b"STARTTLS")):
                self._closed()
                return
            self.known = False
            if line[:4].upper() in (b"EHLO", b"HELO"):
                self.greeted = False

        return line, on_reply

    # ---- rules

    @initialize()
    def start(self) -> None:
        self._connect()

    @rule(verb=st.sampled_from(("EHLO", "EHLO", "HELO")), name=mailgen.helo_name)
    def ehlo(self, verb: str, name: str) -> None:
        self._exchange([self._ehlo(verb, name)])

    @rule(sender=st.one_of(SENDERS, mailgen.hostile_address), params=mailgen.mail_params,
          smtputf8=st.booleans())  # fmt: skip
    def mail(self, sender: Address, params: list[str], smtputf8: bool) -> None:
        self._exchange([self._mail(sender, params, smtputf8)])

    @rule(sender=SENDERS, params=mailgen.hostile_params)
    def mail_with_hostile_parameters(self, sender: Address, params: list[str]) -> None:
        self._exchange(
            [self._any(mailgen.command("MAIL", f"FROM:<{sender.text}> " + " ".join(params)))]
        )

    @precondition(lambda self: self.tx.sender is not None)
    @rule(recipient=mailgen.any_address(), params=mailgen.rcpt_params)
    def rcpt(self, recipient: Address, params: list[str]) -> None:
        self._exchange([self._rcpt(recipient, params)])

    @rule(data=st.data(), hostile=st.booleans())
    def data(self, data: st.DataObject, hostile: bool) -> None:
        recipients = tuple(r.text for r in self.tx.recipients)
        strategy = mailgen.hostile_body() if hostile else mailgen.well_formed_body(recipients)
        self._exchange([self._data(data.draw(strategy))])

    @rule(data=st.data(), count=st.integers(1, 4), hostile=st.booleans())
    def pipelined_transaction(self, data: st.DataObject, count: int, hostile: bool) -> None:
        """EHLO, then MAIL, RCPT x count and DATA in one write (RFC 2920 §3.1: DATA last)."""
        sender = data.draw(SENDERS)
        address = mailgen.any_address() if hostile else mailgen.well_formed_address()
        recipients = data.draw(st.lists(address, min_size=count, max_size=count))
        texts = tuple(r.text for r in recipients)
        body = data.draw(mailgen.hostile_body() if hostile else mailgen.well_formed_body(texts))
        self._exchange([self._ehlo("EHLO", "client.school.test")])
        if self.conn is None:
            return
        utf8 = sender.utf8 or any(r.utf8 for r in recipients)
        rcpts = [
            (mailgen.command("RCPT", f"TO:<{r.text}>"), self._later_rcpt(r)) for r in recipients
        ]
        self._exchange([self._mail(sender, [], utf8), *rcpts, self._data(body)])

    def _later_rcpt(self, recipient: Address) -> OnReply:
        # Judged against the model as it is when the reply comes (after MAIL's reply).
        def on_reply(reply: Reply) -> None:
            self._rcpt(recipient, [])[1](reply)

        return on_reply

    @rule(line=xforwardgen.well_formed)
    def xforward(self, line: bytes) -> None:
        """XFORWARD from the trusted client: 250 between transactions, 503 in one."""
        judged = self.greeted and self.known
        in_transaction = self.tx.sender is not None

        def on_reply(reply: Reply) -> None:
            if judged:
                assert reply.code == (503 if in_transaction else 250), f"{line!r} got {reply}"

        self._exchange([(line, on_reply)])

    @rule(line=xforwardgen.hostile)
    def hostile_xforward(self, line: bytes) -> None:
        def on_reply(reply: Reply) -> None:
            # 500: too long a line; a random line may be well-formed by chance (250).
            assert reply.code in (250, 500, 501, 503), f"{line[:200]!r} got {reply}"

        self._exchange([(line, on_reply)])

    @rule(line=mailgen.garbage_line)
    def garbage(self, line: bytes) -> None:
        self._exchange([self._any(line)])

    @rule(lines=st.lists(mailgen.garbage_line, min_size=2, max_size=5))
    def pipelined_garbage(self, lines: list[bytes]) -> None:
        self._exchange([self._any(line) for line in lines])

    @rule(verb=st.sampled_from(("RSET", "NOOP")))
    def reset_or_noop(self, verb: str) -> None:
        def on_reply(reply: Reply) -> None:
            if self.greeted:
                assert reply.code == 250, f"{verb} got {reply}"
            if verb == "RSET" and reply.code == 250:
                self.tx, self.known = Transaction(), True

        self._exchange([(verb.encode(), on_reply)])

    @rule(how=st.sampled_from(("quit", "drop", "drop-in-data")))
    def leave(self, how: str) -> None:
        """QUIT, or drop the connection, in a transaction or halfway through a message."""
        conn = self._connect()
        if how == "quit":
            self._exchange([(b"QUIT", lambda reply: self._closed())])
            return
        if how == "drop-in-data" and self.tx.recipients:
            conn.send(b"DATA\r\n")
            with contextlib.suppress(EOFError, ConnectionError):
                if conn.reply().code == 354:
                    conn.send(b"Subject: cut off\r\nX-Safeguarding: yes\r\n\r\nhalf a")
        self._closed()

    # ---- invariants

    @invariant()
    def gateway_is_healthy(self) -> None:
        problems = self.watch.problems()
        assert not problems, "\n".join([*problems, *self.transcript[-20:]])

    def teardown(self) -> None:
        if self.conn is not None:
            try:
                self.conn.send(b"QUIT\r\n")
                self.conn.reply()
            except (EOFError, OSError):
                pass
            self._closed()
        stuck = self.watch.stuck_notices()
        assert not stuck, f"notices stuck in the outbox: {stuck}"
