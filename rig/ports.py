"""Free loopback ports, picked by the kernel so parallel runs do not collide."""

import socket

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port free on 127.0.0.1 for both TCP and UDP (DNS servers bind both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((LOOPBACK, 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((LOOPBACK, port))
                except OSError:
                    continue
                return int(port)
    raise OSError("no port free for both TCP and UDP on 127.0.0.1")
