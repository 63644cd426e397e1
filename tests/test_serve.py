"""scripts/serve.sh on the embedded database: data survives a restart and a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from org_service.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]


class Served:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items()
               if k not in {"MONGODB_URL", "JWT_SECRET_KEY", "MASTER_DB_NAME"}}
        env.update(EMBEDDED_DATA_DIR=str(data_dir), PORT=str(self.port), BCRYPT_ROUNDS="4")
        self.log = data_dir.parent / f"serve-{self.port}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                ["bash", "scripts/serve.sh"], cwd=ROOT, env=env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError("serve.sh did not become ready")

    def stop(self, sig: int = signal.SIGTERM) -> str:
        if self.process.poll() is None:
            # uvicorn is exec'd by serve.sh, so it is the process itself
            self.process.send_signal(sig)
            self.process.wait(timeout=60)
        return self.log.read_text()


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "data"


def _port_closed(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_serve_keeps_data_across_a_restart_and_a_crash(data_dir: Path) -> None:
    first = Served(data_dir)
    created = httpx.post(f"{first.url}/org/create", json={
        "organization_name": "Acme Corp", "email": "a@acme.com", "password": "secure123"})
    assert created.status_code == 201
    output = first.stop()
    assert "embedded SecantusDB" in output
    secret = (data_dir / "jwt_secret").read_text()
    assert len(secret.strip()) >= 32

    second = Served(data_dir)
    assert (data_dir / "jwt_secret").read_text() == secret  # generated once, kept
    token = httpx.post(f"{second.url}/admin/login",
                       json={"email": "a@acme.com", "password": "secure123"})
    assert token.status_code == 200
    renamed = httpx.put(f"{second.url}/org/update",
                        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
                        json={"old_organization_name": "Acme Corp",
                              "new_organization_name": "Acme Two"})
    assert renamed.status_code == 200
    second.stop(signal.SIGKILL)  # a crash: the database child must not outlive it

    third = Served(data_dir)
    got = httpx.post(f"{third.url}/org/get", json={"organization_name": "Acme Two"})
    assert got.status_code == 200 and got.json()["collection_name"] == "org_acme_two"
    third.stop()
