"""The session-scoped `rig` fixture, shared by every conftest that imports it.

Each conftest that imports `rig` registers its own fixture definition, so pytest would start one
rig per directory. The definitions instead share one running rig, counted, and the last release
stops it: a session that runs tests/e2e and tests/rig_smoke starts the servers once.
"""

from collections.abc import Iterator

import pytest

from rig.errors import RigError
from rig.postgres import Postgres
from rig.rig import Rig, start_rig


class _Shared:
    def __init__(self) -> None:
        self.rig: Rig | None = None
        self.error: str | None = None
        self.users = 0

    def acquire(self, factory: pytest.TempPathFactory) -> Rig:
        if self.error is not None:
            pytest.fail(self.error, pytrace=False)
        if self.rig is None:
            try:
                self.rig = start_rig(factory.mktemp("rig"))
            except RigError as exc:
                # Fail, never skip: a missing server must not pass as a green run.
                self.error = f"the end-to-end test rig did not start:\n{exc}"
                pytest.fail(self.error, pytrace=False)
        self.users += 1
        return self.rig

    def release(self) -> None:
        self.users -= 1
        if self.users == 0 and self.rig is not None:
            self.rig.stop()
            self.rig = None


_SHARED = _Shared()


@pytest.fixture(scope="session")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """knotd + unbound + nginx on loopback, started once per session (see rig.Rig)."""
    running = _SHARED.acquire(tmp_path_factory)
    try:
        yield running
    finally:
        _SHARED.release()


_POSTGRES: list[Postgres] = []


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """A private PostgreSQL server on loopback (rig.postgres), started once per session at the
    first test that asks for it. A missing server fails the test, never skips it."""
    try:
        server = Postgres().start()
    except RigError as exc:
        pytest.fail(f"the PostgreSQL server of the test rig did not start:\n{exc}", pytrace=False)
    _POSTGRES.append(server)
    try:
        yield server
    finally:
        server.close()
        _POSTGRES.remove(server)


@pytest.fixture
def pg_dsn(postgres_server: Postgres) -> Iterator[str]:
    """The DSN (password included) of a new, empty database of its own for this test."""
    if not postgres_server.running:  # a test before this one stopped it
        postgres_server.start()
    name = postgres_server.create_database()
    try:
        yield postgres_server.dsn(name)
    finally:
        if postgres_server.running:
            postgres_server.drop_database(name)
