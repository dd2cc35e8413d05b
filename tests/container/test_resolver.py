"""The compose file's resolver image (deploy/unbound): Debian's unbound, built here on a
stand-in for its Debian base, starts as a validating resolver and drops to its own user."""

import time

from rig.podman import build_resolver, podman, ulimit_flags

START_TIMEOUT = 30.0


def test_the_resolver_image_builds_and_serves() -> None:
    image = build_resolver()
    name = f"gateway-resolver-test-{time.monotonic_ns()}"
    # The compose network, not the host's: unbound binds port 53 on every address.
    podman("run", "--detach", f"--name={name}", *ulimit_flags(), image)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while "start of service" not in (logs := podman("logs", name, check=False).stderr):
            running = podman("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
            assert running == "true", logs
            assert time.monotonic() < deadline, logs
            time.sleep(0.2)
        assert "init module 1: validator" in logs  # DNSSEC validation: [dns] trust_ad
        # PID 1 is unbound; once port 53 is bound it runs as the unbound user.
        status = podman("exec", name, "cat", "/proc/1/status").stdout
        uid = podman("exec", name, "id", "-u", "unbound").stdout.strip()
        assert f"Uid:\t{uid}\t" in status, status
    finally:
        podman("rm", "--force", "--time=0", name, check=False)
