"""The benchmark's floor: the least a FastAPI endpoint can do for an authenticated read.

The API's own JWT check (its TokenCodec) and one `find_one` with PyMongo's async client; no
middleware, no error rendering, no tenant checks. Run by scripts/bench.py as its own uvicorn
process so its CPU can be read.

`/floor` reads through a client configured as the API's (`create_client`: the same
timeouts and write concern, without the API's metrics listener), so both sides do the same
`find_one`: a socket timeout alone costs PyMongo's async client some 50-90 µs of CPU per
command (each send goes through `asyncio.wait_for`), and no production client runs without
one. `/floor/bare` is the same endpoint on a client with the driver's defaults, reported
alongside so that difference stays visible. `/floor/tenant-read/...` does the reads of the
API's record read by id instead of the find_one (the API's own tenant-lookup aggregate:
admin, organization and record in one command), so the report can tell the cost of what
is read from the cost of the API around it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bson import ObjectId
from fastapi import FastAPI, Header, HTTPException
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from org_service.config import get_settings
from org_service.db import create_client
from org_service.errors import Unauthorized
from org_service.members.repository import MemberRepository
from org_service.records.repository import by_id
from org_service.security import TokenClaims, TokenCodec

settings = get_settings()
tokens = TokenCodec(settings.JWT_SECRET_KEY.get_secret_value(), expire_minutes=60)
client = create_client(os.environ["MONGODB_URL"], settings)
bare_client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(os.environ["MONGODB_URL"],
                                                                 tz_aware=True)
organizations = client[settings.MASTER_DB_NAME]["organizations"]
bare_organizations = bare_client[settings.MASTER_DB_NAME]["organizations"]
admins = MemberRepository(client[settings.MASTER_DB_NAME])


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
    await client.close()
    await bare_client.close()


app = FastAPI(lifespan=lifespan)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


def _claims(authorization: str) -> TokenClaims:
    try:
        return tokens.decode(authorization.removeprefix("Bearer "))
    except Unauthorized as exc:
        raise HTTPException(401) from exc


@app.get("/floor")
async def floor(authorization: str = Header()) -> dict[str, Any]:
    return await _read(organizations, authorization)


@app.get("/floor/bare")
async def floor_bare(authorization: str = Header()) -> dict[str, Any]:
    return await _read(bare_organizations, authorization)


async def _read(collection: AsyncCollection[dict[str, Any]],
                authorization: str) -> dict[str, Any]:
    claims = _claims(authorization)
    organization = await collection.find_one({"_id": ObjectId(claims.organization_id)})
    if organization is None:
        raise HTTPException(404)
    return {"id": str(organization["_id"]), "organization_name": organization["organization_name"]}


@app.get("/floor/tenant-read/{kind}/{record_id}")
async def floor_tenant_read(kind: str, record_id: str, collection: str,
                            authorization: str = Header()) -> dict[str, Any]:
    """The record read's reads without the API around them: the collection comes from the
    query (the API knows it from the organization it read last), nothing is checked."""
    claims = _claims(authorization)
    found = await admins.with_organization(
        ObjectId(claims.admin_id), also=(collection, by_id(kind, ObjectId(record_id))))
    if found is None or found.also is None:
        raise HTTPException(404)
    return {"id": str(found.also["_id"]), "data": found.also["data"]}
