"""`/metrics` is cheap to scrape (the organizations gauge is counted at most once per
METRICS_REFRESH_SECONDS, however many scrapes come) and may require a bearer token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from org_service.config import Settings
from org_service.main import create_app
from tests.helpers import create_org

METRICS_TOKEN = "scrape-token-0123456789abcdef"


def organizations_gauge(text: str) -> float:
    [value] = [s.value for family in text_string_to_metric_families(text)
               for s in family.samples if s.name == "organizations"]
    return value


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def scrape_app(app: Any, mongo_url: str) -> AsyncIterator[Callable[..., Any]]:
    """A fresh app (fresh metrics) with its own settings, on the test database (which the
    session `app` empties before each test)."""
    stack: list[Any] = []

    async def start(**overrides: Any) -> tuple[httpx.AsyncClient, Any]:
        fresh = create_app(Settings(MONGODB_URL=mongo_url, **overrides))  # type: ignore[call-arg]
        lifespan = fresh.router.lifespan_context(fresh)
        await lifespan.__aenter__()
        stack.append(lifespan)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=fresh),
                                   base_url="http://test")
        stack.append(client)
        return client, fresh

    yield start
    for item in reversed(stack):
        await item.__aexit__(None, None, None)


@pytest.fixture
def count_calls(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any], list[int]]:
    """Spy on the organizations count of an app: one list element per count run."""

    def spy(app: Any) -> list[int]:
        calls: list[int] = []
        repository = app.state.services.organization_repository
        real = repository.count_active

        async def counting() -> int:
            calls.append(1)
            await asyncio.sleep(0.01)  # long enough for concurrent scrapes to pile up
            return int(await real())

        monkeypatch.setattr(repository, "count_active", counting)
        return calls

    return spy


async def test_twenty_scrapes_within_the_window_count_once(
        scrape_app: Callable[..., Any], count_calls: Callable[[Any], list[int]]) -> None:
    client, app = await scrape_app(METRICS_REFRESH_SECONDS=15)
    calls = count_calls(app)
    clock = FakeClock()
    app.state.metrics.clock = clock
    for _ in range(10):
        assert (await client.get("/metrics")).status_code == 200
    answers = await asyncio.gather(*(client.get("/metrics") for _ in range(10)))
    assert {a.status_code for a in answers} == {200}
    assert len(calls) == 1


async def test_concurrent_first_scrapes_share_one_count(
        scrape_app: Callable[..., Any], count_calls: Callable[[Any], list[int]]) -> None:
    client, app = await scrape_app()
    calls = count_calls(app)
    app.state.metrics.clock = FakeClock()
    answers = await asyncio.gather(*(client.get("/metrics") for _ in range(20)))
    assert {a.status_code for a in answers} == {200}
    assert len(calls) == 1


async def test_the_gauge_is_recounted_after_the_window(
        scrape_app: Callable[..., Any], count_calls: Callable[[Any], list[int]]) -> None:
    client, app = await scrape_app(METRICS_REFRESH_SECONDS=15)
    calls = count_calls(app)
    clock = FakeClock()
    app.state.metrics.clock = clock
    assert organizations_gauge((await client.get("/metrics")).text) == 0
    await create_org(client, "Counted Co")
    clock.now += 14.9
    assert organizations_gauge((await client.get("/metrics")).text) == 0  # still cached
    clock.now += 0.2
    assert organizations_gauge((await client.get("/metrics")).text) == 1
    assert len(calls) == 2


@pytest.mark.parametrize("authorization", [
    None, "Bearer wrong-token", f"Basic {METRICS_TOKEN}", f"Bearer {METRICS_TOKEN}x", "Bearer",
    f"Bearer {METRICS_TOKEN[:-1]}\u00e9",
], ids=["none", "wrong", "basic", "longer", "empty", "non-ascii"])
async def test_with_a_metrics_token_a_scrape_without_it_gets_401(
        scrape_app: Callable[..., Any], count_calls: Callable[[Any], list[int]],
        authorization: str | None) -> None:
    client, app = await scrape_app(METRICS_TOKEN=METRICS_TOKEN)
    calls = count_calls(app)
    headers = {"Authorization": authorization.encode()} if authorization is not None else {}
    answer = await client.get("/metrics", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert "http_requests_total" not in answer.text
    assert calls == []  # refused before it touches the database


async def test_with_a_metrics_token_the_right_token_gets_the_metrics(
        scrape_app: Callable[..., Any]) -> None:
    client, _ = await scrape_app(METRICS_TOKEN=METRICS_TOKEN)
    for scheme in ("Bearer", "bearer"):
        answer = await client.get("/metrics",
                                  headers={"Authorization": f"{scheme} {METRICS_TOKEN}"})
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        assert "http_requests_total" in answer.text


def test_a_short_metrics_token_is_refused_at_startup(mongo_url: str) -> None:
    with pytest.raises(ValueError, match="METRICS_TOKEN"):
        Settings(MONGODB_URL=mongo_url, METRICS_TOKEN="short")  # type: ignore[call-arg]


def test_an_empty_metrics_token_means_no_token(mongo_url: str) -> None:
    settings = Settings(MONGODB_URL=mongo_url, METRICS_TOKEN="")  # type: ignore[call-arg]
    assert settings.METRICS_TOKEN is None
    assert "scrape" not in repr(Settings(MONGODB_URL=mongo_url,  # type: ignore[call-arg]
                                         METRICS_TOKEN=METRICS_TOKEN))
