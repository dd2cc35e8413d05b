"""The fuzzer's gateway: one `gateway serve` with its own recording upstream for the module,
with reviewers to notify, so that every hold also sends notices through the outbox."""

from collections.abc import Iterator

import pytest

from rig import Rig
from rig.gatewayproc import Gateway
from rig.heldcli import review_gateway
from rig.plugin import rig

__all__ = ["fuzz_gateway", "rig"]


@pytest.fixture(scope="module")
def fuzz_gateway(rig: Rig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with review_gateway(rig, tmp_path_factory.mktemp("fuzz")) as gateway:
        yield gateway
