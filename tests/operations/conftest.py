"""The suite's cleanup drops `org_*` collections and empties the others: a parked or a
staging collection another test made would be a finding of `check` here, so they go too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
async def no_parked_or_staging_collections(master: Any) -> AsyncIterator[None]:
    for name in await master.list_collection_names():
        if name.startswith(("parked_", "restore_")):
            await master.drop_collection(name)
    yield
