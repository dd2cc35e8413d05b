"""Serving the web UI: `gateway web` on its own (plain and HTTPS), a bad TLS setting, and
`gateway serve` carrying on with mail when the web port is taken."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rig.cli import clean_env, gateway_script
from rig.ports import LOOPBACK, free_port


def write_config(folder: Path, **web: object) -> Path:
    lines = [
        "[smtp]",
        f'listen = "{LOOPBACK}:{free_port()}"',
        "[store]",
        'data_dir = "data"',
        "[allowlist]",
        "paths = []",
        "[web]",
    ]
    lines += [f"{key} = {json.dumps(value)}" for key, value in web.items()]
    path = folder / "gateway.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Running:
    def __init__(self, *args: str) -> None:
        self.popen = subprocess.Popen(
            [str(gateway_script()), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )

    def stop(self) -> tuple[int, str, str]:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        out, err = self.popen.communicate(timeout=20)
        return self.popen.returncode, out, err


@pytest.fixture
def running() -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for process in started:
        if process.popen.poll() is None:
            process.popen.kill()
            process.popen.communicate(timeout=20)


def wait_healthy(url: str, process: Running, verify: ssl.SSLContext | bool = True) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise AssertionError(f"exited early: {process.stop()}")
        try:
            if httpx.get(url + "/healthz", verify=verify, timeout=2).text == "ok\n":
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise AssertionError(f"{url} never became healthy")


def test_gateway_web_runs_alone_and_stops_cleanly(tmp_path: Path, running: list[Running]) -> None:
    port = free_port()
    config = write_config(tmp_path, listen=f"{LOOPBACK}:{port}")
    web = Running("web", "--config", str(config))
    running.append(web)
    url = f"http://{LOOPBACK}:{port}"
    wait_healthy(url, web)
    response = httpx.get(url + "/held")
    assert response.status_code == 303
    assert response.headers["location"] == "/signin?next=/held"
    key = tmp_path / "data" / "web.key"
    assert key.stat().st_mode & 0o077 == 0
    code, out, _ = web.stop()
    assert code == 0
    events = [json.loads(line)["event"] for line in out.splitlines() if line.startswith("{")]
    assert "web UI listening" in events
    assert events[-1] == "stopped"


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "web.crt", folder / "web.key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_https_with_secure_host_only_cookies(tmp_path: Path, running: list[Running]) -> None:
    cert, key = _certificate(tmp_path)
    port = free_port()
    config = write_config(
        tmp_path, listen=f"{LOOPBACK}:{port}", tls_cert=str(cert), tls_key=str(key)
    )
    web = Running("web", "--config", str(config))
    running.append(web)
    url = f"https://{LOOPBACK}:{port}"
    trust = ssl.create_default_context(cafile=str(cert))
    wait_healthy(url, web, verify=trust)
    page = httpx.get(url + "/signin", verify=trust)
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("__Host-sg_signin=")
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert page.headers["strict-transport-security"].startswith("max-age=")
    assert web.stop()[0] == 0


def test_half_a_tls_setting_is_a_config_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, listen=f"{LOOPBACK}:{free_port()}", tls_cert="web.crt")
    result = subprocess.run(
        [str(gateway_script()), "web", "--config", str(config)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "config error: web.tls_key: give both tls_cert and tls_key" in result.stderr


def test_serve_carries_on_with_mail_when_the_web_port_is_taken(
    tmp_path: Path, running: list[Running]
) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, listen=f"{LOOPBACK}:{port}")
        serve = Running("serve", "--config", str(config))
        running.append(serve)
        smtp_port = int(config.read_text().split(f"{LOOPBACK}:", 1)[1].split('"')[0])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((LOOPBACK, smtp_port), timeout=2) as smtp:
                    assert smtp.recv(100).startswith(b"220")
                break
            except OSError:
                time.sleep(0.05)
        code, out, _ = serve.stop()
    assert code == 0
    logged = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    [refused] = [e for e in logged if e["event"] == "web UI not started"]
    assert refused["level"] == "error"
    assert any(e["event"] == "listening" for e in logged)


@pytest.mark.parametrize("trusted", [False, True])
def test_forwarded_headers_only_from_a_trusted_proxy(
    tmp_path: Path, running: list[Running], trusted: bool
) -> None:
    port = free_port()
    proxies = {"trusted_proxies": [LOOPBACK]} if trusted else {}
    config = write_config(tmp_path, listen=f"{LOOPBACK}:{port}", **proxies)
    web = Running("web", "--config", str(config))
    running.append(web)
    url = f"http://{LOOPBACK}:{port}"
    wait_healthy(url, web)
    forwarded = {"x-forwarded-for": "198.51.100.23", "x-forwarded-proto": "https"}
    with httpx.Client(base_url=url, headers=forwarded) as client:
        form = client.get("/signin")
        cookie = form.headers["set-cookie"]
        assert cookie.startswith("__Host-sg_signin=") is trusted
        csrf = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        client.cookies.set(cookie.split("=", 1)[0], cookie.split("=", 1)[1].split(";", 1)[0])
        response = client.post(
            "/signin", data={"name": "nobody", "password": "a wrong guess", "csrf": csrf}
        )
        assert response.status_code == 401
    code, out, _ = web.stop()
    assert code == 0
    logged = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    [failed] = [e for e in logged if e["event"] == "sign-in failed"]
    assert failed["client"] == ("198.51.100.23" if trusted else LOOPBACK)
