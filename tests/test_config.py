"""Configuration: defaults, file, environment, validation, and the documented example."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gateway.config import loader
from gateway.config import settings as config
from gateway.config.settings import ConfigError
from gateway.config.values import (
    HostPort,
    LogFormat,
    MinimumTransport,
    OnDnsError,
    RelayTls,
    Scope,
    Secret,
    describe_duration,
    parse_duration,
)
from gateway.core.model import Transport
from rig.cli import clean_env
from rig.ports import LOOPBACK, free_port

ROOT = Path(__file__).resolve().parent.parent
BAD_CASES = sorted((Path(__file__).parent / "config_cases" / "bad").glob("*.toml"))
GATEWAY = Path(sys.executable).parent / "gateway"


def expected_error(case: Path) -> str:
    first = case.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), f"{case.name} lacks its '# expect:' line"
    return first.removeprefix("# expect: ")


@pytest.mark.parametrize("case", BAD_CASES, ids=[c.stem for c in BAD_CASES])
def test_bad_config_is_refused_naming_the_key(case: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        loader.load(case, environ={})
    assert expected_error(case) in str(caught.value)


def test_bad_config_cases_exist() -> None:
    assert len(BAD_CASES) >= 10


@pytest.mark.parametrize("case", BAD_CASES[:3], ids=[c.stem for c in BAD_CASES[:3]])
def test_cli_stops_with_status_2_and_says_config_error(case: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(GATEWAY), "check", "--config", str(case), "secure.test"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"]},
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("config error: ")
    assert expected_error(case) in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        loader.load(tmp_path / "absent.toml", environ={})


def test_defaults_without_a_file() -> None:
    settings = loader.load(None, environ={})
    assert settings.dns.nameservers == ()
    assert settings.mta_sts.https_port == 443
    assert settings.mta_sts.allow_private_addresses is False
    assert settings.policy.requirement.minimum is Transport.MTA_STS_ENFORCE
    assert settings.policy.requirement.require_tls_rpt is False


def test_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        '[dns]\ntimeout = 3\nnameservers = ["127.0.0.1:5353"]\n[policy]\nrequire_tls_rpt = false\n'
    )
    settings = loader.load(
        path,
        environ={
            "GATEWAY_DNS_NAMESERVERS": "127.0.0.1, [::1]:5300",
            "GATEWAY_POLICY_REQUIRE_TLS_RPT": "true",
            "GATEWAY_MTA_STS_HTTPS_PORT": "8443",
        },
    )
    assert settings.dns.timeout == 3.0  # from the file; an integer stands for a float
    # The environment wins; a nameserver without a port gets 53.
    assert settings.dns.nameservers == (HostPort("127.0.0.1", 53), HostPort("::1", 5300))
    assert settings.policy.require_tls_rpt is True
    assert settings.mta_sts.https_port == 8443


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text('[policy]\nminimum_transport = "dane"\n')
    settings = loader.load(None, environ={"GATEWAY_CONFIG": str(path)})
    assert settings.policy.requirement.minimum is Transport.DANE


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("GATEWAY_DNS_TIMEOUT", "soon", "dns.timeout (from GATEWAY_DNS_TIMEOUT): must be a number"),
        ("GATEWAY_DNS_TRUST_AD", "maybe", "must be true or false"),
        ("GATEWAY_MTA_STS_HTTPS_PORT", "0", "must be a port number"),
        ("GATEWAY_DNS_NAMESERVERS", "dns.test", "not an IP address"),
    ],
)
def test_bad_environment_value_names_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        loader.load(None, environ={name: value})


def test_relative_paths_are_taken_from_the_config_folder(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "gateway.toml"
    path.parent.mkdir()
    path.write_text('[store]\ndata_dir = "state"\n')
    settings = loader.load(path, environ={})
    assert settings.path(settings.store.data_dir) == tmp_path / "etc" / "state"


def test_defaults_are_parsed_values() -> None:
    settings = loader.load(None, environ={})
    assert settings.smtp.listen == HostPort("127.0.0.1", 10025)
    assert settings.web.listen == HostPort("127.0.0.1", 8025)
    assert settings.review.escalate_after == 4 * 3600
    assert settings.review.expire_after == 7 * 86400
    assert settings.web.session_idle_timeout == 3600
    assert settings.relay.tls is RelayTls.NONE
    assert settings.policy.scope is Scope.FLAGGED
    assert settings.policy.on_dns_error is OnDnsError.HOLD
    assert settings.policy.minimum_transport is MinimumTransport.MTA_STS_ENFORCE
    assert settings.log.format is LogFormat.JSON
    assert not settings.relay.password


def test_file_values_are_parsed_once(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        '[smtp]\nlisten = "[::1]:2525"\n'
        '[relay]\ntls = "starttls"\n'
        '[policy]\nscope = "all"\non_dns_error = "tempfail"\n'
        '[review]\nescalate_after = "90m"\nexpire_after = "2w"\nsweep_interval = "0.5s"\n'
        '[web]\nlisten = "127.0.0.1"\n'
    )
    settings = loader.load(path, environ={"GATEWAY_LOG_FORMAT": "console"})
    assert settings.smtp.listen == HostPort("::1", 2525)
    assert str(settings.smtp.listen) == "[::1]:2525"
    assert settings.web.listen == HostPort("127.0.0.1", 8025)  # the web UI's own default port
    assert settings.relay.tls is RelayTls.STARTTLS
    assert settings.policy.scope is Scope.ALL
    assert settings.policy.on_dns_error is OnDnsError.TEMPFAIL
    assert settings.review.escalate_after == 5400.0
    assert settings.review.expire_after == 14 * 86400.0
    assert settings.review.sweep_interval == 0.5
    assert settings.log.format is LogFormat.CONSOLE
    # The start-up log shows them as they are written.
    shown = settings.redacted()
    assert shown["smtp"]["listen"] == "[::1]:2525"
    assert shown["review"]["escalate_after"] == "90m"
    assert shown["review"]["expire_after"] == "14d"
    assert shown["policy"]["scope"] == "all"


SECRETS = {
    "GATEWAY_STORE_KEY": "ab" * 32,
    "GATEWAY_RELAY_USERNAME": "gateway",
    "GATEWAY_RELAY_PASSWORD": "hunter2-relay-password",
    "GATEWAY_WEB_SECRET_KEY": "s3cr3t-web-signing-key-of-32-characters",
    "GATEWAY_WEB_METRICS_TOKEN": "t0ken-for-the-prometheus-scraper-xyz",
}
SECRET_VALUES = [v for k, v in SECRETS.items() if k != "GATEWAY_RELAY_USERNAME"]


def test_no_secret_shows_in_the_settings_or_the_logged_configuration() -> None:
    settings = loader.load(None, environ=SECRETS)
    for shown in (repr(settings), str(settings), repr(settings.redacted())):
        for value in SECRET_VALUES:
            assert value not in shown
    assert settings.relay.password.reveal() == "hunter2-relay-password"
    assert settings.store.key.reveal() == "ab" * 32
    assert settings.web.metrics_token.reveal() == SECRETS["GATEWAY_WEB_METRICS_TOKEN"]
    redacted = settings.redacted()
    assert redacted["relay"]["password"] == "********"
    assert redacted["web"]["secret_key"] == "********"
    assert redacted["relay"]["host"] == "127.0.0.1"


def test_an_unset_secret_is_shown_as_empty() -> None:
    redacted = loader.load(None, environ={}).redacted()
    assert redacted["relay"]["password"] == ""
    assert redacted["store"]["key"] == ""
    assert redacted["web"]["metrics_token"] == ""


def test_the_start_up_log_hides_secrets(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text('[store]\ndata_dir = "data"\n')
    (tmp_path / "data").mkdir()  # `held list` reads a store; it never makes one
    result = subprocess.run(
        [str(GATEWAY), "held", "list", "-v", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(SECRETS),
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "config loaded" in result.stderr
    for value in SECRET_VALUES:
        assert value not in result.stderr


def test_secret() -> None:
    assert repr(Secret("pw")) == "Secret('********')"
    assert str(Secret("pw")) == "********"
    assert repr(Secret()) == "Secret('')"
    assert str(Secret("")) == ""
    assert Secret("pw") == Secret("pw")
    assert Secret("pw") != Secret("other")
    assert Secret("pw")
    assert not Secret()
    assert f"{Secret('pw')}" == "********"


@pytest.mark.parametrize("key", ["ab" * 31, "zz" * 32, "c2hvcnQ="])
def test_store_key_must_be_32_bytes(key: str) -> None:
    with pytest.raises(ConfigError, match=r"store\.key: must be 32 bytes"):
        loader.load(None, environ={"GATEWAY_STORE_KEY": key})


def test_a_key_named_after_a_python_keyword() -> None:
    settings = loader.load(None, environ={"GATEWAY_NOTIFY_FROM": "dsl@school.test"})
    assert settings.notify.from_ == "dsl@school.test"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("0.5s", 0.5),
        ("30m", 1800),
        ("4h", 14400),
        ("4H", 14400),
        ("1.5h", 5400),
        ("7d", 604800),
        ("2w", 1209600),
        ("0h", 0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["4", "30", "h", "-1h", "4 hours", "1.2.3h", "4y", ""])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["4", "h", "-1h", "4 hours", "0h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match=r"review\.escalate_after( \(from \w+\))?: must be"):
        loader.load(None, environ={"GATEWAY_REVIEW_ESCALATE_AFTER": text})


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (14400, "4h"),
        (604800, "7d"),
        (2592000, "30d"),
        (60, "1m"),
        (5400, "90m"),
        (90, "90s"),
        (1.5, "1.5s"),
        (0.5, "0.5s"),
        (1209600, "14d"),
        (0, "0s"),
    ],
)
def test_describe_duration(seconds: float, text: str) -> None:
    assert describe_duration(seconds) == text


@pytest.mark.parametrize(
    ("text", "expected", "shown"),
    [
        ("192.0.2.1", HostPort("192.0.2.1", 53), "192.0.2.1:53"),
        ("192.0.2.1:5353", HostPort("192.0.2.1", 5353), "192.0.2.1:5353"),
        ("::1", HostPort("::1", 53), "[::1]:53"),
        ("[::1]:25", HostPort("::1", 25), "[::1]:25"),
        ("[2001:db8::1]:10025", HostPort("2001:db8::1", 10025), "[2001:db8::1]:10025"),
        ("2001:db8::1", HostPort("2001:db8::1", 53), "[2001:db8::1]:53"),
        ("127.0.0.1:65535", HostPort("127.0.0.1", 65535), "127.0.0.1:65535"),
    ],
)
def test_host_port(text: str, expected: HostPort, shown: str) -> None:
    parsed = HostPort.parse(text, 53)
    assert parsed == expected
    assert str(parsed) == shown
    assert HostPort.parse(shown, 0) == parsed  # the text form reads back


@pytest.mark.parametrize(
    "text",
    ["dns.test", "[::1", "[::1]x", "[::1]", "1.2.3.4:", "1.2.3.4:0", "1.2.3.4:65536", ""],
)
def test_host_port_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"not an IP address|bad port|expected \[address\]:port"):
        HostPort.parse(text, 53)


def test_the_environment_takes_a_choice_and_a_duration() -> None:
    settings = loader.load(
        None,
        environ={"GATEWAY_RELAY_TLS": "implicit", "GATEWAY_WEB_SESSION_MAX_AGE": " 2h "},
    )
    assert settings.relay.tls is RelayTls.IMPLICIT
    assert settings.web.session_max_age == 7200
    with pytest.raises(ConfigError, match=r"relay\.tls \(from GATEWAY_RELAY_TLS\): must be one of"):
        loader.load(None, environ={"GATEWAY_RELAY_TLS": "ssl"})


def test_relay_credentials_come_as_a_pair(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text('[relay]\nusername = "gateway"\n')
    with pytest.raises(ConfigError, match=r"relay\.password: give both username and password"):
        loader.load(path, environ={})
    settings = loader.load(path, environ={"GATEWAY_RELAY_PASSWORD": "pw"})
    assert settings.relay.password.reveal() == "pw"


def test_a_half_tls_pair_stops_serve_before_it_listens(tmp_path: Path) -> None:
    """The web TLS pair is checked with the rest of the configuration: `gateway serve` with
    several workers stops with status 2 before it binds the SMTP port or starts a worker."""
    port = free_port()
    path = tmp_path / "gateway.toml"
    path.write_text(
        f'[smtp]\nlisten = "{LOOPBACK}:{port}"\nworkers = 2\n'
        '[store]\ndata_dir = "data"\n[allowlist]\npaths = []\n'
        f'[web]\nlisten = "{LOOPBACK}:{free_port()}"\ntls_cert = "web.crt"\n'
    )
    result = subprocess.run(
        [str(GATEWAY), "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(),
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "config error: web.tls_key: give both tls_cert and tls_key, or neither" in result.stderr
    assert "SMTP filter on" not in result.stderr  # it never got as far as starting
    assert not (tmp_path / "data").exists()


def test_example_config_documents_every_key_with_its_default() -> None:
    example_path = ROOT / "config" / "gateway.example.toml"
    example = tomllib.loads(example_path.read_text(encoding="utf-8"))
    documented = {f"{section}.{key}" for section, table in example.items() for key in table}
    assert documented == set(loader.keys())
    defaults = config.Settings().redacted()
    for section, table in example.items():
        for key, value in table.items():
            assert defaults[section][key] == value, f"{section}.{key} default differs"
    # The example itself is a valid configuration.
    loader.load(example_path, environ={})
