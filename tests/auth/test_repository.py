"""The tenant lookup reads the admin, its organization and, when asked, one document of the
tenant's collection, all in one command."""

from __future__ import annotations

from typing import Any

import httpx
from bson import ObjectId

from org_service.records.repository import by_id
from tests.helpers import create_org
from tests.records.helpers import add


async def test_the_joined_document_is_served_only_when_its_whole_filter_matches(
        client: httpx.AsyncClient, services: Any, master: Any) -> None:
    org = await create_org(client, "Acme")
    record = await add(client, org, "employees", {"name": "Ada"})
    admin = await master["members"].find_one({"organization_id": ObjectId(org.id)})
    record_id = ObjectId(record["id"])

    def read(kind: str, document_id: ObjectId) -> Any:
        return services.member_repository.with_organization(
            admin["_id"], also=(org.collection_name, by_id(kind, document_id)))

    found = await read("employees", record_id)
    assert found.also is not None and found.also["data"] == {"name": "Ada"}
    assert str(found.organization["_id"]) == org.id
    # The join is on the id alone; the rest of the filter must hold as well.
    assert (await read("tasks", record_id)).also is None
    assert (await read("employees", ObjectId())).also is None
    # Nothing the join needed is left on the admin, and never the password hash.
    assert set(found.member) == set(admin) - {"password_hash"}
