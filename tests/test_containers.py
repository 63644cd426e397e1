"""The container files, checked as far as a machine without a Docker engine allows:
their structure (no Compose CLI exists here, so none renders the compose file), and the
image's own start command and health check run against the test database."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml
from pymongo import MongoClient

from org_service.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            pairs.append((instruction.upper(), rest.strip()))
    return pairs


def _final_stage() -> list[tuple[str, str]]:
    pairs = _dockerfile()
    last_from = max(i for i, (ins, _) in enumerate(pairs) if ins == "FROM")
    return pairs[last_from:]


def _exec_form(instruction: str) -> list[str]:
    [args] = [rest for ins, rest in _final_stage() if ins == instruction]
    if instruction == "HEALTHCHECK":
        args = args[args.index("CMD ") + 4:]
    command = json.loads(args)
    assert isinstance(command, list) and all(isinstance(a, str) for a in command)
    return command


def test_dockerfile_is_multi_stage_slim_non_root_with_healthcheck() -> None:
    pairs = _dockerfile()
    bases = [rest.split()[0] for ins, rest in pairs if ins == "FROM"]
    assert len(bases) >= 2, "multi-stage: a build stage and a runtime stage"
    assert all(base.endswith("-slim") for base in bases), bases
    final = _final_stage()
    users = [rest for ins, rest in final if ins == "USER"]
    assert users and users[-1] not in {"root", "0", "0:0"}
    assert any(ins == "COPY" and rest.startswith("--from=") for ins, rest in final)
    assert "/health" in " ".join(_exec_form("HEALTHCHECK"))
    # The embedded development database (GPL-2.0) stays out of the image.
    assert "embedded" not in " ".join(rest for ins, rest in pairs if ins == "RUN")


def test_image_build_gets_the_licence_file() -> None:
    # setuptools builds without a license-files entry it cannot find, silently: the image
    # would then carry the code without the MIT notice that must go with it.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    pairs = _dockerfile()
    build = pairs[:max(i for i, (ins, _) in enumerate(pairs) if ins == "FROM")]
    copied = {part for ins, rest in build if ins == "COPY" and not rest.startswith("--from=")
              for part in rest.split()[:-1]}
    assert set(project["license-files"]) <= copied, copied


def test_image_installs_the_hash_checked_lock_and_nothing_else() -> None:
    pairs = _dockerfile()
    copied = {part for ins, rest in pairs if ins == "COPY" for part in rest.split()[:-1]}
    assert "requirements.lock" in copied
    installs = [command.strip() for ins, rest in pairs if ins == "RUN"
                for command in rest.split("&&") if " install " in command]
    # The lock first, so the project's own install finds every dependency already there.
    assert installs == ["/opt/venv/bin/pip install --require-hashes -r requirements.lock",
                        "/opt/venv/bin/pip install --no-deps ."], installs
    # A lock that no longer satisfies pyproject fails the build, not the first request.
    assert any("pip check" in rest for ins, rest in pairs if ins == "RUN")


def test_every_way_to_run_the_api_uses_asyncios_event_loop() -> None:
    # uvicorn would pick uvloop (installed with uvicorn[standard]), which left some of 256
    # new connections unanswered for over 2 s in the overload benchmark.
    command = _exec_form("CMD")
    assert command[command.index("--loop") + 1] == "asyncio"
    # (_throwaway_api.sh starts the API of postman.sh and openapi_check.sh)
    for script in ("scripts/serve.sh", "scripts/_throwaway_api.sh"):
        assert "--loop asyncio" in (ROOT / script).read_text(), script


def test_compose_runs_mongo8_replica_set_and_api_after_its_health() -> None:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mongo, api = compose["services"]["mongo"], compose["services"]["api"]

    assert mongo["image"].split(":")[1].split(".")[0] == "8"
    assert "--replSet" in mongo["command"]
    volume = mongo["volumes"][0].split(":")[0]
    assert volume in compose["volumes"], "a named volume, not a bind mount"
    assert mongo["healthcheck"]["test"][0] == "CMD"
    assert "rs.initiate" in " ".join(mongo["healthcheck"]["test"])

    assert api["build"] == "."
    assert api["env_file"] == ".env"
    assert api["depends_on"]["mongo"]["condition"] == "service_healthy"
    url = api["environment"]["MONGODB_URL"]
    assert url.startswith("mongodb://mongo:27017/") and "replicaSet=" in url


@contextmanager
def _image_command_running(mongo_url: str, tmp_path: Path, **env_overrides: str,
                           ) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """The image's CMD, on a free loopback port, against the test database."""
    command = _exec_form("CMD")
    assert command[0] == "uvicorn" and "--port" in command and "--host" in command
    port = free_port()
    command[command.index("--port") + 1] = str(port)
    command[command.index("--host") + 1] = "127.0.0.1"
    # --proxy-headers etc. stay as the image has them; only the address changes.
    command[0] = str(Path(sys.executable).with_name("uvicorn"))
    env = {k: v for k, v in os.environ.items() if k != "FORWARDED_ALLOW_IPS"}
    env.update(MONGODB_URL=mongo_url, MASTER_DB_NAME="container_check",
               JWT_SECRET_KEY=secrets.token_urlsafe(48), BCRYPT_ROUNDS="4")
    env.update(env_overrides)
    log = tmp_path / f"api-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield process, port, log
    finally:
        process.terminate()
        process.wait(timeout=30)
    # A graceful stop: uvicorn finishes the lifespan, then re-raises the SIGTERM it caught.
    assert process.returncode in (0, -signal.SIGTERM), shlex.join(command)
    assert "Application shutdown complete" in log.read_text()


def test_image_command_and_healthcheck_run_the_app(mongo_url: str, tmp_path: Path) -> None:
    with _image_command_running(mongo_url, tmp_path) as (_, port, log):
        assert httpx.get(f"http://127.0.0.1:{port}/ready", timeout=10).status_code == 200
        healthcheck = [part.replace(":8000/", f":{port}/") for part in _exec_form("HEALTHCHECK")]
        healthcheck[0] = sys.executable
        assert subprocess.run(healthcheck, timeout=30, check=False).returncode == 0
    # Logs are JSON lines (one per request), not uvicorn's plain access log.
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert {"route": "/health", "status": 200} in [
        {k: line.get(k) for k in ("route", "status")} for line in lines]


def test_compose_and_env_example_set_whose_forwarded_headers_count() -> None:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    # Interpolated from .env (or the shell), defaulting to loopback: no proxy believed.
    assert compose["services"]["api"]["environment"]["FORWARDED_ALLOW_IPS"] == \
        "${FORWARDED_ALLOW_IPS:-127.0.0.1}"
    example = (ROOT / ".env.example").read_text()
    assert "\nFORWARDED_ALLOW_IPS=127.0.0.1\n" in example
    assert "Never `*`" in example
    # A --forwarded-allow-ips in the image's command would silently override the setting.
    command = _exec_form("CMD")
    assert "--proxy-headers" in command
    assert not any(arg.startswith("--forwarded-allow-ips") for arg in command)


def _login_failure_address(mongo_url: str, tmp_path: Path, allowed: str) -> str:
    """The client address the app records (audit trail) for a failed login sent from
    127.0.0.1 with X-Forwarded-For: 203.0.113.9, with FORWARDED_ALLOW_IPS=allowed."""
    database = f"container_fwd_{secrets.token_hex(4)}"
    email = f"{secrets.token_hex(6)}@example.com"
    with _image_command_running(mongo_url, tmp_path, FORWARDED_ALLOW_IPS=allowed,
                                MASTER_DB_NAME=database) as (_, port, _):
        answer = httpx.post(f"http://127.0.0.1:{port}/admin/login", timeout=30,
                            headers={"X-Forwarded-For": "203.0.113.9"},
                            json={"email": email, "password": "not-the-password"})
        assert answer.status_code == 401, answer.text
    with MongoClient(mongo_url) as client:
        try:
            entries = list(client[database]["audit_log"].find({"action": "admin.login"}))
        finally:
            client.drop_database(database)
    assert [entry["outcome"] for entry in entries] == ["failure"], entries
    return str(entries[0]["client_address"])


def test_forwarded_for_counts_only_from_forwarded_allow_ips(mongo_url: str,
                                                            tmp_path: Path) -> None:
    # From a listed proxy, the address it forwards is the client's: the one the login and
    # create limits count. From anyone else, the header is ignored (it could be forged).
    assert _login_failure_address(mongo_url, tmp_path, "127.0.0.1") == "203.0.113.9"
    assert _login_failure_address(mongo_url, tmp_path, "192.0.2.1") == "127.0.0.1"
