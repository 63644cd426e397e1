"""The session a Schemathesis run works in: an organization's owner, logged in again
whenever the fuzzer ended the session (a 401), and a fresh organization whenever it ended
the owner itself (deleted, demoted out of reach, its password changed): every operation
stays in the run, and none of them can stop it. Used in process by tests/test_openapi_fuzz.py
and against a live server by scripts/st_hooks.py."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

PASSWORD = "secure123"
# (status, JSON body) of a POST of a JSON body to a path of the API.
Post = Callable[[str, dict[str, Any]], tuple[int, Any]]


class Session:
    def __init__(self, post: Post, prefix: str = "fuzz") -> None:
        self.post = post
        self.prefix = prefix
        self.numbers = itertools.count(1)
        self.email = ""
        self.lock = threading.Lock()

    def _new_organization(self) -> None:
        n = next(self.numbers)
        email = f"{self.prefix}{n}@{self.prefix}-target.example.com"
        status, body = self.post("/org/create", {
            "organization_name": f"{self.prefix} target {n}", "email": email,
            "password": PASSWORD})
        assert status == 201, body
        self.email = email

    def token(self) -> str:
        """An access token of the session's owner (via /auth/login, which any role may use:
        the fuzzer may have demoted them)."""
        with self.lock:
            if not self.email:
                self._new_organization()
            status, body = self.post("/auth/login", {"email": self.email, "password": PASSWORD})
            if status != 200:
                self._new_organization()
                status, body = self.post("/auth/login", {"email": self.email,
                                                         "password": PASSWORD})
            assert status == 200, body
            token: str = body["access_token"]
            return token


def auth_provider(session: Session) -> type:
    """A Schemathesis auth provider class presenting `session`'s token (fetched again after
    a 401), to register with `schemathesis.auth()` or `schema.auth()`."""

    class Owner:
        def get(self, case: Any, context: Any) -> str:
            return session.token()

        def set(self, case: Any, data: str, context: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    return Owner
