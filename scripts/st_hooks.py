"""Schemathesis hooks for `st run` against a live API (SCHEMATHESIS_HOOKS=scripts.st_hooks,
ST_BASE_URL=http://host:port): requests carry the token of an organization's owner, logged
in again whenever the fuzzer ends the session (tests/st_session.py)."""

from __future__ import annotations

import os
from typing import Any

import requests
import schemathesis

from tests.st_session import Session, auth_provider

BASE_URL = os.environ["ST_BASE_URL"].rstrip("/")


def _post(path: str, body: dict[str, Any]) -> tuple[int, Any]:
    response = requests.post(BASE_URL + path, json=body, timeout=30)
    return response.status_code, response.json()


schemathesis.auth()(auth_provider(Session(_post, prefix="st")))
