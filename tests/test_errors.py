"""The error tree: what the SMTP client is told for each error, and what the operator logs."""

from __future__ import annotations

import inspect

import pytest

from gateway import errors
from gateway.core.model import PolicyStatus
from gateway.errors import (
    AllowlistError,
    ConfigError,
    DecryptError,
    GatewayError,
    LookupFailed,
    PolicyFetchError,
    ReviewError,
    UserError,
)

CASES = [
    (GatewayError("x"), False),
    (ConfigError("smtp.listen", "not an address"), False),
    (AllowlistError("cannot read"), False),
    (LookupFailed("SERVFAIL", temporary=True), True),
    (LookupFailed("NXDOMAIN", temporary=False), False),
    (PolicyFetchError(PolicyStatus.FETCH_ERROR, "timed out", temporary=True), True),
    (PolicyFetchError(PolicyStatus.FETCH_ERROR, "404"), False),
    (ReviewError("already decided"), False),
    (UserError("no account"), False),
    (DecryptError("wrong key"), False),
]


@pytest.mark.parametrize(("error", "temporary"), CASES, ids=lambda c: type(c).__name__)
def test_temporary_errors_get_4xx_and_permanent_5xx_with_matching_enhanced_codes(
    error: GatewayError, temporary: bool
) -> None:
    reply = error.public_reply
    assert error.temporary is temporary
    assert reply.temporary is temporary
    assert reply.code // 100 == (4 if temporary else 5)
    # RFC 3463 §3.1: the class digit of the enhanced code is the reply's first digit.
    assert reply.enhanced.split(".")[0] == str(reply.code // 100)
    assert str(reply).startswith(f"{reply.code} {reply.enhanced} ")


@pytest.mark.parametrize(("error", "temporary"), CASES, ids=lambda c: type(c).__name__)
def test_the_reply_never_shows_the_errors_text(error: GatewayError, temporary: bool) -> None:
    assert str(error) not in str(error.public_reply)


def test_an_unexpected_exception_is_a_temporary_reply() -> None:
    reply = errors.reply_for(RuntimeError("database is locked"))
    assert str(reply) == "451 4.3.0 Temporary error; please try again later"
    assert errors.reply_for(LookupFailed("x", temporary=True)) == reply
    # A permanent error of ours that escapes is still a fault: no bounce for it.
    assert errors.reply_for(DecryptError("wrong key")) == reply


def test_log_fields_name_the_error_and_its_cause() -> None:
    try:
        try:
            raise OSError(13, "Permission denied")
        except OSError as exc:
            raise ConfigError("store.key_file", "cannot read /data/store.key") from exc
    except ConfigError as error:
        fields = error.log_fields()
    assert fields == {
        "error": "ConfigError",
        "detail": "store.key_file: cannot read /data/store.key",
        "temporary": False,
        "key": "store.key_file",
        "cause": "PermissionError: [Errno 13] Permission denied",
    }
    fetch = PolicyFetchError(PolicyStatus.FETCH_ERROR, "timed out", temporary=True)
    assert fetch.log_fields()["status"] == "fetch-error"
    assert errors.log_fields(ValueError("bad"))["error"] == "ValueError"


def test_the_docstring_draws_every_error_in_the_module() -> None:
    doc = errors.__doc__ or ""
    classes = [
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, GatewayError)
    ]
    assert len(classes) >= 8
    for name in classes:
        assert f"── {name} " in doc or f"{name}  " in doc, name
