"""The benchmark's floor: the least a FastAPI endpoint can do for an authenticated read.

The API's own JWT check (its TokenCodec) and one `find_one`
with PyMongo's async client; no middleware, no error rendering, no tenant checks. Run by
scripts/bench.py as its own uvicorn process so its CPU can be read.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bson import ObjectId
from fastapi import FastAPI, Header, HTTPException
from pymongo import AsyncMongoClient

from org_service.errors import Unauthorized
from org_service.security import TokenClaims, TokenCodec

tokens = TokenCodec(os.environ["JWT_SECRET_KEY"], expire_minutes=60)
client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(os.environ["MONGODB_URL"],
                                                            tz_aware=True)
organizations = client[os.environ["MASTER_DB_NAME"]]["organizations"]
admins = client[os.environ["MASTER_DB_NAME"]]["admins"]


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
    await client.close()


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
    claims = _claims(authorization)
    organization = await organizations.find_one({"_id": ObjectId(claims.organization_id)})
    if organization is None:
        raise HTTPException(404)
    return {"id": str(organization["_id"]), "organization_name": organization["organization_name"]}


@app.get("/floor/admin")
async def floor_admin(authorization: str = Header()) -> dict[str, Any]:
    """The two reads GET /admin/me needs (the admin, then their organization), nothing else."""
    claims = _claims(authorization)
    admin = await admins.find_one({"_id": ObjectId(claims.admin_id)})
    if admin is None:
        raise HTTPException(401)
    organization = await organizations.find_one({"_id": admin["organization_id"]})
    if organization is None:
        raise HTTPException(401)
    return {"admin_id": str(admin["_id"]), "email": admin["email"],
            "organization_name": organization["organization_name"]}
