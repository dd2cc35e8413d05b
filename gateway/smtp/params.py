"""MAIL and RCPT parameters the SMTP face takes off the command itself, keeping their case:
the DSN ones (RFC 3461: RET, ENVID, NOTIFY, ORCPT) and REQUIRETLS (RFC 8689 §4), which stock
aiosmtpd refuses with 555."""

from __future__ import annotations

import re

from gateway.smtp.reply import SmtpReply


def malformed_parameter(name: str) -> SmtpReply:
    return SmtpReply(501, "5.5.4", f"Malformed {name} parameter")


# RFC 3461 §4.1-4.4 and §5.2: the parameters' syntax. xtext is printable ASCII except "+"
# and "=", which travel as "+XX" hex escapes.
_XTEXT = r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})+"
DSN_MAIL = {
    "RET": re.compile(r"(?:FULL|HDRS)\Z", re.IGNORECASE),
    "ENVID": re.compile(rf"{_XTEXT}\Z"),
}
DSN_RCPT = {
    "NOTIFY": re.compile(
        r"(?:NEVER|(?:SUCCESS|FAILURE|DELAY)(?:,(?:SUCCESS|FAILURE|DELAY))*)\Z", re.IGNORECASE
    ),
    "ORCPT": re.compile(rf"[A-Za-z0-9-]+;{_XTEXT}\Z"),
}


def path_end(arg: str) -> int:
    """Where the <path> of a MAIL/RCPT argument ends: the first ">" outside a quoted local
    part (RFC 5321 §4.1.2), not the last one: an xtext value such as ENVID may hold ">"."""
    start = arg.find("<")
    if start < 0:
        return -1
    end = arg.find(">", start)
    if end >= 0 and '"' not in arg[start:end]:
        return end  # no quoted part before the first ">" (most paths): that one ends it
    quoted = escaped = False
    for index in range(start + 1, len(arg)):
        char = arg[index]
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return index
    return -1


def split_params(
    arg: str, known: dict[str, re.Pattern[str]]
) -> tuple[str, list[str], SmtpReply | None]:
    """Take the parameters in ``known`` off a MAIL/RCPT argument, keeping their case.
    Returns the rest of the argument, the parameters, and an error reply if one is malformed."""
    end = path_end(arg)
    head, tail = (arg[: end + 1], arg[end + 1 :]) if end >= 0 else ("", arg)
    kept, taken = [], []
    for token in tail.split():
        name, _, value = token.partition("=")
        pattern = known.get(name.upper())
        if pattern is None:
            kept.append(token)
        elif not value or not pattern.match(value):
            return arg, [], malformed_parameter(name.upper())
        else:
            taken.append(f"{name.upper()}={value}")
    return " ".join([head, *kept]).strip(), taken, None


def take_flag(arg: str, flag: str) -> tuple[str, bool, SmtpReply | None]:
    """Take a parameter without a value (``REQUIRETLS``) off a MAIL argument: the rest, whether
    it was there, and an error reply if it came with a value."""
    end = path_end(arg)
    head, tail = (arg[: end + 1], arg[end + 1 :]) if end >= 0 else ("", arg)
    kept, found = [], False
    for token in tail.split():
        name, equals, _ = token.partition("=")
        if name.upper() != flag:
            kept.append(token)
        elif equals:
            return arg, False, malformed_parameter(flag)
        else:
            found = True
    return " ".join([head, *kept]).strip(), found, None
