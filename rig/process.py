"""Running one server in the foreground as a child process, with its logs kept for errors."""

import contextlib
import ctypes
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rig.errors import RigError

_PR_SET_PDEATHSIG = 1
_LOG_TAIL = 6000


def die_with_parent() -> None:
    # Runs in the child before exec: if pytest is killed outright, the kernel stops the server
    # too, so no stray server keeps a port after a crashed run.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _tail(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(none)"
    return text[-_LOG_TAIL:] or "(empty)"


class ServerProcess:
    """One server started with `argv`; its stdout and stderr go to `<name>.out` in `logdir`."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str | Path],
        logdir: Path,
        extra_logs: Sequence[Path] = (),
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.output = logdir / f"{name}.out"
        self.extra_logs = list(extra_logs)
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.output.open("wb") as out:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,  # only a prctl; safe before exec
            )

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    def logs(self) -> str:
        parts = [f"--- {self.output}\n{_tail(self.output)}"]
        parts += [f"--- {log}\n{_tail(log)}" for log in self.extra_logs]
        return "\n".join(parts)

    def fail(self, what: str) -> RigError:
        command = " ".join(self.argv)
        return RigError(f"{self.name}: {what}\ncommand: {command}\n{self.logs()}")

    def check_running(self) -> None:
        if self._popen is None:
            raise self.fail("was never started")
        code = self._popen.poll()
        if code is not None:
            raise self.fail(f"exited with status {code}")

    def wait_ready(self, probe: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `probe` until it returns true; fail with the logs if the server dies or stalls."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_running()
            if probe():
                return
            if time.monotonic() > deadline:
                raise self.fail(f"not ready after {timeout:.0f} s: {what}")
            time.sleep(0.02)

    def stop(self, timeout: float = 5.0) -> None:
        if self._popen is None or self._popen.poll() is not None:
            return
        self._popen.terminate()
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait(timeout)
