"""`gateway check` end to end: the real CLI against real DNS (DNSSEC) and HTTPS servers.

The zone table in rig/zones.py states, per domain, the verdict and reasons expected here.
"""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rig import Rig
from rig.cli import GatewayRunner
from rig.ports import free_port
from rig.zones import NOT_SECURE, SECURE, UNDETERMINED, ZONES, Domain

pytestmark = pytest.mark.e2e

EXIT_SECURE = 0
EXIT_NOT_SECURE = 1
EXIT_USAGE = 2


def explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def check_json(
    gateway: GatewayRunner, config: Path, *domains: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, dict[str, Any]]]:
    """Run `check --json`; the exit status, and each domain's report keyed by domain."""
    result = gateway("check", "--config", config, "--json", *domains, env=env)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"`check --json` printed no JSON\n{explain(result)}")
    assert report.get("version") == 1, explain(result)
    by_domain = {entry["domain"]: entry for entry in report["domains"]}
    assert sorted(by_domain) == sorted(domains), explain(result)
    return result.returncode, by_domain


@pytest.fixture(scope="module")
def table_config(rig: Rig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return rig.write_config(tmp_path_factory.mktemp("check") / "gateway.toml")


@pytest.fixture(scope="module")
def table_report(gateway: GatewayRunner, table_config: Path) -> dict[str, dict[str, Any]]:
    """Every domain of the table, checked in one call."""
    status, by_domain = check_json(gateway, table_config, *(row.name for row in ZONES))
    assert status == EXIT_NOT_SECURE, "the table has domains that are not secure"
    return by_domain


@pytest.mark.parametrize("row", ZONES, ids=[row.name for row in ZONES])
def test_verdict_and_reasons(table_report: dict[str, dict[str, Any]], row: Domain) -> None:
    entry = table_report[row.name]
    got = (entry["verdict"], set(entry["reasons"]))
    assert got == (row.verdict, set(row.reasons)), f"{row.name}: {row.note}\n{entry}"


def test_secure_reports_no_reasons(table_report: dict[str, dict[str, Any]]) -> None:
    for name, entry in table_report.items():
        assert entry["verdict"] in {SECURE, NOT_SECURE, UNDETERMINED}, name
        if entry["verdict"] == SECURE:
            assert entry["reasons"] == [], name
        else:
            assert entry["reasons"], f"{name} is {entry['verdict']} without a reason"


def test_exit_zero_when_every_domain_is_secure(gateway: GatewayRunner, table_config: Path) -> None:
    secure = [row.name for row in ZONES if row.verdict == SECURE]
    result = gateway("check", "--config", table_config, *secure)
    assert result.returncode == EXIT_SECURE, explain(result)


@pytest.mark.parametrize("other", ["nosts.test", "servfail.test"])
def test_exit_one_when_any_domain_is_not_secure(
    gateway: GatewayRunner, table_config: Path, other: str
) -> None:
    result = gateway("check", "--config", table_config, "secure.test", other)
    assert result.returncode == EXIT_NOT_SECURE, explain(result)


def test_exit_two_on_missing_config(gateway: GatewayRunner, tmp_path: Path) -> None:
    result = gateway("check", "--config", tmp_path / "absent.toml", "secure.test")
    assert result.returncode == EXIT_USAGE, explain(result)


def test_exit_two_without_a_domain(gateway: GatewayRunner, table_config: Path) -> None:
    result = gateway("check", "--config", table_config)
    assert result.returncode == EXIT_USAGE, explain(result)


def test_human_output_names_domain_verdict_and_reasons(
    gateway: GatewayRunner, table_config: Path
) -> None:
    result = gateway("check", "--config", table_config, "nosts.test")
    assert result.returncode == EXIT_NOT_SECURE, explain(result)
    # Human output may shout the verdict; the words matter, not their case.
    for word in ("nosts.test", NOT_SECURE, "sts-no-record"):
        assert word in result.stdout.lower(), explain(result)


def test_human_output_for_a_secure_domain(gateway: GatewayRunner, table_config: Path) -> None:
    result = gateway("check", "--config", table_config, "secure.test")
    assert result.returncode == EXIT_SECURE, explain(result)
    assert "secure.test" in result.stdout, explain(result)
    assert SECURE in result.stdout.lower().replace(NOT_SECURE, ""), explain(result)


def test_require_tls_rpt_from_environment(gateway: GatewayRunner, table_config: Path) -> None:
    env = {"GATEWAY_POLICY_REQUIRE_TLS_RPT": "true"}
    status, report = check_json(gateway, table_config, "notlsrpt.test", "secure.test", env=env)
    assert status == EXIT_NOT_SECURE
    assert report["notlsrpt.test"]["verdict"] == NOT_SECURE
    assert set(report["notlsrpt.test"]["reasons"]) == {"no-tls-rpt"}
    # secure.test publishes TLS-RPT, so requiring it changes nothing there.
    assert report["secure.test"]["verdict"] == SECURE


def test_secure_domain_details(table_report: dict[str, dict[str, Any]]) -> None:
    entry = table_report["secure.test"]
    assert entry["mx"]["hosts"] == ["mx1.secure.test", "mx2.secure.test"]
    assert entry["mta_sts"]["record"]["id"] == "20261126a"
    policy = entry["mta_sts"]["policy"]
    assert policy["mode"] == "enforce"
    assert policy["max_age"] == 86400
    assert policy["mx"] == ["mx1.secure.test", "mx2.secure.test"]
    assert policy["covers_mx"] is True
    assert entry["tls_rpt"]["rua"] == ["mailto:tlsrpt@secure.test"]
    for key in ("allowlist", "dane", "timings_ms"):
        assert key in entry


def test_multistring_record_id(table_report: dict[str, dict[str, Any]]) -> None:
    assert table_report["multistring.test"]["mta_sts"]["record"]["id"] == "multi1"


def test_policy_cache_persists_in_data_dir(
    gateway: GatewayRunner, rig: Rig, tmp_path: Path
) -> None:
    data_dir = tmp_path / "store"
    data_dir.mkdir()
    config = rig.write_config(tmp_path / "gateway.toml", store={"data_dir": data_dir})
    for attempt in ("first", "second"):
        status, report = check_json(gateway, config, "secure.test")
        assert (status, report["secure.test"]["verdict"]) == (EXIT_SECURE, SECURE), attempt

    # With the policy server out of reach, only the policy cached in data_dir can keep
    # secure.test secure: its record id is unchanged, so RFC 8461 says use the cached policy.
    dead_port = free_port()
    offline = rig.write_config(
        tmp_path / "offline.toml",
        store={"data_dir": data_dir},
        mta_sts={"https_port": dead_port},
    )
    status, report = check_json(gateway, offline, "secure.test")
    assert (status, report["secure.test"]["verdict"]) == (EXIT_SECURE, SECURE), report

    # Control: the same unreachable server with an empty store cannot be secure.
    fresh = rig.write_config(tmp_path / "fresh.toml", mta_sts={"https_port": dead_port})
    status, report = check_json(gateway, fresh, "secure.test")
    assert status == EXIT_NOT_SECURE
    assert set(report["secure.test"]["reasons"]) == {"sts-policy-fetch-error"}
