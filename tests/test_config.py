"""A bad configuration stops the server with one line per problem on stderr and exit status
2: no traceback, and never a secret's value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from org_service.config import Settings, configuration_problems, mask_credentials

ROOT = Path(__file__).resolve().parents[1]
# Every setting these tests give or leave out, so nothing of the test session's own
# environment (conftest sets a good JWT_SECRET_KEY) reaches the server.
GIVEN = {"JWT_SECRET_KEY", "BCRYPT_ROUNDS", "METRICS_TOKEN", "MONGODB_URL", "MASTER_DB_NAME"}
SHORT_SECRET = "hunter2-not-long"
TOKEN = "a-metrics-token-of-fine-length"


def serve(cwd: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """`uvicorn org_service.main:app` of this checkout, run in `cwd` (where its .env is)."""
    env = {k: v for k, v in os.environ.items() if k not in GIVEN}
    env.update(settings, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "uvicorn", "org_service.main:app", "--port", "0"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


def assert_refused(run: subprocess.CompletedProcess[str], *problems: str) -> list[str]:
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    lines = run.stderr.splitlines()
    assert all(line.startswith("configuration error: ") for line in lines), run.stderr
    # One line per bad setting, in the settings' own order (not a promise: compared as a set).
    assert sorted(line.split(": ")[1] for line in lines) == sorted(problems)
    return lines


def test_a_short_jwt_secret_in_the_environment_is_one_line_without_the_secret(
        tmp_path: Path) -> None:
    run = serve(tmp_path, JWT_SECRET_KEY=SHORT_SECRET)
    [line] = assert_refused(run, "JWT_SECRET_KEY")
    assert line == ("configuration error: JWT_SECRET_KEY: must be at least 32 bytes "
                    f"(it is {len(SHORT_SECRET)})")
    assert SHORT_SECRET not in run.stderr + run.stdout


def test_bad_settings_in_a_dot_env_are_a_line_each(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        f"JWT_SECRET_KEY={SHORT_SECRET}\nBCRYPT_ROUNDS=abc\nMETRICS_TOKEN=tooshort\n")
    run = serve(tmp_path)
    lines = assert_refused(run, "JWT_SECRET_KEY", "BCRYPT_ROUNDS", "METRICS_TOKEN")
    # A setting that is not secret shows what was given; the secrets do not.
    [rounds] = [line for line in lines if ": BCRYPT_ROUNDS: " in line]
    assert "'abc'" in rounds
    assert SHORT_SECRET not in run.stderr and "tooshort" not in run.stderr


def test_an_empty_jwt_secret_is_refused(tmp_path: Path) -> None:
    assert_refused(serve(tmp_path, JWT_SECRET_KEY=""), "JWT_SECRET_KEY")


def test_a_missing_secret_shows_none_of_the_other_settings(tmp_path: Path) -> None:
    # pydantic's report of a missing field carries every setting given as its input.
    url = "mongodb://app:s3cret-password@db.example.com:27017/"
    run = serve(tmp_path, METRICS_TOKEN=TOKEN, MONGODB_URL=url)
    [line] = assert_refused(run, "JWT_SECRET_KEY")
    assert "is not set" in line
    assert TOKEN not in run.stderr and "s3cret-password" not in run.stderr


@pytest.mark.parametrize(("url", "masked"), [
    ("mongodb://app:pw@db:27017/x", "mongodb://***@db:27017/x"),
    ("mongodb+srv://app:p@ss@cluster.example.com/", "mongodb+srv://***@cluster.example.com/"),
    ("mongodb://db:27017/", "mongodb://db:27017/"),
])
def test_credentials_in_a_url_are_masked(url: str, masked: str) -> None:
    assert mask_credentials(url) == masked


def test_a_shown_value_has_its_credentials_masked() -> None:
    # A URL-shaped value given to a setting that is not secret still hides its password.
    with pytest.raises(ValidationError) as refused:
        Settings(JWT_SECRET_KEY="x" * 32, MASTER_DB_NAME="mongodb://u:pw@h/" + "x" * 40)
    [line] = configuration_problems(refused.value)
    assert line.startswith("MASTER_DB_NAME: ") and "pw" not in line and "***@h/" in line
