"""`gateway allowlist import`: a published CSV list into an allowlist file that `allowlist lint`
accepts, and a newer copy of the list shown as what it adds and removes before it is written."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

GATEWAY = Path(sys.executable).parent / "gateway"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "dcb1596-sample.csv"
SOURCE = "NHS England DCB1596 accredited secure email domains, 2026-11"
# The fixture's 36 organisations, less a blank domain, a duplicate, a retired gsi.gov.uk
# domain, a name that is no domain and a top-level domain alone.
IMPORTED = 31


def gateway(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GATEWAY), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": os.environ["PATH"]},
        timeout=60,
        check=False,
    )


def import_list(csv: Path, cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return gateway(
        "allowlist",
        "import",
        str(csv),
        "--domain-column",
        "Email Domain",
        "--into",
        "allowlists/dcb1596.toml",
        *extra,
        cwd=cwd,
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "allowlists").mkdir()
    return tmp_path


def test_import_then_lint_then_newer_copy(folder: Path) -> None:
    target = folder / "allowlists" / "dcb1596.toml"
    first = import_list(
        FIXTURE, folder, "--source", SOURCE, "--owner", "it@school.test", "--expires", "2099-11-30"
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(
        f"allowlists/dcb1596.toml: {IMPORTED} added, 0 removed, 0 unchanged\n"
    )
    assert "  + *.police.test\n" in first.stdout
    assert "  + xn--bcher-schule-dlb.sch.test\n" in first.stdout
    assert f"wrote allowlists/dcb1596.toml: {IMPORTED} entries" in first.stdout
    left_out = [line for line in first.stderr.splitlines() if line.startswith(str(FIXTURE))]
    assert [line.split(":")[1] for line in left_out] == ["23", "24", "25", "26", "27"]

    text = target.read_text()
    digest = hashlib.sha256(FIXTURE.read_bytes()).hexdigest()
    assert f'# source: "{SOURCE}"' in text
    assert '# file:   "dcb1596-sample.csv"' in text
    assert f"# sha256: {digest}" in text
    assert oct(target.stat().st_mode & 0o777) == "0o644"

    lint = gateway("allowlist", "lint", cwd=folder)
    assert lint.returncode == 0, lint.stdout
    assert f"1 file(s), {IMPORTED} entries, 0 problem(s)" in lint.stderr

    # As if the first import had been a year ago; the operator tightened the file's mode.
    target.write_text(re.sub(r"imported = \S+", "imported = 2025-12-01", text))
    target.chmod(0o640)
    newer = folder / "dcb1596-2026-12.csv"
    rows = FIXTURE.read_bytes().replace(
        b"Brookside Surgery,GP Practice,BS5,brookside-surgery.nhs.test,2024-02-18,\r\n", b""
    )
    newer.write_bytes(rows + b"New Trust,NHS Trust,NT40,newtrust.nhs.test,2026-11-20,\r\n")
    before = target.read_bytes()

    dry = import_list(newer, folder, "--source", "DCB1596, 2026-12", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    changes = (
        f"allowlists/dcb1596.toml: 1 added, 1 removed, {IMPORTED - 1} unchanged\n"
        "  + newtrust.nhs.test\n"
        "  - brookside-surgery.nhs.test\n"
    )
    assert dry.stdout == changes + "dry run: nothing written\n"
    assert target.read_bytes() == before

    second = import_list(newer, folder, "--source", "DCB1596, 2026-12")
    assert second.returncode == 0, second.stderr
    assert second.stdout == changes + f"wrote allowlists/dcb1596.toml: {IMPORTED} entries\n"
    assert oct(target.stat().st_mode & 0o777) == "0o640"
    assert list(folder.joinpath("allowlists").iterdir()) == [target]  # no temporary left
    entries = entries_by_name(target.read_text())
    assert entries["riverside-hospitals.nhs.test"]["imported"] == "2025-12-01"
    assert entries["riverside-hospitals.nhs.test"]["source"] == '"DCB1596, 2026-12"'
    assert entries["newtrust.nhs.test"]["imported"] != "2025-12-01"
    assert "brookside-surgery.nhs.test" not in entries
    assert gateway("allowlist", "lint", cwd=folder).returncode == 0


def entries_by_name(text: str) -> dict[str, dict[str, str]]:
    """The file's entries as key = raw value text, by name."""
    found: dict[str, dict[str, str]] = {}
    for block in text.split("[[domain]]")[1:]:
        pairs = dict(line.split(" = ", 1) for line in block.strip().splitlines())
        found[pairs["name"].strip('"')] = pairs
    return found


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--domain-column", "Domain"], 2, "no column 'Domain'; the header row has"),
        (["--expires", "2020-01-01"], 2, "--expires 2020-01-01 is in the past"),
        (["--expires", "next year"], 2, "is not a YYYY-MM-DD date"),
        (["--owner", "nobody"], 2, "--owner 'nobody' is not an address"),
        (["--into", "allowlists/x.txt"], 2, "the file must end in .toml"),
    ],
    ids=["no-such-column", "expires-past", "expires-not-date", "owner", "not-toml"],
)
def test_usage_errors_write_nothing(folder: Path, args: list[str], code: int, message: str) -> None:
    base = ["allowlist", "import", str(FIXTURE), "--source", SOURCE]
    defaults = {"--domain-column": "Email Domain", "--into": "allowlists/dcb1596.toml"}
    for key, value in defaults.items():
        if key not in args:
            base += [key, value]
    result = gateway(*base, *args, cwd=folder)
    assert result.returncode == code
    assert message in result.stderr
    assert list(folder.joinpath("allowlists").iterdir()) == []


@pytest.mark.parametrize(
    ("csv", "existing", "message"),
    [
        ("Email Domain\r\nnot a domain\r\n", None, "no domain to import"),
        ("Email Domain\r\none.test\r\n", "[[domain]]\nname = 5\n", "fix allowlists/dcb1596.toml"),
    ],
    ids=["nothing-importable", "existing-file-broken"],
)
def test_findings_leave_the_file_as_it_is(
    folder: Path, csv: str, existing: str | None, message: str
) -> None:
    source = folder / "list.csv"
    source.write_text(csv)
    target = folder / "allowlists" / "dcb1596.toml"
    if existing is not None:
        target.write_text(existing)
    result = import_list(source, folder, "--source", SOURCE)
    assert result.returncode == 1
    assert message in result.stderr
    assert (target.read_text() if target.exists() else None) == existing


def test_says_when_the_gateway_would_not_read_the_file(folder: Path) -> None:
    result = gateway(
        "allowlist",
        "import",
        str(FIXTURE),
        "--domain-column",
        "Email Domain",
        "--source",
        SOURCE,
        "--into",
        "elsewhere.toml",
        cwd=folder,
    )
    assert result.returncode == 0, result.stderr
    assert "elsewhere.toml is not among [allowlist] paths" in result.stderr
