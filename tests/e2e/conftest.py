"""End-to-end tests: the real `gateway` console script against the rig's servers."""

import functools

import pytest

from rig.cli import GatewayRunner, gateway_script, run_gateway
from rig.plugin import rig

__all__ = ["gateway", "rig"]


@pytest.fixture(scope="session")
def gateway() -> GatewayRunner:
    """`gateway(*args, env={...})` runs the CLI and returns the CompletedProcess."""
    script = gateway_script()
    if not script.exists():
        pytest.fail(f"no `gateway` console script at {script}; `make test` installs it")
    return functools.partial(run_gateway, script)
