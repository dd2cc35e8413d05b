"""A private PostgreSQL server on loopback, for the tests of the shared store.

``initdb`` makes a cluster in a temporary folder and ``postgres`` runs in the foreground as a
child of the tests, so a test can stop, kill or restart it. PostgreSQL refuses to run as root:
when the tests are root (CI), the cluster belongs to Debian's ``postgres`` account and the
server runs as it. Connections over TCP need the password (SCRAM), as a real deployment's do;
each test gets a database of its own from ``create_database``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from rig.errors import RigError
from rig.ports import LOOPBACK, free_port

USER = "gateway"
PASSWORD = "rig-password"  # noqa: S105 - a throwaway cluster on loopback
_SYSTEM_USER = "postgres"  # Debian's account for PostgreSQL
READY_WITHIN = 30.0


def bindir() -> Path:
    """The newest installed PostgreSQL's bin folder (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise RigError(
            "the shared-store tests need PostgreSQL's server (Debian package postgresql), which"
            " is not installed; `make test` installs it (or: apt-get install postgresql)"
        )
    return found[-1].parent


class Postgres:
    def __init__(self) -> None:
        self.bin = bindir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._as_user = _SYSTEM_USER if os.geteuid() == 0 else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._initdb()

    def _run_as(self) -> dict[str, object]:
        return {"user": self._as_user, "group": self._as_user} if self._as_user else {}

    def _initdb(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if self._as_user:
            shutil.chown(self.root, self._as_user, self._as_user)
            shutil.chown(pwfile, self._as_user, self._as_user)
        done = subprocess.run(
            [
                self.bin / "initdb",
                "-D",
                self.data,
                "-U",
                USER,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            capture_output=True,
            check=False,
            **self._run_as(),  # type: ignore[call-overload]
        )
        pwfile.unlink()
        if done.returncode != 0:
            raise RigError(f"initdb failed:\n{done.stdout.decode()}{done.stderr.decode()}")

    def start(self) -> Postgres:
        with self.log.open("ab") as out:
            if self._as_user:
                shutil.chown(self.log, self._as_user, self._as_user)
            self._proc = subprocess.Popen(
                [
                    self.bin / "postgres",
                    "-D",
                    self.data,
                    "-p",
                    str(self.port),
                    "-c",
                    f"listen_addresses={LOOPBACK}",
                    "-c",
                    f"unix_socket_directories={self.root}",
                    "-c",
                    "max_connections=300",
                    "-c",
                    "shared_buffers=64MB",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # No parent-death signal: it fires when the spawning *thread* ends, and a test
                # may restart the server from a worker thread.
                start_new_session=True,
                **self._run_as(),  # type: ignore[call-overload]
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_WITHIN
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RigError(f"postgres exited {self._proc.returncode}:\n{self._tail()}")
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise RigError(f"postgres did not answer: {exc}\n{self._tail()}") from exc
                time.sleep(0.05)  # polling the server's readiness, bounded by the deadline

    def _tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def dsn(self, dbname: str) -> str:
        return f"postgresql://{USER}:{PASSWORD}@{LOOPBACK}:{self.port}/{dbname}"

    def dsn_without_password(self, dbname: str) -> str:
        return f"postgresql://{USER}@{LOOPBACK}:{self.port}/{dbname}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database (UTF-8, so lower() and the collation know every letter)."""
        name = f"{prefix}_{secrets.token_hex(6)}"
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(
                f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'"
                " LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
            )
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, mode: str = "fast") -> None:
        """Shut down: ``fast`` (SIGINT: roll back open transactions, exit cleanly) or
        ``immediate`` (SIGQUIT: as after a crash; the next start recovers from the WAL)."""
        if self._proc is None or self._proc.poll() is not None:
            return
        sig = signal.SIGQUIT if mode == "immediate" else signal.SIGINT
        self._proc.send_signal(sig)
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def close(self) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.root)
