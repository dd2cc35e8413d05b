"""A minimal TOML writer for the flat files the rig generates (the stdlib only reads TOML)."""

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from pathlib import Path


def value(v: object) -> str:
    """One TOML value; strings use JSON escaping, which TOML basic strings accept."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str | Path):
        return json.dumps(str(v))
    if isinstance(v, dt.date):  # datetime is a date too: both print as TOML wants
        return v.isoformat()
    if isinstance(v, list | tuple):
        return "[" + ", ".join(value(item) for item in v) + "]"
    raise TypeError(f"no TOML form for {type(v).__name__}: {v!r}")


def _keys(table: Mapping[str, object]) -> list[str]:
    return [f"{key} = {value(v)}" for key, v in table.items() if v is not None]


def tables(doc: Mapping[str, Mapping[str, object]]) -> str:
    """`[section]` tables of plain keys; keys whose value is None are left out."""
    blocks = ["\n".join([f"[{name}]", *_keys(table)]) for name, table in doc.items()]
    return "\n\n".join(blocks) + "\n"


def array_of_tables(name: str, items: Iterable[Mapping[str, object]]) -> str:
    """`[[name]]` entries; keys whose value is None are left out."""
    blocks = ["\n".join([f"[[{name}]]", *_keys(item)]) for item in items]
    return "\n\n".join(blocks) + "\n"
