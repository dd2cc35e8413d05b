"""The container image and compose file, checked with what runs without a Docker engine: the
package they install carries everything it needs, and every file they name exists and loads."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

from gateway.config import loader

ROOT = Path(__file__).resolve().parent.parent


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text(encoding="utf-8")


def test_the_wheel_carries_the_web_templates_and_static_files(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("safeguarding_gateway-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {p.name for p in (ROOT / "gateway/web/templates").glob("*.html")}
    assert templates
    assert {f"gateway/web/templates/{name}" for name in templates} <= names
    assert any(name.startswith("gateway/web/static/") for name in names)
    assert "gateway/core/policy.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "gateway = gateway.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_dockerfile_copies_only_what_exists() -> None:
    # COPY --from=STAGE copies from an earlier stage, not from the build context.
    for source in re.findall(r"^COPY\s+(?!--from=)(.+?)\s+\S+$", dockerfile(), re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), f"Dockerfile copies {path}, which is missing"


def test_dockerfile_runs_as_an_unprivileged_user_and_serves() -> None:
    text = dockerfile()
    assert re.search(r"^USER gateway$", text, re.MULTILINE)
    assert 'CMD ["gateway", "serve"]' in text
    assert "EXPOSE 10025 8025" in text


def test_the_image_default_configuration_loads() -> None:
    # What the image runs with when nothing is mounted: the documented example.
    loader.load(ROOT / "config/gateway.example.toml", environ={})


def test_compose_file_and_the_files_it_mounts() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"gateway", "resolver"}
    gateway = services["gateway"]
    assert gateway["build"] == "."
    # The resolver is Debian's unbound, built here with its configuration: no registry image.
    resolver = ROOT / services["resolver"]["build"]
    assert re.search(
        r"^FROM debian:bookworm-slim$", (resolver / "Dockerfile").read_text(), re.MULTILINE
    )
    assert (resolver / "unbound.conf").exists()
    for volume in gateway["volumes"]:
        source = volume.split(":", 1)[0]
        if source.startswith("./"):
            assert (ROOT / source).exists(), f"compose mounts {source}, which is missing"
    for port in gateway["ports"]:
        assert port.startswith("127.0.0.1:"), "publish the SMTP and web ports on loopback"
    settings = loader.load(
        ROOT / "deploy/gateway.toml",
        environ={"GATEWAY_STORE_KEY": "ab" * 32},
    )
    resolver_ip = services["resolver"]["networks"]["mail"]["ipv4_address"]
    assert [str(ns) for ns in settings.dns.nameservers] == [f"{resolver_ip}:53"]
    assert settings.dns.trust_ad
    subnet = compose["networks"]["mail"]["ipam"]["config"][0]["subnet"]
    assert subnet in settings.smtp.trusted_networks


def test_the_ha_file_runs_two_nodes_on_a_postgresql_built_here() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.ha.yml").read_text(encoding="utf-8"))
    ha = compose["services"]
    assert set(ha) == {"postgres", "migrate", "node-a", "node-b"}
    assert all("build" in service for service in ha.values()), "no registry image for these"
    postgres = ROOT / ha["postgres"]["build"]
    text = (postgres / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3.11-slim-bookworm$", text, re.MULTILINE)  # the gateway's
    for source in re.findall(r"^COPY\s+(.+?)\s+\S+$", text, re.MULTILINE):
        assert (postgres / source).exists(), f"{postgres} copies {source}, which is missing"
    assert ha["migrate"]["command"] == ["gateway", "store", "migrate"]
    for name in ("node-a", "node-b"):
        node = ha[name]
        assert node["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert all(port.startswith("127.0.0.1:") for port in node["ports"])
        environment = {
            key: value.replace("${GATEWAY_DB_PASSWORD}", "pw")
            for key, value in node["environment"].items()
            if not value.startswith("${")
        }
        secrets = {
            "GATEWAY_STORE_KEY": "ab" * 32,
            "GATEWAY_AUDIT_KEY": "cd" * 32,
            "GATEWAY_WEB_SECRET_KEY": "ef" * 32,
        }
        settings = loader.load(ROOT / "deploy/gateway.toml", environ={**environment, **secrets})
        assert settings.store.backend.value == "postgresql"
        assert settings.store.dsn.reveal() == "postgresql://gateway:pw@postgres/gateway"
    assert ha["node-a"]["ports"] != ha["node-b"]["ports"]
