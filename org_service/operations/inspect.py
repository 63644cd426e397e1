"""`org-service list`, `show NAME` and `check [--repair]`: what the database says, read
without changing anything (but `--repair`, which only runs the journal's recovery).

`check` verifies the invariants the lifecycle guarantees (docs/lifecycle.md) once nothing
is in flight: what an operation in flight holds is its own business and not a finding, but
an operation whose lease has run out is."""

from __future__ import annotations

from dataclasses import dataclass

from bson import ObjectId
from pymongo.errors import OperationFailure

from org_service.db import Document, utcnow
from org_service.naming import COLLECTION_PREFIX
from org_service.operations.operator import Operator
from org_service.operations.restore import staging_op_id
from org_service.organizations.lifecycle import DONE
from org_service.organizations.repository import PARKED_PREFIX, parked_collection

DELETED = "deleted"


@dataclass(frozen=True)
class Finding:
    kind: str
    subject: str
    detail: str

    def view(self) -> Document:
        return {"kind": self.kind, "subject": self.subject, "detail": self.detail}


async def collection_size(operator: Operator, name: str) -> tuple[int, int]:
    """(documents, bytes) of a collection; (0, 0) when it does not exist."""
    try:
        stats = await operator.db.command("collStats", name)
    except OperationFailure:
        return 0, 0
    return int(stats.get("count", 0)), int(stats.get("size", 0))


async def member_counts(operator: Operator) -> dict[ObjectId, int]:
    cursor = await operator.db["members"].aggregate(
        [{"$group": {"_id": "$organization_id", "count": {"$sum": 1}}}])
    return {row["_id"]: row["count"] async for row in cursor}


async def organizations(operator: Operator) -> list[Document]:
    """Every organization, live ones first, then those deleted in their restore window."""
    members = await member_counts(operator)
    rows = []
    async for org in operator.db["organizations"].find({}, sort=[("slug", 1)]):
        records, size = await collection_size(operator, org["collection_name"])
        rows.append(_row(org, org["state"], members.get(org["_id"], 0), records, size))
    async for org in operator.deleted.organizations.find({}, sort=[("slug", 1)]):
        parked = parked_collection(org["_id"])
        records, size = await collection_size(operator, parked)
        deleted_members = await operator.deleted.members.count_documents(
            {"organization_id": org["_id"]})
        row = _row({**org, "collection_name": parked}, DELETED, deleted_members, records,
                   size)
        row["purge_after"] = org["purge_after"].isoformat() if org.get("purge_after") else None
        rows.append(row)
    return rows


def _row(org: Document, state: str, members: int, records: int, size: int) -> Document:
    return {"id": str(org["_id"]), "name": org["organization_name"], "slug": org["slug"],
            "collection": org["collection_name"], "members": members, "records": records,
            "size_bytes": size, "state": state}


async def show(operator: Operator, name: str) -> Document:
    org = await operator.organization(name)
    org_id, collection = org["_id"], org["collection_name"]
    records, size = await collection_size(operator, collection)
    by_role = {f"{row['_id']['role']}/{row['_id']['state']}": row["count"]
               for row in await operator.members.counts(org_id)}
    kinds_cursor = await operator.db[collection].aggregate(
        [{"$group": {"_id": "$kind", "count": {"$sum": 1}}}, {"$sort": {"_id": 1}}])
    kinds = {str(row["_id"]): row["count"] async for row in kinds_cursor}
    indexes = [ix["name"] async for ix in await operator.db[collection].list_indexes()] \
        if await operator.lifecycle.collections.exists(collection) else []
    op = await operator.lifecycle.journal.for_organization(org_id)
    return {
        "id": str(org_id), "name": org["organization_name"], "slug": org["slug"],
        "collection": collection, "state": org["state"],
        "created_at": org["created_at"].isoformat(), "updated_at": org["updated_at"].isoformat(),
        "members": by_role, "records": records, "size_bytes": size, "kinds": kinds,
        "indexes": indexes, "record_policies": org.get("record_policies") or {},
        "audit_entries": await operator.audit.count_documents({"organization_id": org_id}),
        "operation": None if op is None else {"kind": op["kind"], "phase": op["phase"],
                                              "lease_until": op["lease_until"].isoformat()},
    }


async def check(operator: Operator) -> list[Finding]:
    db, now = operator.db, utcnow()
    ops = await db["lifecycle_ops"].find({}).to_list(None)
    busy = {op["organization_id"] for op in ops if op["phase"] != DONE}
    op_ids = {op["_id"] for op in ops if op["phase"] != DONE}
    orgs = {org["_id"]: org async for org in db["organizations"].find(
        {}, {"slug": 1, "collection_name": 1, "state": 1})}
    parked = {doc["_id"] async for doc in operator.deleted.organizations.find({}, {"_id": 1})}
    collections = set(await db.list_collection_names())
    findings: list[Finding] = []

    def found(kind: str, subject: str, detail: str) -> None:
        findings.append(Finding(kind, subject, detail))

    for op in ops:
        if op["phase"] != DONE and op["lease_until"] < now:
            found("journal_past_lease", str(op["_id"]),
                  f"{op['kind']} of organization {op['organization_id']} stopped in phase "
                  f"{op['phase']} (lease ended {op['lease_until'].isoformat()}): "
                  "`check --repair` finishes or undoes it")
    by_collection = {org["collection_name"]: org for org in orgs.values()}
    owners = {doc["_id"]: doc async for doc in db["tenant_collections"].find({})}
    for org_id, org in orgs.items():
        if org_id not in busy and org["collection_name"] not in collections:
            found("missing_collection", org["slug"],
                  f"organization {org_id} has no collection {org['collection_name']}")
    for name in sorted(collections):
        if name.startswith(COLLECTION_PREFIX) and name not in by_collection:
            owner = owners.get(name)
            if owner is None or owner["organization_id"] not in busy:
                found("orphan_collection", name, "a tenant collection no organization has")
        elif name.startswith(PARKED_PREFIX):
            oid = name[len(PARKED_PREFIX):]
            if not ObjectId.is_valid(oid) or ObjectId(oid) not in parked:
                found("parked_without_organization", name,
                      "a parked collection with no deleted organization in its window")
        elif (op_id := staging_op_id(name)) is not None and op_id not in op_ids:
            found("orphan_staging", name, "a restore's staging collection without its "
                  "journal entry")
    async for claim in db["slug_claims"].find({}):
        holder = orgs.get(claim["organization_id"])
        if claim["organization_id"] not in busy and (holder is None
                                                     or holder["slug"] != claim["_id"]):
            found("claim_without_owner", claim["_id"],
                  f"the name is claimed by {claim['organization_id']}, which does not have it")
    for name, owner in owners.items():
        holder = orgs.get(owner["organization_id"])
        if owner["organization_id"] not in busy and (holder is None
                                                     or holder["collection_name"] != name):
            found("collection_owner_without_organization", name,
                  f"owned by {owner['organization_id']}, which does not have it")
    async for row in await db["members"].aggregate(
            [{"$group": {"_id": "$organization_id", "count": {"$sum": 1}}}]):
        if row["_id"] not in orgs and row["_id"] not in busy:
            found("members_without_organization", str(row["_id"]),
                  f"{row['count']} member(s) of an organization that does not exist")
    return findings
