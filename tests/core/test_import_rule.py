"""The import rule of the pure core (gateway/core/__init__.py).

Every module under gateway/core/ may import only the standard library, gateway.core itself and
the one pure exception ``idna``. No network, no event loop, no TLS, no storage, no clock: the
adapters gather facts and the core decides. The checker works on source text with ``ast`` so
that it never imports (and so never runs) the modules it inspects.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "gateway" / "core"
CORE_PACKAGE = "gateway.core"
ALLOWED_THIRD_PARTY = frozenset({"idna"})

# Named in the brief: I/O, event loops, TLS, DNS, HTTP, SMTP, logging, storage, crypto, clock.
FORBIDDEN = (
    "asyncio",
    "socket",
    "ssl",
    "dns",
    "httpx",
    "aiosmtpd",
    "aiosmtplib",
    "structlog",
    "sqlite3",
    "starlette",
    "cryptography",
    "time",
)
# Calls that load a module by name at run time would slip past a static import check.
DYNAMIC_IMPORTS = frozenset({"__import__", "import_module"})
# The core never reads the clock: ``now`` comes in as an argument.
CLOCK_CALLS = frozenset(
    {"now", "utcnow", "today", "time_ns", "monotonic", "perf_counter", "localtime"}
)

EXPECTED_MODULES = (
    "model.py",
    "addresses.py",
    "allowlist.py",
    "mtasts.py",
    "tlsrpt.py",
    "dane.py",
    "stscache.py",
    "policy.py",
)


@dataclass(frozen=True)
class Violation:
    file: str
    line: int
    module: str
    why: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: imports {self.module!r} ({self.why})"


def _resolve(node: ast.ImportFrom, relative_path: str) -> str:
    """The absolute module of ``from X import ...``; relative imports resolve against the
    package of the file (gateway.core, or a subpackage of it)."""
    if not node.level:
        return node.module or ""
    package = [*CORE_PACKAGE.split("."), *Path(relative_path).parts[:-1]]
    up = node.level - 1
    base = package[: len(package) - up] if up <= len(package) else []
    return ".".join([*base, *([node.module] if node.module else [])])


def imported_modules(source: str, relative_path: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import statement, at any depth of the tree."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, relative_path)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(node, relative_path)
            if node.module is None or module == CORE_PACKAGE:
                # ``from . import model`` and ``from gateway.core import model`` name modules
                found.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names)
            else:
                found.append((node.lineno, module))
    return found


def _why_not_allowed(module: str) -> str | None:
    top = module.split(".", 1)[0]
    if top in FORBIDDEN:
        return "explicitly forbidden in the core"
    if module == CORE_PACKAGE or module.startswith(CORE_PACKAGE + "."):
        return None
    if top in sys.stdlib_module_names:
        return None
    if top in ALLOWED_THIRD_PARTY:
        return None
    if top == "gateway":
        return "the core must not depend on the adapters"
    return "not the standard library, gateway.core or idna"


def check_source(source: str, relative_path: str) -> list[Violation]:
    """Every import in ``source`` that breaks the rule, plus dynamic imports."""
    violations = [
        Violation(relative_path, line, module, why)
        for line, module in imported_modules(source, relative_path)
        if (why := _why_not_allowed(module)) is not None
    ]
    for node in ast.walk(ast.parse(source, relative_path)):
        if isinstance(node, ast.Call):
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            if name in DYNAMIC_IMPORTS:
                violations.append(
                    Violation(relative_path, node.lineno, f"<{name}()>", "dynamic import")
                )
    return violations


def clock_reads(source: str, relative_path: str) -> list[str]:
    """Calls such as ``dt.datetime.now()``, ``date.today()`` or ``time.monotonic()``."""
    found = []
    for node in ast.walk(ast.parse(source, relative_path)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in CLOCK_CALLS
        ):
            found.append(f"{relative_path}:{node.lineno}: calls .{node.func.attr}()")
    return found


def _core_files() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(CORE).as_posix()


CORE_FILES = _core_files()


def test_the_walk_finds_the_core_modules() -> None:
    """Guards against a vacuous pass: the parametrised tests below need files to look at."""
    names = {path.name for path in CORE_FILES}
    assert set(EXPECTED_MODULES) <= names, f"missing from {CORE}: {set(EXPECTED_MODULES) - names}"


@pytest.mark.parametrize("path", CORE_FILES, ids=[_rel(p) for p in CORE_FILES])
def test_core_imports_only_stdlib_core_and_idna(path: Path) -> None:
    violations = check_source(path.read_text(encoding="utf-8"), f"gateway/core/{_rel(path)}")
    assert not violations, "the pure core breaks its import rule:\n" + "\n".join(
        str(v) for v in violations
    )


@pytest.mark.parametrize("path", CORE_FILES, ids=[_rel(p) for p in CORE_FILES])
def test_core_imports_none_of_the_forbidden_modules(path: Path) -> None:
    rel = f"gateway/core/{_rel(path)}"
    tops = {
        module.split(".", 1)[0]: line for line, module in imported_modules(path.read_text(), rel)
    }
    bad = sorted(f"{rel}:{tops[name]}: imports {name!r}" for name in FORBIDDEN if name in tops)
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", CORE_FILES, ids=[_rel(p) for p in CORE_FILES])
def test_core_never_reads_the_clock(path: Path) -> None:
    found = clock_reads(path.read_text(encoding="utf-8"), f"gateway/core/{_rel(path)}")
    assert not found, "the core must take the time as an argument:\n" + "\n".join(found)


# --- the checker itself: negative and positive controls -------------------------------------


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("import socket\n", "socket"),
        ("from socket import create_connection\n", "socket"),
        ("import asyncio.streams\n", "asyncio.streams"),
        ("import dns.resolver\n", "dns.resolver"),
        ("import httpx\n", "httpx"),
        ("import time\n", "time"),
        ("from time import monotonic\n", "time"),
        ("import structlog\n", "structlog"),
        ("import yaml\n", "yaml"),
        ("from gateway import stsfetch\n", "gateway"),
        ("from gateway.adapters import dns\n", "gateway.adapters"),
        ("from .. import config\n", "gateway.config"),
        ("from ..stsdb import Store\n", "gateway.stsdb"),
        ("def f():\n    import ssl\n    return ssl\n", "ssl"),
        ("try:\n    import sqlite3\nexcept ImportError:\n    pass\n", "sqlite3"),
        ("x = __import__('socket')\n", "<__import__()>"),
        ("import importlib\nm = importlib.import_module('ssl')\n", "<import_module()>"),
    ],
    ids=[
        "import-socket",
        "from-socket",
        "submodule-of-forbidden",
        "dnspython",
        "httpx",
        "time",
        "from-time",
        "structlog",
        "third-party",
        "gateway-adapter",
        "gateway-subpackage",
        "relative-escape",
        "relative-escape-module",
        "nested-in-function",
        "inside-try",
        "dunder-import",
        "importlib",
    ],
)
def test_checker_flags_a_bad_import(source: str, module: str) -> None:
    violations = check_source(source, "mtasts.py")
    assert [v.module for v in violations] == [module]
    assert "mtasts.py" in str(violations[0])
    assert module in str(violations[0])


def test_checker_flags_socket_by_file_and_module() -> None:
    """The negative control the brief asks for: the same checker, a source importing socket."""
    violations = check_source("import re\nimport socket\n", "policy.py")
    assert len(violations) == 1
    assert str(violations[0]).startswith("policy.py:2: imports 'socket'")


@pytest.mark.parametrize(
    "source",
    [
        "from __future__ import annotations\n",
        "import re\nimport datetime as dt\nimport tomllib\n",
        "from collections.abc import Iterable\n",
        "import email.parser\n",
        "import idna\n",
        "from gateway.core.model import Reason\n",
        "from gateway.core import model\n",
        "from . import model\n",
        "from .model import Reason\n",
    ],
    ids=[
        "future",
        "stdlib",
        "stdlib-from",
        "stdlib-submodule",
        "idna",
        "core",
        "core-pkg",
        "relative",
        "relative-module",
    ],
)
def test_checker_accepts_allowed_imports(source: str) -> None:
    assert check_source(source, "policy.py") == []


def test_relative_imports_resolve_against_the_core_package() -> None:
    assert imported_modules("from .model import Reason\n", "policy.py") == [
        (1, "gateway.core.model")
    ]
    assert imported_modules("from .. import config\n", "policy.py") == [(1, "gateway.config")]


@pytest.mark.parametrize(
    "source",
    [
        "import datetime as dt\nx = dt.datetime.now(dt.UTC)\n",
        "import datetime\nx = datetime.date.today()\n",
        "import datetime\nx = datetime.datetime.utcnow()\n",
        "import time\nx = time.monotonic()\n",
    ],
    ids=["datetime-now", "date-today", "utcnow", "monotonic"],
)
def test_clock_checker_flags_clock_reads(source: str) -> None:
    assert len(clock_reads(source, "policy.py")) == 1


def test_clock_checker_accepts_fromtimestamp() -> None:
    assert (
        clock_reads("import datetime as dt\ndt.datetime.fromtimestamp(0, dt.UTC)\n", "p.py") == []
    )
