"""One real MongoDB wire-protocol server for the whole session, and the app against it.

MONGODB_URL set: that server (e.g. a real mongod). Unset: an embedded SecantusDB on a free
loopback port with test commands (configureFailPoint) enabled, stopped at the end.
"""

from __future__ import annotations

import asyncio
import io
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from org_service.embedded import EmbeddedMongo

os.environ.setdefault("JWT_SECRET_KEY", secrets.token_urlsafe(48))
os.environ.setdefault("BCRYPT_ROUNDS", "4")
os.environ.setdefault("MASTER_DB_NAME", "org_service_test")
os.environ.setdefault("MONGODB_TIMEOUT_MS", "20000")
# Room for a 1,000-record bulk write on a loaded 2-core machine; lifecycle tests that need
# the fence short run apps of their own with their own settings.
os.environ.setdefault("TENANT_REQUEST_TIMEOUT_MS", "20000")
# The session's app queues mail but does not deliver it: its sender would otherwise take
# the messages of the apps with an SMTP server that outbox and invitation tests start
# (tests/outbox/smtp.py), and change the outbox under the tests that compare snapshots.
os.environ.setdefault("OUTBOX_SENDER_ENABLED", "false")


@pytest.fixture(scope="session")
def mongo_url() -> Iterator[str]:
    if os.environ.get("MONGODB_URL"):
        yield os.environ["MONGODB_URL"]
        return
    # In memory, everything the suite writes stays in the cache, and the oplog keeps a copy
    # for an hour by default: at the default 1 GB cap a full run stalled 40 s on a drop.
    server = EmbeddedMongo(":memory:", sync_on_commit=False, test_commands=True,
                           cache_size="4G", oplog_retention_seconds=60).start()
    os.environ["MONGODB_URL"] = server.url
    try:
        yield server.url
    finally:
        os.environ.pop("MONGODB_URL", None)
        server.stop()


@pytest.fixture(scope="session")
def settings(mongo_url: str) -> Any:
    from org_service.config import Settings

    return Settings(MONGODB_URL=mongo_url)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
async def app(settings: Any) -> AsyncIterator[Any]:
    from org_service.main import create_app

    application = create_app(settings)
    lifespan = application.router.lifespan_context(application)
    await lifespan.__aenter__()
    yield application
    # The shutdown runs as a task of its own, bounded: a shutdown that hangs fails here,
    # naming every task still pending with its stack, instead of holding the suite until
    # CI's time limit (one run hung here, in teardown, after every test had passed).
    closing = asyncio.ensure_future(lifespan.__aexit__(None, None, None))
    done, _ = await asyncio.wait({closing}, timeout=90)
    if not done:
        stacks = io.StringIO()
        for task in asyncio.all_tasks():
            stacks.write(f"--- {task!r}\n")
            task.print_stack(file=stacks, limit=40)
        raise AssertionError("the app's shutdown did not end within 90 s; pending tasks:\n"
                             + stacks.getvalue()[-20000:])
    closing.result()


@pytest.fixture(scope="session")
def services(app: Any) -> Any:
    return app.state.services


@pytest.fixture(scope="session")
def master(services: Any) -> Any:
    """The master database, for assertions on what was (or was not) written."""
    return services.mongo.master


@pytest.fixture(autouse=True)
async def clean_database(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    if "app" not in request.fixturenames:
        yield
        return
    master = request.getfixturevalue("master")
    # A rename of the previous test settles in the background; it must not act on the
    # fresh data of this one (in production the old name stays claimed until it settles).
    await request.getfixturevalue("services").lifecycle.close()
    for name in await master.list_collection_names():
        if name.startswith(("org_", "parked_")):
            await master.drop_collection(name)
        else:
            await master[name].delete_many({})
    yield


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture(scope="session")
async def raw_client(mongo_url: str) -> AsyncIterator[AsyncMongoClient[Any]]:
    """A separate client for failpoints and direct inspection."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url, tz_aware=True)
    yield client
    await client.close()
