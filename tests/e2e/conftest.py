"""End-to-end tests: the real `gateway` console script against the rig's servers."""

import functools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from rig import Rig
from rig.cli import GatewayRunner, gateway_script, run_gateway
from rig.gatewayproc import Gateway, start_gateway
from rig.plugin import rig
from rig.upstream import Upstream

__all__ = ["gateway", "gw", "module_gateway", "rig", "serve", "shared_gw", "upstream"]


@pytest.fixture(scope="session")
def gateway() -> GatewayRunner:
    """`gateway(*args, env={...})` runs the CLI and returns the CompletedProcess."""
    script = gateway_script()
    if not script.exists():
        pytest.fail(f"no `gateway` console script at {script}; `make test` installs it")
    return functools.partial(run_gateway, script)


# ---- `gateway serve` end to end: a fresh upstream, gateway and data_dir per test


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """A recording SMTP server on loopback (rig.upstream.Upstream), fresh per test."""
    server = Upstream().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def serve(rig: Rig, upstream: Upstream, tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    """`serve(data_dir=None, **section_overrides)` starts `gateway serve` for the rig, relaying
    to `upstream`, and returns a rig.gatewayproc.Gateway; every one is stopped (SIGTERM, and it
    must exit 0 unless the test killed it) after the test."""
    started: list[Gateway] = []

    def start(data_dir: Path | None = None, **overrides: Mapping[str, object]) -> Gateway:
        workdir = tmp_path / f"gateway-{len(started) + 1}"
        gateway = start_gateway(rig, workdir, upstream, data_dir, **overrides)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        status = gateway.proc.stop()
        if not gateway.proc.forced:  # a test that kills it checks what it expects itself
            assert status == 0, f"gateway serve exited {status}\n{gateway.proc.output()}"


@pytest.fixture
def gw(serve: Callable[..., Gateway]) -> Gateway:
    """`gateway serve` with the default test config (local domain school.test)."""
    return serve()


@pytest.fixture(scope="module")
def module_gateway(rig: Rig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway and upstream for a whole module; tests take it through `shared_gw`."""
    server = Upstream().start()
    try:
        gateway = start_gateway(rig, tmp_path_factory.mktemp("shared-gateway"), server)
        try:
            yield gateway
        finally:
            status = gateway.proc.stop()
            assert status == 0, f"gateway serve exited {status}\n{gateway.proc.output()}"
    finally:
        server.close()


@pytest.fixture
def shared_gw(module_gateway: Gateway) -> Gateway:
    """The module's gateway, for table-driven tests: the upstream's failures and records are
    reset for each test; holds and log lines accumulate (select them by Message-ID)."""
    assert module_gateway.proc.running, module_gateway.proc.output()
    module_gateway.upstream.reset()
    module_gateway.upstream.clear()
    return module_gateway
