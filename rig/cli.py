"""Running the gateway's console script as a user would, for the end-to-end tests."""

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

# Generous: a whole table of domains, each bounded by the 2 s DNS timeout of the rig config.
CLI_TIMEOUT = 120

GatewayRunner = Callable[..., subprocess.CompletedProcess[str]]


def gateway_script() -> Path:
    """The `gateway` console script next to this interpreter (there is no `python -m gateway`)."""
    return Path(sys.executable).parent / "gateway"


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    # The gateway must reach the rig directly: no proxy, and no GATEWAY_* setting leaking in
    # from the developer's shell to change a verdict.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GATEWAY_") and "proxy" not in key.lower()
    }
    env.update(extra or {})
    return env


def run_gateway(
    script: Path, *args: str | Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `gateway ARGS...` with `env` added to a clean environment; never raises on exit."""
    return subprocess.run(
        [str(script), *(str(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        env=clean_env(env),
        check=False,
    )
