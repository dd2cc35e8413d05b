"""End-to-end tests: the real `gateway` console script against the rig's servers.

A module marked ``both_backends`` runs each test that starts a gateway twice: on the embedded
store (SQLite in the data_dir) and on the shared store (a PostgreSQL database of the rig's
server, fresh per test for `serve`, per module for `module_store`). ``sqlite_only`` keeps a
test of the embedded store's own files to the first.
"""

import functools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from rig import Rig
from rig.cli import GatewayRunner, gateway_script, run_gateway
from rig.gatewayproc import Gateway, start_gateway
from rig.plugin import rig
from rig.postgres import Postgres
from rig.sharedstore import SharedStore
from rig.upstream import Upstream

__all__ = [
    "gateway",
    "gw",
    "module_databases",
    "module_gateway",
    "module_store",
    "rig",
    "serve",
    "shared_gw",
    "shared_store",
    "store",
    "store_backend",
    "upstream",
]

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
BACKENDS = [SQLITE, POSTGRESQL]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_backend" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("both_backends") is None:
        return
    only_sqlite = metafunc.definition.get_closest_marker("sqlite_only") is not None
    params = [SQLITE] if only_sqlite else BACKENDS
    metafunc.parametrize("store_backend", params, indirect=True, scope="module")


@pytest.fixture(scope="module")
def store_backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` (the default) or ``postgresql``, for a module marked ``both_backends``."""
    return str(getattr(request, "param", SQLITE))


@pytest.fixture
def store(store_backend: str, request: pytest.FixtureRequest) -> SharedStore | None:
    """The test's shared store (a fresh database), or None on the embedded backend."""
    if store_backend == SQLITE:
        return None
    return SharedStore(request.getfixturevalue("pg_dsn"))


@pytest.fixture
def shared_store(pg_dsn: str) -> SharedStore:
    """A fresh PostgreSQL database for the nodes of one test (always the shared store)."""
    return SharedStore(pg_dsn)


@pytest.fixture(scope="module")
def module_databases(
    store_backend: str, request: pytest.FixtureRequest
) -> Iterator[Callable[[], SharedStore | None]]:
    """``new()`` gives a module's gateway a shared store of its own (a new database, dropped
    after the module), or None on the embedded backend."""
    made: list[str] = []

    def new() -> SharedStore | None:
        if store_backend == SQLITE:
            return None
        server: Postgres = request.getfixturevalue("postgres_server")
        if not server.running:
            server.start()
        made.append(server.create_database())
        return SharedStore(server.dsn(made[-1]))

    yield new
    if made:
        server: Postgres = request.getfixturevalue("postgres_server")
        for name in made:
            if server.running:
                server.drop_database(name)


@pytest.fixture(scope="module")
def module_store(module_databases: Callable[[], SharedStore | None]) -> SharedStore | None:
    """The module's shared store (one database for the module's gateway), or None."""
    return module_databases()


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
def serve(
    rig: Rig, upstream: Upstream, tmp_path: Path, store: SharedStore | None
) -> Iterator[Callable[..., Gateway]]:
    """`serve(data_dir=None, **section_overrides)` starts `gateway serve` for the rig, relaying
    to `upstream`, and returns a rig.gatewayproc.Gateway; every one is stopped (SIGTERM, and it
    must exit 0 unless the test killed it) after the test. On the shared store, every gateway
    of the test uses the test's database."""
    started: list[Gateway] = []

    def start(data_dir: Path | None = None, **overrides: Mapping[str, object]) -> Gateway:
        workdir = tmp_path / f"gateway-{len(started) + 1}"
        gateway = start_gateway(rig, workdir, upstream, data_dir, store=store, **overrides)
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
def module_gateway(
    rig: Rig, tmp_path_factory: pytest.TempPathFactory, module_store: SharedStore | None
) -> Iterator[Gateway]:
    """One gateway and upstream for a whole module; tests take it through `shared_gw`."""
    server = Upstream().start()
    try:
        workdir = tmp_path_factory.mktemp("shared-gateway")
        gateway = start_gateway(rig, workdir, server, store=module_store)
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
