"""Fixtures of the SMTP face tests: the face in process (support.smtpface)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from support.smtpface import Face, StartFace, faces


@pytest.fixture
async def start_face() -> AsyncIterator[StartFace]:
    """``await start_face(local_domains=(...), max_message_size=N)``: a listening face."""
    async with faces() as start:
        yield start


@pytest.fixture
async def face(start_face: StartFace) -> Face:
    """A face with the local domain school.test."""
    return await start_face(local_domains=["school.test"])
