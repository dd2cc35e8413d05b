"""docker-compose.yml as Compose resolves it: Debian's docker-compose `config` (no daemon)
validates the file against the Compose schema and interpolates the environment. Every service
is built here on a pinned official base; none names a registry image to pull."""

import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
SECRETS = {
    "GATEWAY_STORE_KEY": "ab" * 32,
    "GATEWAY_AUDIT_KEY": "cd" * 32,
    "GATEWAY_WEB_SECRET_KEY": "ef" * 32,
    "GATEWAY_DB_PASSWORD": "pw",
}


def compose_config(*files: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`docker-compose -f FILE... config`: the files merged and resolved, as `up` sees them."""
    options = [f"--file={ROOT / name}" for name in ("docker-compose.yml", *files)]
    return subprocess.run(
        ["docker-compose", *options, "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
    )


def bases(dockerfile: Path) -> set[str]:
    return set(re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(), re.MULTILINE))


def test_every_service_is_built_here_on_a_pinned_official_base() -> None:
    done = compose_config("docker-compose.ha.yml", env=SECRETS)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert set(services) == {"resolver", "gateway", "postgres", "migrate", "node-a", "node-b"}
    for name, service in services.items():
        context = Path(service["build"]["context"])
        [base] = bases(context / service["build"].get("dockerfile", "Dockerfile"))
        image, _, tag = base.partition(":")
        # A Docker Official Image (no publisher's namespace), at a named Debian release.
        assert "/" not in image, f"{name}: {base} is a third party's image"
        assert "bookworm" in tag, f"{name}: {base} is not pinned to a release"
    assert Path(services["resolver"]["build"]["context"]) == ROOT / "deploy/unbound"
    # docker-compose 1.29 drops pull_policy when it merges files: read it from each file.
    for file in ("docker-compose.yml", "docker-compose.ha.yml"):
        written = yaml.safe_load((ROOT / file).read_text())["services"]
        for name, service in written.items():
            assert service.get("pull_policy") == "build", f"{file}: {name} could be pulled"
    dsn = services["node-a"]["environment"]["GATEWAY_STORE_DSN"]
    assert dsn == "postgresql://gateway:pw@postgres/gateway"


def test_the_single_node_needs_only_the_store_key() -> None:
    done = compose_config(env={"GATEWAY_STORE_KEY": "ab" * 32})
    assert done.returncode == 0, done.stderr
    assert set(yaml.safe_load(done.stdout)["services"]) == {"resolver", "gateway"}
    refused = compose_config(env={})
    assert refused.returncode != 0
    assert "set GATEWAY_STORE_KEY" in refused.stderr
