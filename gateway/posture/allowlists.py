"""Read the allowlist files named by ``[allowlist] paths`` (globs) or given on the command line.

Problems never stop the gateway: an entry that cannot be read is left out, which can only make
the gateway hold more mail, never less (fail closed), and each problem is reported.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
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
    # The configured patterns (resolved) that found no file: a problem each, too.
    unmatched: tuple[str, ...] = ()


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
        for name in sorted(glob.glob(str(_resolved(pattern, base_dir)))):
            path = Path(name)
            if path.is_file():
                found[path] = None
    return list(found)


def _resolved(pattern: str, base_dir: Path) -> Path:
    full = Path(pattern).expanduser()
    return full if full.is_absolute() else base_dir / full


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def load_configured(patterns: Sequence[str], base_dir: Path) -> Loaded:
    """The files of ``[allowlist] paths``, and a problem for each pattern that finds nothing
    when that is surely a mistake: a file named outright that is not there, or every pattern
    finding nothing (a wrong folder: an empty allowlist holds every flagged message, and
    nobody would know why). One glob among others that finds nothing is no problem: the
    default names both ``*.toml`` and ``*.txt``."""
    files = expand(patterns, base_dir)
    loaded = load(files)
    unmatched = [
        str(_resolved(p, base_dir))
        for p in patterns
        if not expand([p], base_dir) and (not files or not _is_glob(p))
    ]
    problems = [Problem(u, 0, "[allowlist] paths: matches no file") for u in unmatched]
    return replace(loaded, problems=(*problems, *loaded.problems), unmatched=tuple(unmatched))


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
