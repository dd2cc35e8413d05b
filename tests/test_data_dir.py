"""Commands run from another folder, or without the gateway's configuration, never make a new,
empty data directory and answer from it ("no holds" while mail waits in the real store): they
refuse, naming the folder they looked for. Relative paths are read from the configuration
file's folder, wherever the command runs. Allowlist paths that find no file are a problem."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from rig.cli import clean_env, gateway_script
from rig.ports import LOOPBACK, free_port

EXIT_OK, EXIT_FINDING, EXIT_USAGE = 0, 1, 2
PASSWORD = "correct horse battery"

# Every command that reads, or changes, what the store holds.
USE_THE_STORE = [
    ["held", "list"],
    ["held", "show", "0123456789abcdef"],
    ["held", "release", "0123456789abcdef", "--reason", "checked by phone"],
    ["held", "reject", "0123456789abcdef", "--reason", "wrong address"],
    ["held", "sweep"],
    ["audit", "list"],
    ["audit", "verify"],
    ["audit", "export"],
    ["queue", "list"],
    ["queue", "show", "0123456789abcdef"],
    ["trace", "<referral@school.test>"],
    ["store", "status"],
    ["sts-cache", "list"],
    ["sts-cache", "purge"],
    ["users", "list"],
    ["users", "disable", "jo"],
]


def run(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(gateway_script()), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean_env(env),
        input=stdin,
        timeout=60,
        check=False,
    )


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """The folder a command is run from: not the gateway's."""
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A configuration whose data_dir and allowlist are relative to its own folder."""
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "lists").mkdir()
    (folder / "lists" / "partners.txt").write_text("nhs.net\n")
    path = folder / "gateway.toml"
    path.write_text(
        '[store]\ndata_dir = "state"\n[allowlist]\npaths = ["lists/*.txt"]\n'
        # Nothing answers here: `check` must not reach for the system's resolver.
        '[dns]\nnameservers = ["127.0.0.1:9"]\ntimeout = 1.0\n'
    )
    return path


@pytest.mark.parametrize("command", USE_THE_STORE, ids=" ".join)
def test_without_a_configuration_a_command_refuses_and_makes_nothing(
    command: list[str], elsewhere: Path
) -> None:
    result = run(*command, cwd=elsewhere)
    assert result.returncode == EXIT_USAGE, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"gateway: no data directory at {elsewhere / 'var'} "
        "(no configuration was given: use --config FILE or GATEWAY_CONFIG)"
    )
    assert result.stdout == ""
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("how", ["--config", "GATEWAY_CONFIG"])
@pytest.mark.parametrize("command", USE_THE_STORE, ids=" ".join)
def test_a_store_not_made_yet_is_named_with_its_configuration(
    command: list[str], how: str, config: Path, elsewhere: Path
) -> None:
    if how == "--config":
        result = run(*command, "--config", config, cwd=elsewhere)
    else:
        result = run(*command, cwd=elsewhere, env={"GATEWAY_CONFIG": str(config)})
    assert result.returncode == EXIT_USAGE, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"gateway: no data directory at {config.parent / 'state'} "
        f"([store] data_dir of {config}: is this the gateway's configuration?)"
    )
    assert not (config.parent / "state").exists()
    assert list(elsewhere.iterdir()) == []


def test_relative_paths_follow_the_configuration_from_any_folder(
    config: Path, elsewhere: Path
) -> None:
    # `users add` sets a gateway up, so it makes the data directory: beside the configuration.
    added = run("users", "add", "jo", "--role", "admin", "--config", config, cwd=elsewhere,
                stdin=PASSWORD + "\n")  # fmt: skip
    assert added.returncode == EXIT_OK, added.stderr
    assert (config.parent / "state" / "users.sqlite3").is_file()
    listed = run("held", "list", "--config", config, cwd=elsewhere)
    assert (listed.returncode, listed.stdout) == (EXIT_OK, "no holds\n"), listed.stderr
    trail = run("audit", "list", cwd=elsewhere, env={"GATEWAY_CONFIG": str(config)})
    assert "user-added" in trail.stdout, trail.stderr
    linted = run("allowlist", "lint", "--config", config, cwd=elsewhere)
    assert linted.returncode == EXIT_OK, linted.stdout
    assert "1 file(s), 1 entry, 0 problem(s)" in linted.stderr
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(
    "command", [["check", "partner.invalid"], ["allowlist", "check"]], ids=" ".join
)
def test_checks_answer_without_a_store_and_leave_none_behind(
    command: list[str], config: Path, elsewhere: Path
) -> None:
    result = run(*command, "--config", config, cwd=elsewhere)
    # Nothing answers DNS here: the domains are undetermined, which is a finding.
    assert result.returncode == EXIT_FINDING, result.stderr
    assert (
        f"gateway: no data directory at {config.parent / 'state'} ([store] data_dir of "
        f"{config}: is this the gateway's configuration?); the policies fetched now are not kept"
    ) in result.stderr.splitlines()
    assert not (config.parent / "state").exists()
    assert list(elsewhere.iterdir()) == []


def test_lint_without_a_configuration_says_its_paths_find_nothing(elsewhere: Path) -> None:
    result = run("allowlist", "lint", cwd=elsewhere)
    assert result.returncode == EXIT_FINDING
    assert result.stdout.splitlines() == [
        f"{elsewhere}/allowlists/*.toml:0: [allowlist] paths: matches no file",
        f"{elsewhere}/allowlists/*.txt:0: [allowlist] paths: matches no file",
    ]
    assert "0 file(s), 0 entries, 2 problem(s)" in result.stderr


@pytest.mark.parametrize(
    ("paths", "unmatched"),
    [
        # A file named outright that is not there is always a mistake.
        (["lists/*.txt", "lists/extra.toml"], ["lists/extra.toml"]),
        # One glob among others that finds nothing is not: the default names *.toml and *.txt.
        (["lists/*.txt", "lists/*.toml"], []),
        # Every pattern finding nothing is: a wrong folder, and every flagged message held.
        (["wrong/*.txt", "wrong/*.toml"], ["wrong/*.txt", "wrong/*.toml"]),
    ],
)
def test_allowlist_paths_that_find_no_file(
    paths: list[str], unmatched: list[str], config: Path, elsewhere: Path
) -> None:
    text = config.read_text().replace('paths = ["lists/*.txt"]', f"paths = {paths!r}")
    config.write_text(text.replace("'", '"'))
    linted = run("allowlist", "lint", "--config", config, cwd=elsewhere)
    expected = [f"{config.parent / p}:0: [allowlist] paths: matches no file" for p in unmatched]
    assert sorted(linted.stdout.splitlines()) == sorted(expected)
    assert linted.returncode == (EXIT_FINDING if unmatched else EXIT_OK)
    if unmatched == paths:
        # No entry to check, so no DNS: only the paths decide `allowlist check`'s status.
        checked = run("allowlist", "check", "--config", config, cwd=elsewhere)
        assert checked.returncode == EXIT_FINDING, checked.stderr
        assert "matches no file" in checked.stderr


def test_serve_warns_of_allowlist_paths_that_find_nothing(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[smtp]\nlisten = "{LOOPBACK}:{free_port()}"\n[web]\nenabled = false\n'
        '[store]\ndata_dir = "data"\n[allowlist]\npaths = ["lists/partners.toml"]\n'
    )
    proc = subprocess.Popen(
        [str(gateway_script()), "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_env(),
    )
    deadline = threading.Timer(60, proc.kill)  # a gateway that never listens fails, not hangs
    deadline.start()
    seen = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if '"event": "listening"' in line:
                break
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == EXIT_OK, "".join(seen)
    finally:
        deadline.cancel()
        if proc.stdout is not None:
            proc.stdout.close()
    warnings = [json.loads(line) for line in seen if "allowlist problem" in line]
    assert [(w["level"], w["problem"]) for w in warnings] == [
        ("warning", f"{tmp_path}/lists/partners.toml:0: [allowlist] paths: matches no file")
    ], "".join(seen)
