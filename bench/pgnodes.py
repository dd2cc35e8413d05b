"""`gateway-2pg`: two `gateway serve` nodes sharing one PostgreSQL database, against which the
one-node `gateway` target (SQLite) is compared in the same run.

The database server is the tests' private one (rig/postgres.py: initdb in a temporary folder,
`postgres` in the foreground on a loopback port, SCRAM passwords, durable commits as shipped:
fsync and synchronous_commit on). Each scenario gets a fresh database, its schema applied by
`gateway store migrate`, as each scenario gets a fresh data_dir on one node. The nodes have
their own ports and their own data_dir (what is not shared: the audit witness file, the web
signing key) but the same store and audit keys, given as key files (PostgreSQL never sees
them); the DSN, password included, reaches them through GATEWAY_STORE_DSN, never through the
config file.

The two targets run the same number of gateway processes: the one node has `[smtp] workers`
= cores (2 here), each of the two nodes cores / 2 (1 here).
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import psycopg

from bench.scenarios import Scenario
from bench.targets import GATEWAY, WORKERS, GatewayTarget, Target
from bench.tools import free_port
from rig.postgres import Postgres
from rig.rig import Rig

NODES = 2
# The load of these scenarios is measured on both targets; the others are one-node matters.
SCENARIOS = ("flagged_insecure_5k", "flagged_secure_5k")


class GatewayNodes(Target):
    name = "gateway-2pg"

    def __init__(
        self,
        workdir: Path,
        rig: Rig,
        sink_port: int,
        fetchwatch_port: int,
        nodes: int = NODES,
    ) -> None:
        self.workdir = workdir
        self.pg: Postgres | None = None
        self.dbname = ""
        workers = max(1, WORKERS // nodes)
        self.nodes = [
            GatewayTarget(workdir, rig, sink_port, fetchwatch_port, node=f"-pg{i + 1}")
            for i in range(nodes)
        ]
        keys = {"store": workdir / "pg-store.key", "audit": workdir / "pg-audit.key"}
        for path in keys.values():
            path.write_text(secrets.token_hex(32) + "\n")
            path.chmod(0o600)
        for node in self.nodes:
            node.workers = workers  # not a variant: the name stays "gateway"
            node.store = {"backend": "postgresql", "key_file": keys["store"]}
            node.audit = {"key_file": keys["audit"]}

    def takes_part(self, scenario: Scenario) -> bool:
        return scenario.name in SCENARIOS

    def _server(self) -> Postgres:
        if self.pg is None or not self.pg.running:
            self.pg = Postgres()
            self.pg.start()
        return self.pg

    def begin(self, scenario: Scenario) -> None:
        pg = self._server()
        self.dbname = pg.create_database(prefix="bench")
        env = {"GATEWAY_STORE_DSN": pg.dsn(self.dbname)}
        for node in self.nodes:
            node.env = env
        self._migrate(scenario)
        for node in self.nodes:
            node.begin(scenario)
        self.port = self.nodes[0].port

    def _migrate(self, scenario: Scenario) -> None:
        """The schema, applied as an operator does before the nodes' first start."""
        first = self.nodes[0]
        first.port = free_port()  # begin() writes the config again with the port it listens on
        config = first.write_config(scenario)
        done = subprocess.run(
            [str(GATEWAY), "store", "migrate", "--config", str(config)],
            env={**os.environ, **first.env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"gateway store migrate failed:\n{done.stdout}{done.stderr}")

    def end(self) -> None:
        for node in self.nodes:
            node.end()
        if self.pg is not None and self.pg.running and self.dbname:
            self.pg.drop_database(self.dbname)
        self.dbname = ""

    def stop(self) -> None:
        self.end()
        if self.pg is not None:
            self.pg.close()
            self.pg = None

    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def pids(self) -> list[int]:
        return [pid for node in self.nodes for pid in node.pids()]

    def db_pids(self) -> list[int]:
        """The postmaster (its backends and helpers are its children): the first line of
        postmaster.pid in the data folder ("A lock file recording the current postmaster
        process ID", PostgreSQL docs, "Database File Layout")."""
        if self.pg is None:
            return []
        return [int((self.pg.data / "postmaster.pid").read_text().split()[0])]

    def single_process(self) -> bool:
        return False

    def relayed_per_message(self, scenario: Scenario) -> int:
        return scenario.relayed

    def notices_per_message(self, scenario: Scenario) -> int:
        return scenario.notices

    def held_count(self) -> int | None:
        assert self.pg is not None
        with psycopg.connect(self.pg.dsn(self.dbname)) as conn:
            row = conn.execute("SELECT count(*) FROM holds").fetchone()
        return int(row[0]) if row else 0
