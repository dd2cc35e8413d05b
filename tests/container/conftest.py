"""The container image, built from the Dockerfile and run with podman against the test rig.

`make test-container` runs these (pyproject's norecursedirs keeps them out of a bare `pytest`:
they need podman and debootstrap, which that target installs, and a few minutes the first
time). The image is built once per session (rig.podman).
"""

from collections.abc import Iterator

import pytest

from rig.errors import RigError
from rig.plugin import rig
from rig.podman import build_image
from rig.upstream import Upstream

__all__ = ["image", "rig", "upstream"]


@pytest.fixture(scope="session")
def image() -> str:
    """The image's tag, built offline on the stand-in (or real) base."""
    try:
        return build_image()
    except RigError as exc:
        pytest.fail(f"the image did not build:\n{exc}", pytrace=False)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream().start()
    try:
        yield server
    finally:
        server.close()
