"""Hypothesis strategies for what an SMTP client can send: addresses, command lines, messages.

Two kinds of each. *Well-formed* ones are what a correct client sends (RFC 5321 addresses,
RFC 5322 / MIME messages with CRLF and lines of at most 998 octets, RFC 2047 encoded words):
the gateway must never answer them 5xx. *Hostile* ones mix in every character class an attacker
reaches for (controls, NUL, quotes, ``@@``, backslashes, non-ASCII, bidi and zero-width
characters, random bytes and line lengths): the gateway may refuse them, but must stay up, log
no traceback, and never say 250 without a copy upstream or a hold.

Command lines never hold CR or LF: a line ending inside a command would split it in two, and
the session could no longer tell which reply answers which command.
"""

from __future__ import annotations

import base64
import email.policy
import quopri
from dataclasses import dataclass
from email.message import EmailMessage

from hypothesis import strategies as st

LOCAL_DOMAIN = "school.test"
# Rig domains: relayed at once (secure.test), held (nosts.test and the broken ones), local.
RIG_DOMAINS = (
    "secure.test",
    "nosts.test",
    "testing.test",
    "mxmismatch.test",
    "servfail.test",
    "unlisted.test",
    "school.test",
)

ATEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~"
CONTROLS = "".join(chr(c) for c in (*range(0, 9), 11, 12, *range(14, 32), 127))
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f"
INVISIBLE = "\u200b\u200c\u200d\ufeff\u00ad"
NON_ASCII = "éßüøçñå中文日本語한국어Ωжд\u0301"
SPECIALS = '"\\@<>()[]:;,. \t'


@dataclass(frozen=True)
class Address:
    """An envelope address and whether a correct client could send it: ``utf8`` when it needs
    SMTPUTF8 (RFC 6531), ``well_formed`` when it is RFC 5321 syntax."""

    text: str
    well_formed: bool
    utf8: bool = False


# ---- addresses

_dot_atom = st.lists(st.text(ATEXT, min_size=1, max_size=12), min_size=1, max_size=3).map(".".join)
# An atom does not start with a combining mark: a lone U+0301 is no letter of any mailbox,
# and the SMTP face refuses it (email-validator); after a letter it is part of one.
_utf8_atom = st.lists(
    st.text(ATEXT + NON_ASCII, min_size=1, max_size=10).filter(lambda a: a[0] != "\u0301"),
    min_size=1,
    max_size=2,
).map(".".join)
_quoted = st.text(ATEXT + " ().,:;@<>[]", min_size=1, max_size=12).map(lambda s: f'"{s}"')


def well_formed_address(domains: tuple[str, ...] = RIG_DOMAINS) -> st.SearchStrategy[Address]:
    ascii_local = st.one_of(_dot_atom, _quoted)
    ascii_address = st.builds(
        lambda local, domain: Address(f"{local}@{domain}", True),
        ascii_local,
        st.sampled_from(domains),
    )
    utf8_address = st.builds(
        lambda local, domain: Address(f"{local}@{domain}", True, utf8=not local.isascii()),
        _utf8_atom,
        st.sampled_from(domains),
    )
    return st.one_of(ascii_address, ascii_address, utf8_address)


_hostile_char = st.one_of(
    st.sampled_from(ATEXT),
    st.sampled_from(CONTROLS),
    st.sampled_from(BIDI),
    st.sampled_from(INVISIBLE),
    st.sampled_from(NON_ASCII),
    st.sampled_from(SPECIALS),
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
)
_hostile_local = st.one_of(
    st.lists(_hostile_char, min_size=0, max_size=20).map("".join),
    st.builds(lambda a, b: f"{a}@@{b}", _dot_atom, _dot_atom),
    st.builds(lambda a: f'"{a}', _dot_atom),  # an unterminated quote
    st.builds(lambda a: f'"{a}\\"', _dot_atom),  # a quoted-pair that eats the quote
    st.builds(lambda a, b: f'"{a}"{b}', _dot_atom, _dot_atom),  # text after the quote
    st.builds(lambda a, b: f"{a}{b}", _dot_atom, st.sampled_from(BIDI + INVISIBLE)),
)
_hostile_domain = st.one_of(
    st.sampled_from(RIG_DOMAINS),
    st.sampled_from(
        ("[127.0.0.1]", "[IPv6:::1]", "1.2.3.4", "xn--e1afmkfd.test", "a..b", "-x.test")
    ),
    st.lists(_hostile_char, min_size=0, max_size=15).map("".join),
    st.builds(lambda d: d.upper(), st.sampled_from(RIG_DOMAINS)),
    st.builds(lambda d: "école." + d, st.sampled_from(RIG_DOMAINS)),
)


def _classified(text: str) -> Address:
    # Whatever the strategy meant, nothing hostile is ever counted as well-formed.
    return Address(text, False, utf8=not text.isascii())


hostile_address = st.one_of(
    st.builds(
        lambda local, domain: _classified(f"{local}@{domain}"), _hostile_local, _hostile_domain
    ),
    st.builds(_classified, _hostile_local),  # no domain at all (Postmaster, or nonsense)
    st.just(Address("Postmaster", False)),
    st.just(Address("", False)),
)


def any_address(domains: tuple[str, ...] = RIG_DOMAINS) -> st.SearchStrategy[Address]:
    return st.one_of(well_formed_address(domains), hostile_address)


# ---- commands

VERBS = (
    "EHLO",
    "HELO",
    "MAIL",
    "RCPT",
    "DATA",
    "RSET",
    "NOOP",
    "VRFY",
    "EXPN",
    "HELP",
    "QUIT",
    "AUTH",
    "BDAT",
    "STARTTLS",
    "TURN",
    "ETRN",
    "XCLIENT",
    "",
)

_line_byte = st.integers(0, 255).filter(lambda b: b not in (10, 13))
garbage_line = st.one_of(
    st.lists(_line_byte, max_size=80).map(bytes),
    st.lists(_line_byte, min_size=400, max_size=1400).map(bytes),  # over 512 and 1,000
    st.builds(
        lambda verb, rest: verb.encode() + b" " + rest,
        st.sampled_from(VERBS),
        st.lists(_line_byte, max_size=60).map(bytes),
    ),
)
helo_name = st.one_of(
    st.just("client.school.test"),
    st.sampled_from(("[127.0.0.1]", "localhost", "x", "")),
    st.text(ATEXT + ".-" + NON_ASCII + BIDI, max_size=30),
)
mail_params = st.lists(
    st.sampled_from(
        ("BODY=8BITMIME", "BODY=7BIT", "SIZE=1000", "RET=HDRS", "RET=FULL", "ENVID=abc+2Bx")
    ),
    max_size=2,
    unique=True,
)
hostile_params = st.lists(
    st.one_of(
        st.sampled_from(
            (
                "SIZE=999999999999",
                "SIZE=x",
                "BODY=BINARYMIME",
                "RET=",
                "ENVID=<>",
                "FOO=bar",
                "NOTIFY=NEVER",
                "ORCPT=rfc822;a@b",
                "ENVID=" + "x" * 200,
                "AUTH=<>",
                "SMTPUTF8",
            )
        ),
        st.text(ATEXT + "=+<>", max_size=20),
    ),
    max_size=3,
)
rcpt_params = st.lists(
    st.sampled_from(("NOTIFY=SUCCESS,FAILURE", "NOTIFY=NEVER", "ORCPT=rfc822;a+40b.test")),
    max_size=1,
)


def command(verb: str, argument: str) -> bytes:
    line = f"{verb} {argument}" if argument else verb
    return line.encode("utf-8", "surrogateescape")


# ---- messages


@dataclass(frozen=True)
class Body:
    """Message content as a client sends it after DATA: the bytes before the dot-stuffing,
    whether a correct client could send them, and a token that finds its copies."""

    data: bytes
    well_formed: bool
    token: str
    flagged: bool


_words = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(BIDI + INVISIBLE),
    max_size=40,
)


def _encoded_word(text: str, charset: str, encoding: str) -> str:
    raw = text.encode(charset, "replace")
    if encoding == "B":
        payload = base64.b64encode(raw).decode()
    else:
        payload = quopri.encodestring(raw, header=True).decode().replace("=\n", "")
    return f"=?{charset}?{encoding}?{payload}?="


encoded_word = st.one_of(
    st.builds(
        _encoded_word,
        _words,
        st.sampled_from(("utf-8", "iso-8859-1", "iso-8859-2", "windows-1252")),
        st.sampled_from(("B", "Q")),
    ),
    # Broken and hostile encoded words: unknown charsets, bad base64, CR/LF and NUL inside,
    # RFC 2231 language tags, unterminated.
    st.sampled_from(
        (
            "=?utf-8?B?!!!?=",
            "=?x-unknown?Q?abc?=",
            "=?utf-8?Q?a=0D=0AReply-To:=20evil@example.test?=",
            "=?utf-8?Q?nul=00here?=",
            "=?iso-8859-2*sl?Q?=BEivljenje?=",
            "=?utf-8?Q?unterminated",
            "=?utf-8?B?" + "QUFB" * 200 + "?=",
            "=??Q??=",
        )
    ),
)

_filename = st.one_of(
    st.text(ATEXT + NON_ASCII + BIDI + INVISIBLE + " .", min_size=1, max_size=30),
    st.just("invoice\u202etxt.exe"),
)
# No controls or line separators: RFC 5322 text (§2.1, §3.5), with every other character.
_text_line = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")) | st.just("\t"), max_size=120
)
_text = st.lists(_text_line, max_size=8).map("\n".join)


def _leaf(draw: st.DrawFn) -> EmailMessage:
    part = EmailMessage(policy=email.policy.SMTP)
    kind = draw(st.sampled_from(("plain", "html", "attachment", "rfc822")))
    if kind == "plain":
        part.set_content(draw(_text) + "\n", cte=draw(st.sampled_from((None, "base64"))))
    elif kind == "html":
        part.set_content(f"<p>{draw(_text)}</p>\n", subtype="html")
    elif kind == "attachment":
        data = draw(st.binary(max_size=300))
        part.set_content(data, "application", "octet-stream", filename=draw(_filename))
    else:
        inner = EmailMessage(policy=email.policy.SMTP)
        inner["Subject"] = draw(_words)
        inner.set_content(draw(_text) + "\n")
        part.set_content(inner)
    return part


@st.composite
def _mime_tree(draw: st.DrawFn, depth: int = 0) -> EmailMessage:
    if depth >= 2 or draw(st.booleans()):
        return _leaf(draw)
    container = EmailMessage(policy=email.policy.SMTP)
    container.make_mixed() if draw(st.booleans()) else container.make_alternative()
    for _ in range(draw(st.integers(1, 3))):
        container.attach(draw(_mime_tree(depth + 1)))
    # Drawn, not left to the email package (which would use the random module).
    container.set_boundary(f"=_b{depth}_{draw(st.integers(0, 10**6))}")
    return container


_counter = iter(range(1, 10**9))


_ascii_words = st.text(ATEXT + " .,:-", max_size=60)


@st.composite
def well_formed_body(draw: st.DrawFn, recipients: tuple[str, ...]) -> Body:
    """A MIME message a correct client sends: CRLF lines of at most 998 octets (RFC 5322
    §2.1.1), a unique Message-ID, sometimes flagged, with a random structure and subject. The
    top-level fields are written as raw lines, so that hostile encoded words go out as they
    are (the email package would decode and refuse some)."""
    token = f"fuzz{next(_counter)}x{draw(st.integers(0, 10**9))}"
    tree = draw(_mime_tree())
    flagged = draw(st.booleans())
    subject = draw(
        st.one_of(
            _ascii_words,
            encoded_word,
            st.builds("{} {}".format, _ascii_words, encoded_word),
            st.builds("[{}] {}".format, st.sampled_from(("SAFEGUARDING", "Secure")), _ascii_words),
        )
    )
    ascii_to = [r for r in recipients if r.isascii()] or ["undisclosed-recipients:;"]
    fields = [
        f"From: Fuzz <fuzz@{LOCAL_DOMAIN}>",
        f"To: {', '.join(ascii_to)}",
        f"Subject: {subject}",
        "Date: Thu, 26 Nov 2026 10:00:00 +0000",
        f"Message-ID: <{token}@{LOCAL_DOMAIN}>",
        f"X-Fuzz: {token}",
        "MIME-Version: 1.0",
    ]
    if flagged:
        fields.append("X-Safeguarding: yes")
    mime = tree.as_bytes(policy=email.policy.SMTP.clone(max_line_length=78))
    data = "\r\n".join(fields).encode() + b"\r\n" + mime
    longest = max(map(len, data.split(b"\r\n")))
    return Body(data, well_formed=longest <= 998, token=token, flagged=flagged)


@st.composite
def hostile_body(draw: st.DrawFn) -> Body:
    """Headers and a body of random lines: bare CR and LF, NUL, 8-bit bytes, lone dots, long
    lines, broken folding and encoded words. Always with a token header so a copy is found."""
    token = f"fuzz{next(_counter)}x{draw(st.integers(0, 10**9))}"
    head = [f"X-Fuzz: {token}".encode(), f"Message-ID: <{token}@{LOCAL_DOMAIN}>".encode()]
    if draw(st.booleans()):
        head.append(b"X-Safeguarding: yes")
    header_line = st.one_of(
        st.builds(lambda w: f"Subject: {w}".encode("utf-8", "surrogatepass"), encoded_word),
        st.builds(lambda v: b"Message-ID: " + v, st.binary(max_size=40)),
        st.builds(
            lambda v: b"Content-Type: " + v.encode(),
            st.sampled_from(
                (
                    "multipart/mixed",
                    'multipart/mixed; boundary="x"',
                    "text/plain; charset=bogus",
                    "message/rfc822",
                    "multipart/alternative; boundary=",
                )
            ),
        ),
        st.binary(max_size=60),
        st.builds(lambda n: b"X-Long: " + b"a" * n, st.integers(900, 1200)),
        st.just(b" folded-without-a-header"),
    )
    head += draw(st.lists(header_line, max_size=5))
    body_line = st.one_of(
        st.binary(max_size=100),
        st.sampled_from((b".", b"..", b".\n", b"\x00", b"--x", b"--x--", b"\r", b"\n.\n")),
        st.builds(lambda n: b"b" * n, st.integers(990, 1100)),
    )
    body = draw(st.lists(body_line, max_size=10))
    ending = draw(st.sampled_from((b"\r\n", b"\n", b"\r\n")))
    data = ending.join(head) + ending + ending + ending.join(body) + b"\r\n"
    return Body(data, well_formed=False, token=token, flagged=b"X-Safeguarding" in data)


def dot_stuffed(data: bytes) -> bytes:
    """RFC 5321 §4.5.2: a line that begins with "." gets one more; the content ends CRLF."""
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    lines = data.split(b"\r\n")
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)
