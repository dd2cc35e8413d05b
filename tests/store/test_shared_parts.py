"""What ``gateway.runtime.parts`` builds for ``[store] backend = "postgresql"``: accounts and the
MTA-STS policy cache in the shared database, and advisory fetch locks even with one worker
(the other nodes fetch too)."""

from __future__ import annotations

from pathlib import Path

from web.site import PASSWORD, cheap_hasher

from gateway.config import loader
from gateway.config.settings import Settings
from gateway.core.allowlist import Allowlist
from gateway.core.mtasts import parse_policy
from gateway.core.stscache import CachedPolicy
from gateway.runtime import parts
from gateway.store.postgres.locks import AdvisoryLocks
from gateway.store.postgres.policycache import PgPolicyCache
from support.eitherbackend import migrate_now

POLICY = "version: STSv1\nmode: enforce\nmx: mx.good.test\nmax_age: 86400\n"


def shared_settings(folder: Path, dsn: str) -> Settings:
    path = folder / "gateway.toml"
    path.write_text(
        "[store]\n"
        'data_dir = "data"\n'
        'backend = "postgresql"\n'
        f'key = "{"11" * 32}"\n'
        "[audit]\n"
        f'key = "{"22" * 32}"\n'
        "[web]\n"
        f'secret_key = "{"33" * 32}"\n'
    )
    return loader.load(path, environ={"GATEWAY_STORE_DSN": dsn})


def test_two_nodes_share_the_accounts_in_the_database(tmp_path: Path, pg_dsn: str) -> None:
    migrate_now(pg_dsn)
    settings = shared_settings(tmp_path, pg_dsn)
    node_a, node_b = parts.open_accounts(settings), parts.open_accounts(settings)
    try:
        node_a._hasher = node_b._hasher = cheap_hasher()
        node_a.add("jo", "reviewer", PASSWORD)
        assert node_b.authenticate("jo", PASSWORD)[1] == ""
        assert [user.name for user in node_b.all()] == ["jo"]
    finally:
        node_a.close()
        node_b.close()
    assert not (tmp_path / "data" / "users.sqlite3").exists()


async def test_the_posture_caches_in_the_database_and_locks_across_nodes(
    tmp_path: Path, pg_dsn: str
) -> None:
    migrate_now(pg_dsn)
    settings = shared_settings(tmp_path, pg_dsn)
    assert settings.smtp.workers == 1
    cached = CachedPolicy("good.test", "id1", parse_policy(POLICY), POLICY, 1.0, 86401.0)
    async with parts.open_posture(settings, Allowlist(())) as posture:
        assert isinstance(posture.checker._locks, AdvisoryLocks)
        assert isinstance(posture.checker._cache, PgPolicyCache)
        await posture.checker._cache.store_policy(cached)
    other = await parts.open_policy_cache(settings)  # another node, or `gateway sts-cache`
    try:
        assert await other.domains() == ["good.test"]
        assert await other.policy("good.test") == cached
        assert await other.entry("good.test") == (cached, None)
    finally:
        await other.close()
    assert not (tmp_path / "data" / parts.POLICY_DB).exists()


async def test_a_cached_policy_that_no_longer_parses_is_forgotten(
    tmp_path: Path, pg_dsn: str
) -> None:
    migrate_now(pg_dsn)
    cache = await parts.open_policy_cache(shared_settings(tmp_path, pg_dsn))
    broken = CachedPolicy("old.test", "id1", parse_policy(POLICY), "mode: enforce\n", 1.0, 2.0)
    await cache.store_policy(broken)  # as an older release might have kept it
    assert await cache.domains() == ["old.test"]
    assert await cache.policy("old.test") is None
    assert await cache.domains() == []
    await cache.close()
    await cache.close()  # twice is harmless
