"""Several worker processes sharing the SMTP port ([smtp] workers), to use every core.

The first process (the leader) runs the scheduler and the web UI and starts the others as
``gateway serve --worker N --ready-fd FD`` with the same configuration; every worker binds the
port with SO_REUSEPORT and the kernel spreads connections among them. They share the data
directory: SQLite's locking keeps the store, the audit chain and the policy cache consistent.

A start has every worker or none: each worker writes one byte on its ready pipe once it
listens, and if one exits (or stalls) before that, the leader stops them all and the start
fails. A worker never outlives its leader: it asks the kernel for SIGTERM when the leader dies,
however it dies (``PR_SET_PDEATHSIG``). A worker that dies later is started again; on SIGTERM
the leader stops them all, and SIGHUP it passes on (each reloads the SMTP certificate).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys

from gateway import logs
from gateway.errors import WorkerFailed

RESTART_DELAY = 1.0
START_TIMEOUT = 60.0  # for a worker to open its parts and listen
STOP_GRACE = 15.0
EXIT_WAIT = 5.0  # for a worker that closed its ready pipe to be reaped
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_leader() -> None:
    """In a worker: have the kernel send SIGTERM when the leader exits, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def tell_leader(ready_fd: int) -> None:
    """In a worker: say on the leader's pipe that this worker listens. A leader that died before
    ``die_with_leader`` took effect left no reader: the write fails and the worker stops."""
    try:
        os.write(ready_fd, b"1")
    finally:
        os.close(ready_fd)


class Supervisor:
    def __init__(self, config_file: str, count: int, start_timeout: float = START_TIMEOUT) -> None:
        self._config_file = config_file  # "" when the defaults and environment alone serve
        self._count = count
        self._start_timeout = start_timeout
        self._children: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._log = logs.get("gateway.workers")

    def _command(self, index: int, ready_fd: int) -> list[str]:
        command = [sys.executable, "-m", "gateway", "serve", "--worker", str(index)]
        command += ["--ready-fd", str(ready_fd)]
        if self._config_file:
            command += ["--config", self._config_file]
        return command

    async def start(self) -> None:
        """Start every worker and wait until each listens; WorkerFailed (with every worker
        stopped) if one does not."""
        spawns = (self._spawn(i) for i in range(1, self._count + 1))
        problems = await asyncio.gather(*spawns, return_exceptions=True)
        failed = [str(problem) for problem in problems if problem]
        if failed:
            await self.stop()
            raise WorkerFailed("; ".join(failed))
        for index in range(1, self._count + 1):
            self._tasks.append(asyncio.create_task(self._keep(index)))

    async def _spawn(self, index: int) -> str:
        """Start worker ``index`` and wait until it listens: "" if it does, else the problem."""
        read_fd, write_fd = os.pipe()
        try:
            child = await asyncio.create_subprocess_exec(
                *self._command(index, write_fd), pass_fds=(write_fd,)
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)  # the worker holds the only writer: EOF when it exits
        self._children[index] = child
        self._log.info("worker started", worker=index, pid=child.pid)
        if await _ready(read_fd, self._start_timeout):
            return ""
        if child.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.wait(), EXIT_WAIT)
        if child.returncode is None:
            child.kill()
            await child.wait()
            return f"worker {index} did not start within {self._start_timeout:.0f} s"
        return f"worker {index} exited with status {child.returncode} while starting"

    def _stopped(self) -> bool:  # a method: mypy would take the flag as fixed inside a loop
        return self._stopping

    async def _keep(self, index: int) -> None:
        while not self._stopped():
            code = await self._children[index].wait()
            if self._stopped():
                return
            self._log.error("worker exited; starting it again", worker=index, code=code)
            await asyncio.sleep(RESTART_DELAY)
            if self._stopped():
                return
            problem = await self._spawn(index)
            if problem:
                self._log.error("worker not started", worker=index, problem=problem)

    def send_signal(self, signum: int) -> None:
        """Pass a signal on to every running worker (SIGHUP: reload the certificate)."""
        for child in self._children.values():
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signum)

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:  # first, so that no worker is started again meanwhile
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
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


async def _ready(read_fd: int, within: float) -> bool:
    """Whether the worker wrote its byte within ``within`` seconds; False at EOF (it exited)."""
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not readable.done():
            readable.set_result(None)

    loop.add_reader(read_fd, wake)
    try:
        await asyncio.wait_for(readable, within)
        return os.read(read_fd, 1) == b"1"
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(read_fd)
        os.close(read_fd)
