"""Read the allowlist files named by ``[allowlist] paths`` (globs) or given on the command line.

Problems never stop the gateway: an entry that cannot be read is left out, which can only make
the gateway hold more mail, never less (fail closed), and each problem is reported.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gateway.core.allowlist import (
    Allowlist,
    AllowlistEntry,
    ParsedFile,
    Problem,
    parse_toml,
    parse_txt,
)


@dataclass(frozen=True)
class Loaded:
    allowlist: Allowlist
    problems: tuple[Problem, ...]
    files: tuple[Path, ...]


@dataclass(frozen=True)
class InForce:
    """The allowlist the gateway decides with, the files it was read from and when (Unix
    time; 0 when it was not read from files). Replaced whole on a reload, never changed."""

    allowlist: Allowlist
    files: tuple[Path, ...] = ()
    loaded_at: float = 0.0


def expand(patterns: Iterable[str], base_dir: Path) -> list[Path]:
    """The files the patterns name, each once, in a stable order."""
    found: dict[Path, None] = {}
    for pattern in patterns:
        full = Path(pattern).expanduser()
        if not full.is_absolute():
            full = base_dir / full
        for name in sorted(glob.glob(str(full))):
            path = Path(name)
            if path.is_file():
                found[path] = None
    return list(found)


def read_file(path: Path) -> ParsedFile:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return ParsedFile((), (Problem(str(path), 0, f"cannot read: {exc}"),))
    if path.suffix == ".toml":
        return parse_toml(text, str(path))
    if path.suffix == ".txt":
        return parse_txt(text, str(path))
    return ParsedFile((), (Problem(str(path), 0, "allowlist files end in .toml or .txt"),))


def load(paths: Iterable[Path]) -> Loaded:
    entries: list[AllowlistEntry] = []
    problems: list[Problem] = []
    files = tuple(paths)
    for path in files:
        parsed = read_file(path)
        entries.extend(parsed.entries)
        problems.extend(parsed.problems)
    return Loaded(Allowlist(entries), tuple(problems), files)
