"""XFORWARD commands for the session fuzzer (Postfix's XFORWARD_README): well-formed ones,
which a trusted client gets 250 for outside a transaction, and hostile ones (any bytes after
the verb, attributes too long, unknown or malformed), which must get a 5xx and change nothing."""

from __future__ import annotations

from hypothesis import strategies as st

from fuzz import mailgen


def xtext(text: str) -> str:
    """RFC 3461 §4, of the UTF-8 octets: "+", "=" and anything outside "!" to "~" as "+XX"."""
    return "".join(
        chr(b) if 0x21 <= b <= 0x7E and b not in b"+=" else f"+{b:02X}"
        for b in text.encode("utf-8", "surrogatepass")
    )


_UNKNOWN = st.sampled_from(("[UNAVAILABLE]", "[unavailable]", "[TEMPUNAVAIL]"))
# Any printable ASCII, spaces and header specials too: the gateway neuters them, never refuses.
_FREE_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=30)
_HOSTNAME = st.from_regex(
    r"[a-z0-9]{1,10}(\.[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?){0,4}", fullmatch=True
)
_HELO = mailgen.helo_name.filter(bool).map(xtext).filter(lambda value: len(value) <= 100)
_VALUES = {
    "NAME": st.one_of(_UNKNOWN, _HOSTNAME),
    "ADDR": st.one_of(
        _UNKNOWN,
        st.ip_addresses().map(lambda a: f"IPV6:{a}" if a.version == 6 else str(a)),
    ),
    "PORT": st.one_of(_UNKNOWN, st.integers(0, 65535).map(str)),
    "PROTO": st.one_of(_UNKNOWN, st.sampled_from(("SMTP", "ESMTP")), _FREE_TEXT.map(xtext)),
    "HELO": st.one_of(_UNKNOWN, _FREE_TEXT.map(xtext), _HELO),
    "IDENT": st.one_of(_UNKNOWN, _FREE_TEXT.map(xtext)),
    "SOURCE": st.one_of(_UNKNOWN, st.sampled_from(("LOCAL", "REMOTE", "local"))),
}


def _attributes(names: list[str]) -> st.SearchStrategy[str]:
    parts = [_VALUES[name].map(lambda value, name=name: f"{name}={value}") for name in names]
    return st.tuples(*parts).map(" ".join)


well_formed = (
    st.lists(st.sampled_from(tuple(_VALUES)), min_size=1, max_size=4, unique=True)
    .flatmap(_attributes)
    .map(lambda arg: mailgen.command("XFORWARD", arg))
)

hostile = st.one_of(
    st.lists(st.integers(0, 255).filter(lambda b: b not in (10, 13)), max_size=80).map(
        lambda rest: b"XFORWARD " + bytes(rest)
    ),
    st.sampled_from(
        (
            b"XFORWARD",
            b"XFORWARD ADDR",
            b"XFORWARD ADDR=",
            b"XFORWARD COLOUR=blue",
            b"XFORWARD ADDR=300.1.1.1",
            b"XFORWARD NAME=a..b",
            b"XFORWARD HELO=a+2",
            b"XFORWARD IDENT=" + b"x" * 256,
        )
    ),
)
