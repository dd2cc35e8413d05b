"""The container image's HEALTHCHECK: healthy (exit 0) when the SMTP port of ``[smtp] listen``
greets with 220 and answers NOOP with 250 (RFC 5321 §4.2, §4.1.1.9), so a gateway whose process
runs but whose SMTP face is stuck or gone is unhealthy (exit 1). The one line printed is what
``docker inspect`` / ``podman inspect`` show as the check's output.

It reads the configuration as `gateway serve` does ($GATEWAY_CONFIG and the GATEWAY_*
environment), and connects over loopback when the gateway listens on every address.
"""

from __future__ import annotations

import smtplib
import sys

from gateway.config import loader
from gateway.errors import ConfigError

TIMEOUT = 5.0  # seconds; the Dockerfile's HEALTHCHECK --timeout is longer
ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 (read, never bound)


def main() -> int:
    try:
        listen = loader.load().smtp.listen
    except ConfigError as exc:
        print(f"unhealthy: the configuration does not load: {exc}")
        return 1
    host = ANY_ADDRESS.get(listen.host, listen.host)
    where = f"[{host}]:{listen.port}" if ":" in host else f"{host}:{listen.port}"
    try:
        # smtplib reads the greeting on connect and raises unless it is 220.
        with smtplib.SMTP(host, listen.port, "healthcheck.invalid", TIMEOUT) as client:
            code, text = client.noop()
    except (OSError, smtplib.SMTPException) as exc:
        print(f"unhealthy: SMTP {where}: {exc}")
        return 1
    if code != 250:
        print(f"unhealthy: SMTP {where} answered NOOP with {code} {text.decode(errors='replace')}")
        return 1
    print(f"healthy: SMTP {where} greets and answers NOOP")
    return 0


if __name__ == "__main__":
    sys.exit(main())
