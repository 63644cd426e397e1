"""scripts/serve.sh on the embedded database: data survives a restart and a crash."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from org_service.embedded import DataDirectoryInUse, EmbeddedMongo, free_port, lock_data_directory

ROOT = Path(__file__).resolve().parents[1]
# Settings a developer's shell may hold that would point serve.sh elsewhere.
UNSET = {"MONGODB_URL", "JWT_SECRET_KEY", "MASTER_DB_NAME", "EMBEDDED_DATA_DIR", "PORT"}


def serve_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update({"BCRYPT_ROUNDS": "4", **settings})
    return env


class Served:
    def __init__(self, data_dir: Path | None, *, root: Path = ROOT,
                 log_dir: Path | None = None) -> None:
        self.port = free_port()
        env = serve_env(PORT=str(self.port))
        if data_dir is not None:
            env["EMBEDDED_DATA_DIR"] = str(data_dir)
        self.log = (log_dir or (data_dir or root).parent) / f"serve-{self.port}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                ["bash", "scripts/serve.sh"], cwd=root, env=env, stdout=log,
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


def project_copy(tmp_path: Path) -> Path:
    """The scripts and the package in a folder of their own, sharing this checkout's .venv
    (same pyproject.toml, so _setup.sh installs nothing): a place for a .env of the test's."""
    copy = tmp_path / "project"
    copy.mkdir()
    for folder in ("scripts", "org_service"):
        shutil.copytree(ROOT / folder, copy / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", copy / "pyproject.toml")
    (copy / ".venv").symlink_to(ROOT / ".venv")
    return copy


def test_serve_keeps_the_dev_secret_and_data_where_dotenv_says(tmp_path: Path) -> None:
    copy = project_copy(tmp_path)
    configured = tmp_path / "configured"
    (copy / ".env").write_text(f"EMBEDDED_DATA_DIR={configured}\n")
    served = Served(None, root=copy, log_dir=tmp_path)
    output = served.stop()
    assert f"{configured}/db" in output
    assert ".data/db" not in output
    assert len((configured / "jwt_secret").read_text().strip()) >= 32
    assert (configured / "db").is_dir()
    assert not (copy / ".data").exists()


def test_every_dot_data_folder_is_git_ignored() -> None:
    # EMBEDDED_DATA_DIR=.data-2 (say, for a second instance) must not end up in a commit.
    for path in (".data/db/WiredTiger", ".data-2/jwt_secret", ".data_old/db/x"):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT)
        assert ignored.returncode == 0, f"{path} is not git-ignored"


def preflight(cwd: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = serve_env(PYTHONPATH=str(ROOT), **settings)
    return subprocess.run([sys.executable, "-m", "org_service.preflight"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_preflight_reads_settings_as_the_app_does(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("EMBEDDED_DATA_DIR=from-dotenv\nJWT_SECRET_KEY=\n"
                                   "MONGODB_URL=mongodb://db.example:27017\n")
    from_dotenv = preflight(tmp_path)
    assert from_dotenv.returncode == 0, from_dotenv.stderr
    assert from_dotenv.stdout.splitlines() == [
        "data_dir=from-dotenv", "secret_configured=''"]
    # The environment wins over .env, as in pydantic-settings; the value is shell-quoted.
    from_env = preflight(tmp_path, EMBEDDED_DATA_DIR="it's here", MONGODB_URL="",
                         JWT_SECRET_KEY="x" * 32)
    assert from_env.stdout.splitlines() == [
        "data_dir='it'\"'\"'s here'", "secret_configured=1"]


def test_preflight_names_an_invalid_setting_in_one_line(tmp_path: Path) -> None:
    result = preflight(tmp_path, BCRYPT_ROUNDS="2")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "configuration error: BCRYPT_ROUNDS: Input should be greater than or equal to 4 "
        "(got '2')"]


def refused(**settings: str) -> tuple[int, list[str], float]:
    """serve.sh run to its end: exit status, output lines, seconds it took."""
    started = time.monotonic()
    result = subprocess.run(["bash", "scripts/serve.sh"], cwd=ROOT, env=serve_env(**settings),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=120)
    return result.returncode, result.stdout.splitlines(), time.monotonic() - started


def test_a_second_serve_on_a_taken_data_folder_or_port_is_refused_in_one_line(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = Served(data_dir)
    try:
        same_folder = refused(EMBEDDED_DATA_DIR=str(data_dir), PORT=str(free_port()))
        same_port = refused(EMBEDDED_DATA_DIR=str(tmp_path / "other"), PORT=str(first.port))
        # The first one is unharmed.
        assert httpx.get(f"{first.url}/ready", timeout=5).status_code == 200
    finally:
        first.stop()
    status, lines, seconds = same_folder
    assert status != 0 and seconds < 15, (status, seconds)
    assert lines == [str(DataDirectoryInUse(str(data_dir / "db")))]
    status, lines, seconds = same_port
    assert status != 0 and seconds < 15, (status, seconds)
    assert len(lines) == 1 and lines[0].startswith(f"port {first.port} on 127.0.0.1 is "
                                                   "already in use"), lines
    assert not (tmp_path / "other").exists()  # refused before anything was created


def test_the_embedded_database_refuses_a_locked_folder_without_starting(
        tmp_path: Path) -> None:
    storage = str(tmp_path / "db")
    held = lock_data_directory(storage)
    try:
        server = EmbeddedMongo(storage)
        started = time.monotonic()
        with pytest.raises(DataDirectoryInUse, match="is in use by another"):
            server.start()
        assert server.process is None and time.monotonic() - started < 1
    finally:
        os.close(held)
    server.start()  # free again once the holder lets go
    try:
        with pytest.raises(DataDirectoryInUse):
            lock_data_directory(storage)  # and now it holds the folder itself
    finally:
        server.stop()
    os.close(lock_data_directory(storage))  # stop() let go of it


def test_serve_says_everything_in_json_lines_and_the_embedded_database_once(
        data_dir: Path) -> None:
    output = Served(data_dir).stop()
    lines = [json.loads(line) for line in output.splitlines()]  # each one a JSON object
    messages = [line["message"] for line in lines]
    assert sum("MONGODB_URL is not set" in message for message in messages) == 1, messages
    # uvicorn's own lines, through the app's formatter, from start to finish.
    loggers = {line["logger"] for line in lines}
    assert {"uvicorn.error", "org_service"} <= loggers, loggers
    assert any(message.startswith("Uvicorn running on") for message in messages)
    assert any(message.startswith("Finished server process") for message in messages)
    assert all("color_message" not in line for line in lines)
