"""Several worker processes sharing the SMTP port ([smtp] workers), to use every core.

The first process (the leader) runs the scheduler and the web UI and starts the others as
``gateway serve --worker N`` with the same configuration; every worker binds the port with
SO_REUSEPORT and the kernel spreads connections among them. They share the data directory:
SQLite's locking keeps the store, the audit chain and the policy cache consistent. A worker
that dies is started again; on SIGTERM the leader stops them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

from gateway import logs

RESTART_DELAY = 1.0
STOP_GRACE = 15.0


class Supervisor:
    def __init__(self, config_file: str, count: int) -> None:
        self._config_file = config_file  # "" when the defaults and environment alone serve
        self._count = count
        self._children: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._log = logs.get("gateway.workers")

    def _command(self, index: int) -> list[str]:
        command = [sys.executable, "-m", "gateway", "serve", "--worker", str(index)]
        if self._config_file:
            command += ["--config", self._config_file]
        return command

    async def start(self) -> None:
        for index in range(1, self._count + 1):
            self._tasks.append(asyncio.create_task(self._keep(index)))

    def _stopped(self) -> bool:
        return self._stopping

    async def _keep(self, index: int) -> None:
        while not self._stopped():
            child = await asyncio.create_subprocess_exec(*self._command(index))
            self._children[index] = child
            self._log.info("worker started", worker=index, pid=child.pid)
            code = await child.wait()
            if self._stopped():
                return
            self._log.error("worker exited; starting it again", worker=index, code=code)
            await asyncio.sleep(RESTART_DELAY)

    async def stop(self) -> None:
        self._stopping = True
        for child in self._children.values():
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGTERM)
        for index, child in self._children.items():
            try:
                await asyncio.wait_for(child.wait(), STOP_GRACE)
            except TimeoutError:
                self._log.error("worker did not stop; killing it", worker=index)
                child.kill()
                await child.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
