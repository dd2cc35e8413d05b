"""docs/deployment.md, read as an operator copies it: every configuration it shows loads with
the real settings loader, the Postfix one names the data and lists by absolute paths (so every
command finds the same holds from any directory), and the Exchange Online transport rule routes
on exactly what the gateway flags by default."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from gateway.config import loader
from gateway.config.settings import ClassifySettings, Settings

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "deployment.md"
_TOML_BLOCK = re.compile(r"^```toml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def section(title: str) -> str:
    """The text from the heading ``title`` to the next heading of the same or a higher level
    (a ``#`` line inside a fenced block is a comment, not a heading)."""
    taken: list[str] = []
    level = 0
    fenced = False
    for line in guide().splitlines(keepends=True):
        heading = re.match(r"(#+) ", line) if not fenced else None
        if line.startswith("```"):
            fenced = not fenced
        if heading and level and len(heading.group(1)) <= level:
            break
        if heading and not level and line[heading.end() :].startswith(title):
            level = len(heading.group(1))
        elif level:
            taken.append(line)
    assert level, f"no section {title!r} in {GUIDE}"
    return "".join(taken)


def toml_blocks(text: str) -> list[str]:
    return _TOML_BLOCK.findall(text)


def load(block: str, tmp_path: Path) -> Settings:
    path = tmp_path / "gateway.toml"
    path.write_text(block, encoding="utf-8")
    return loader.load(path, environ={})


BLOCKS = toml_blocks(guide())


def test_the_guide_shows_its_configurations() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block-{n}" for n in range(1, len(BLOCKS) + 1)])
def test_every_configuration_in_the_guide_loads(block: str, tmp_path: Path) -> None:
    settings = load(block, tmp_path)
    # A relative path would be taken from the configuration file's folder: fine for the
    # demo, a surprise in /etc. The guide gives absolute ones wherever it names a file.
    for key, value in path_values(settings):
        assert Path(value).is_absolute(), f"{key} = {value!r} in the guide is not absolute"


def path_values(settings: Settings) -> list[tuple[str, str]]:
    found = [
        ("store.data_dir", settings.store.data_dir),
        ("store.key_file", settings.store.key_file),
        ("audit.key_file", settings.audit.key_file),
        ("audit.witness_file", settings.audit.witness_file),
        ("smtp.tls_cert", settings.smtp.tls_cert),
        ("smtp.tls_key", settings.smtp.tls_key),
        ("smtp.client_ca_file", settings.smtp.client_ca_file),
        ("web.tls_cert", settings.web.tls_cert),
        ("web.tls_key", settings.web.tls_key),
    ]
    found += [("allowlist.paths", pattern) for pattern in settings.allowlist.paths]
    defaults = Settings()
    unchanged = {("store.data_dir", defaults.store.data_dir)}
    unchanged |= {("allowlist.paths", p) for p in defaults.allowlist.paths}
    return [(k, v) for k, v in found if v and (k, v) not in unchanged]


def test_postfix_configuration_names_data_lists_reviewers_and_notices(tmp_path: Path) -> None:
    [first, *_] = toml_blocks(section("Behind Postfix"))
    table = tomllib.loads(first)
    assert Path(table["store"]["data_dir"]).is_absolute()
    assert table["allowlist"]["paths"]
    assert all(Path(p).is_absolute() for p in table["allowlist"]["paths"])
    assert table["review"]["reviewers"]
    assert table["notify"]["from"]
    assert table["notify"]["organisation"]
    settings = load(first, tmp_path)
    assert settings.store.data_dir == "/var/lib/gateway"
    assert settings.review.reviewers


def test_postfix_guide_says_how_the_commands_find_the_configuration() -> None:
    text = section("Behind Postfix")
    assert "gateway --config /etc/gateway/gateway.toml held list" in text
    assert "GATEWAY_CONFIG=/etc/gateway/gateway.toml" in text


def backticked(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


def transport_rule() -> str:
    return " ".join(section("Exchange Online").split())


def example_classify() -> dict[str, object]:
    example = tomllib.loads((ROOT / "config" / "gateway.example.toml").read_text("utf-8"))
    section: dict[str, object] = example["classify"]
    return section


def test_exchange_rule_keywords_are_the_default_subject_markers() -> None:
    found = re.search(
        r"includes any of the words (.*?) \(the defaults of `\[classify\] subject_markers`",
        transport_rule(),
    )
    assert found is not None, "the transport rule no longer lists the subject markers"
    words = backticked(found.group(1))
    assert words == list(ClassifySettings().subject_markers)
    assert words == example_classify()["subject_markers"]


def test_exchange_rule_header_is_the_default_header_and_values() -> None:
    found = re.search(
        r"message header `([^`]+)` includes any of the words (.*?) "
        r"\(the defaults of `\[classify\] header` and `header_values`\)",
        transport_rule(),
    )
    assert found is not None, "the transport rule no longer names the header and its values"
    header, values = found.group(1), backticked(found.group(2))
    assert header == ClassifySettings().header == example_classify()["header"]
    assert values == list(ClassifySettings().header_values) == example_classify()["header_values"]
