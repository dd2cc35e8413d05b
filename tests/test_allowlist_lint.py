"""`gateway allowlist lint`: every bad entry as file:line: problem, exit status 1 when any."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

GATEWAY = Path(sys.executable).parent / "gateway"
ROOT = Path(__file__).resolve().parent.parent

BAD_LIST = """\
# line 1: a comment
[[domain]]
name = "nhs.net"
note = "NHSmail"

[[domain]]
name = "not a domain!"

[[domain]]
name = "NHS.net."
note = "the same domain again, other case and a trailing dot"

[[domain]]
name = "old-partner.test"
expires = 2020-01-31

[[domain]]
note = "an entry without a name"

[[domain]]
name = "typo.test"
expirs = 2030-01-01

[[domain]]
name = "partner.gsi.gov.uk"

[[domain]]
name = "dates.test"
expires = "next year"
"""


def lint(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GATEWAY), "allowlist", "lint", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": os.environ["PATH"]},
        timeout=30,
        check=False,
    )


def test_lint_names_each_problem_by_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "partners.toml"
    path.write_text(BAD_LIST)
    result = lint(str(path), cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    expected = [
        (7, "invalid domain 'not a domain!'"),
        (10, f"duplicate of {path}:3"),
        (14, "old-partner.test expired on 2020-01-31"),
        (17, "entry has no name"),
        (22, "unknown key 'expirs'"),
        (25, "partner.gsi.gov.uk is in the retired gsi.gov.uk family"),
        (29, "malformed date for expires: 'next year'"),
    ]
    for line, message in expected:
        assert any(text.startswith(f"{path}:{line}: ") and message in text for text in lines), (
            f"no problem at line {line} saying {message!r} in:\n{result.stdout}"
        )
    assert len(lines) == len(expected)


def test_plain_text_list(tmp_path: Path) -> None:
    path = tmp_path / "quick.txt"
    path.write_text("# secure partners\nnhs.net\n*.police.uk  # forces\n\nbad_domain-.test\n")
    result = lint(str(path), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{path}:5: invalid domain 'bad_domain-.test': invalid label 'bad_domain-'"
    ]


def test_clean_list_exits_zero(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text('[[domain]]\nname = "nhs.net"\n\n[[domain]]\nname = "*.police.uk"\n')
    result = lint(str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    assert result.stdout == ""
    assert "1 file(s), 2 entries, 0 problem(s)" in result.stderr


def test_lint_defaults_to_the_configured_paths(tmp_path: Path) -> None:
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "a.toml").write_text('[[domain]]\nname = "a.test"\n')
    (tmp_path / "lists" / "b.txt").write_text("a.test\n")
    config = tmp_path / "gateway.toml"
    config.write_text('[allowlist]\npaths = ["lists/*.toml", "lists/*.txt"]\n')
    result = lint("--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "b.txt:1: duplicate of" in result.stdout


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = lint(str(tmp_path / "absent.toml"), cwd=tmp_path)
    assert result.returncode == 2
    assert "no such file" in result.stderr


def test_the_shipped_example_is_clean() -> None:
    result = lint(str(ROOT / "allowlists" / "example.toml"), cwd=ROOT)
    assert result.returncode == 0, result.stdout
