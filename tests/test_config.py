"""Configuration: defaults, file, environment, validation, and the documented example."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gateway.config import checks as configchecks
from gateway.config import settings as config
from gateway.config.settings import ConfigError
from gateway.core.model import Transport

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
        config.load(case, environ={})
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
        config.load(tmp_path / "absent.toml", environ={})


def test_defaults_without_a_file() -> None:
    settings = config.load(None, environ={})
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
    settings = config.load(
        path,
        environ={
            "GATEWAY_DNS_NAMESERVERS": "127.0.0.1:53, [::1]:5300",
            "GATEWAY_POLICY_REQUIRE_TLS_RPT": "true",
            "GATEWAY_MTA_STS_HTTPS_PORT": "8443",
        },
    )
    assert settings.dns.timeout == 3.0  # from the file; an integer stands for a float
    assert settings.dns.nameservers == ("127.0.0.1:53", "[::1]:5300")  # environment wins
    assert settings.policy.require_tls_rpt is True
    assert settings.mta_sts.https_port == 8443


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text('[policy]\nminimum_transport = "dane"\n')
    settings = config.load(None, environ={"GATEWAY_CONFIG": str(path)})
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
        config.load(None, environ={name: value})


def test_relative_paths_are_taken_from_the_config_folder(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "gateway.toml"
    path.parent.mkdir()
    path.write_text('[store]\ndata_dir = "state"\n')
    settings = config.load(path, environ={})
    assert settings.path(settings.store.data_dir) == tmp_path / "etc" / "state"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", ("192.0.2.1", 53)),
        ("192.0.2.1:5353", ("192.0.2.1", 5353)),
        ("::1", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("2001:db8::1", ("2001:db8::1", 53)),
    ],
)
def test_parse_hostport(text: str, expected: tuple[str, int]) -> None:
    assert configchecks.parse_hostport(text, 53) == expected


@pytest.mark.parametrize("text", ["dns.test", "[::1", "[::1]x", "1.2.3.4:", "1.2.3.4:0", ""])
def test_parse_hostport_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"not an IP address|bad port|expected \[address\]:port"):
        configchecks.parse_hostport(text, 53)


def test_example_config_documents_every_key_with_its_default() -> None:
    example_path = ROOT / "config" / "gateway.example.toml"
    example = tomllib.loads(example_path.read_text(encoding="utf-8"))
    documented = {f"{section}.{key}" for section, table in example.items() for key in table}
    assert documented == set(config.keys())
    defaults = config.Settings().redacted()
    for section, table in example.items():
        for key, value in table.items():
            if defaults[section][key] == "********":
                assert value == "", f"{section}.{key}: a secret's default is empty"
            else:
                assert defaults[section][key] == value, f"{section}.{key} default differs"
    # The example itself is a valid configuration.
    config.load(example_path, environ={})


def test_secrets_are_hidden_in_the_logged_configuration() -> None:
    key = "ab" * 32
    settings = config.load(
        None, environ={"GATEWAY_STORE_KEY": key, "GATEWAY_RELAY_PASSWORD": "hunter2"}
    )
    assert settings.store.key == key
    shown = repr(settings.redacted())
    assert key not in shown
    assert "hunter2" not in shown
    assert settings.redacted()["relay"]["password"] == "********"
    assert settings.redacted()["relay"]["host"] == "127.0.0.1"


@pytest.mark.parametrize("key", ["ab" * 31, "zz" * 32, "c2hvcnQ="])
def test_store_key_must_be_32_bytes(key: str) -> None:
    with pytest.raises(ConfigError, match=r"store\.key: must be 32 bytes"):
        config.load(None, environ={"GATEWAY_STORE_KEY": key})


def test_a_key_named_after_a_python_keyword() -> None:
    settings = config.load(None, environ={"GATEWAY_NOTIFY_FROM": "dsl@school.test"})
    assert settings.notify.from_ == "dsl@school.test"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("4h", 14400), ("7d", 604800), ("1.5h", 5400), ("2w", 1209600)],
)
def test_durations(text: str, seconds: float) -> None:
    assert configchecks.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["4", "h", "-1h", "4 hours", "0h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match=r"review\.escalate_after: must be"):
        config.load(None, environ={"GATEWAY_REVIEW_ESCALATE_AFTER": text})
