"""Small helpers the tests share: create an organization, log in, authorise."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from org_service.main import create_app

DEFAULT_PASSWORD = "secure123"


class Bearer:
    """Someone holding an access token; `auth` is the header that presents it."""

    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Org(Bearer):
    id: str
    name: str
    collection_name: str
    email: str
    password: str
    token: str


async def create_org(client: httpx.AsyncClient, name: str, email: str | None = None,
                     password: str = DEFAULT_PASSWORD) -> Org:
    email = email or f"admin@{name.lower().replace(' ', '-')}.example.com"
    created = await client.post("/org/create", json={
        "organization_name": name, "email": email, "password": password})
    assert created.status_code == 201, created.text
    token = await login(client, email, password)
    body = created.json()
    return Org(body["id"], name, body["collection_name"], email, password, token)


async def login(client: httpx.AsyncClient, email: str, password: str) -> str:
    response = await client.post("/admin/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


# A value each path parameter routes with: ids are 24 hex digits unless named here (a
# segment such as `{record_id}` only routes what its pattern allows, org_service/segments.py).
SAMPLE_SEGMENTS = {"kind": "tasks", "name": "idx", "token": "A" * 43}


def routable(template: str) -> str:
    """A concrete path the route of `template` (as documented, `{record_id}`) answers."""
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE_SEGMENTS.get(m[1], "0" * 24), template)


def client_for(app: Any, address: str = "203.0.113.7") -> httpx.AsyncClient:
    """An HTTP client of `app` whose requests come from the client `address`."""
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@asynccontextmanager
async def app_with(settings: Any, **changes: Any) -> AsyncIterator[Any]:
    """Another API instance on the same database, with some settings changed."""
    app = create_app(settings.model_copy(update=changes))
    async with app.router.lifespan_context(app):
        yield app


async def until(condition: Any) -> None:
    """Wait for a state, not for a time: the deadline only keeps a broken run from hanging."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never reached")


class Calls(list[tuple[Any, ...]]):
    """The arguments of each call of a spied function, in order; `threads`: the thread each
    call ran in (the same order)."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def record(self, args: tuple[Any, ...]) -> None:
        with self._lock:  # calls from several worker threads stay paired with their thread
            self.append(args)
            self.threads.append(threading.current_thread())


def calls_to(monkeypatch: Any, module: Any, name: str) -> Calls:
    """Spy on `module.name` (say bcrypt.checkpw): it still runs; each call's arguments (and
    its thread, in `.threads`) are appended to the returned list."""
    calls = Calls()
    real = getattr(module, name)

    def spy(*args: Any) -> Any:
        calls.record(args)
        return real(*args)

    monkeypatch.setattr(module, name, spy)
    return calls


class HeldHashes:
    """A stand-in for `PasswordHasher.hash`: once armed, every new-password hash finishes,
    then waits until the test releases it, so concurrent requests are all past their
    hash (the slow await) before any of them writes. Armed after the setup, whose own
    creates hash passwords too."""

    def __init__(self, real: Callable[[str], Awaitable[str]]) -> None:
        self.real = real
        self.armed = False
        self.done = 0
        self.release = asyncio.Event()

    async def __call__(self, password: str) -> str:
        hashed = await self.real(password)
        if self.armed:
            self.done += 1
            await self.release.wait()
        return hashed
