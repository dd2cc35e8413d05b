"""The rig fails loudly, with the server's own words, instead of hanging or skipping."""

import socket
from pathlib import Path

import pytest

from rig import binaries
from rig.errors import RigError
from rig.nginx import Nginx
from rig.pki import RigCA
from rig.ports import LOOPBACK


def test_missing_binary_names_the_package() -> None:
    with pytest.raises(RigError, match=r"apt-get install no-such-server-pkg"):
        binaries.require("no-such-server-pkg")


def test_server_that_exits_reports_its_log(tmp_path: Path) -> None:
    ca = RigCA(tmp_path / "pki")
    leaf = ca.issue(("default.rig.test",))
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        nginx = Nginx(
            tmp_path / "nginx",
            port,
            [],
            cert_for=lambda _: leaf,
            default_cert=leaf,
            ca_file=ca.ca_file,
        )
        try:
            with pytest.raises(RigError, match=r"(?s)exited with status.*Address already in use"):
                nginx.start(timeout=5)
        finally:
            nginx.stop()
