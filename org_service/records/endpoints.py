from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Query, Response, status
from fastapi.responses import StreamingResponse
from pydantic import WithJsonSchema

from org_service.audit.service import AuditEvent
from org_service.deps import (
    CurrentAuditor,
    IndexManager,
    PolicyManager,
    RecordReader,
    RecordWriter,
    ServicesDep,
    StatsReader,
    TenantReadingRecord,
)
from org_service.errors import (
    TENANT_ERRORS,
    Conflict,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    responses,
)
from org_service.pagination import DEFAULT_LIMIT, MAX_LIMIT, After
from org_service.records.schemas import (
    BULK_MAX_BODY_BYTES,
    IF_MATCH_PATTERN,
    MAX_BULK_ITEMS,
    BulkCreated,
    IndexCreate,
    IndexInfo,
    IndexList,
    IndexName,
    Kind,
    KindList,
    KindPolicy,
    OrganizationStats,
    Record,
    RecordId,
    RecordPage,
    RecordPolicy,
    RecordQuery,
)
from org_service.records.validation import MAX_DEPTH, RECORD_DATA_SCHEMA
from org_service.strict_json import StrictJSONRoute

# Every route here sits behind the tenant context, so each may answer 401 or 403.
router = APIRouter(prefix="/org", tags=["Tenant records"], route_class=StrictJSONRoute,
                   responses=responses(*TENANT_ERRORS))

RecordData = Annotated[dict[str, Any], WithJsonSchema(RECORD_DATA_SCHEMA), Body(
    description="The record's data: any JSON object (keys not empty, without `$` first or "
                "`.` or NUL anywhere; numbers from -2^63 to below 2^63). Beyond the schema: "
                f"at most {MAX_DEPTH} levels of nesting (422) and at most MAX_RECORD_BYTES "
                "as BSON (413)",
    examples=[{"name": "Ada Lovelace", "department": "engineering"}])]
IfMatch = Annotated[str | None, Header(
    alias="If-Match", json_schema_extra={"pattern": IF_MATCH_PATTERN},
    description="Only change the record if it is still at this version (`3`, `\"3\"` or "
                "`W/\"3\"`; `*`: any version); another value is a 422")]


def _etag(response: Response, record: Record) -> Record:
    response.headers["ETag"] = f'"{record.version}"'
    return record


@router.post("/records/{kind}", status_code=status.HTTP_201_CREATED, response_model=Record,
             responses=responses(PayloadTooLarge))
async def create_record(kind: Kind, data: RecordData, tenant: RecordWriter,
                        services: ServicesDep, response: Response) -> Record:
    """Store a record of `kind` in the caller's own collection."""
    return _etag(response, await services.records.create(tenant, kind, data))


@router.post("/records/{kind}/bulk", status_code=status.HTTP_201_CREATED,
             response_model=BulkCreated, max_body_size=BULK_MAX_BODY_BYTES,
             responses=responses(PayloadTooLarge))
async def create_records(
    kind: Kind, tenant: RecordWriter, services: ServicesDep,
    items: Annotated[list[Annotated[dict[str, Any], WithJsonSchema(RECORD_DATA_SCHEMA)]], Body(
        min_length=1, max_length=MAX_BULK_ITEMS,
        description="Up to 1,000 record data objects: all are stored or none (a 422 lists "
                    "every bad item; the body may be up to 16 MiB)")],
) -> BulkCreated:
    """Store many records of `kind` at once, all or nothing."""
    return await services.records.create_many(tenant, kind, items)


@router.get("/records", response_model=KindList)
async def list_kinds(tenant: RecordReader, services: ServicesDep) -> KindList:
    """The kinds in use in the caller's organization, with their record counts."""
    return await services.records.kinds(tenant)


@router.get("/records/{kind}", response_model=RecordPage, responses=responses(NotFound))
async def list_records(
    kind: Kind, tenant: RecordReader, services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    after: After = None,
    order: Annotated[Literal["asc", "desc"], Query(description="By creation time")] = "asc",
) -> RecordPage:
    """Records of `kind` by creation time, a page at a time (cursor stable under inserts)."""
    return await services.records.list(tenant, kind, limit=limit, after=after,
                                       descending=order == "desc")


@router.post("/records/{kind}/query", response_model=RecordPage,
             responses=responses(NotFound))
async def query_records(kind: Kind, body: RecordQuery, tenant: RecordReader,
                        services: ServicesDep) -> RecordPage:
    """Records of `kind` matching a filter (a safe subset of MongoDB's), paged."""
    return await services.records.query(tenant, kind, body)


# Declared before the record routes: /records/{kind}/policy is not a record id.
@router.get("/records/{kind}/policy", response_model=KindPolicy)
async def get_record_policy(kind: Kind, tenant: PolicyManager, services: ServicesDep
                            ) -> KindPolicy:
    """Who reads and writes this kind (`default`: no policy set, every role reads, owners,
    admins and managers write)."""
    return services.records.get_policy(tenant, kind)


@router.put("/records/{kind}/policy", response_model=KindPolicy,
            responses=responses(Conflict))
async def set_record_policy(kind: Kind, body: RecordPolicy, tenant: PolicyManager,
                            services: ServicesDep, auditor: CurrentAuditor) -> KindPolicy:
    """Set who reads and who writes this kind. Owners and admins are always in both lists;
    a role that writes must also read (422). A member outside the read list gets 404 for the
    kind's records, which also leave the listing of kinds and the export for them."""
    event = AuditEvent(admin_id=tenant.member_id, organization_id=tenant.organization_id,
                       target=f"{kind} read={','.join(body.read)} write={','.join(body.write)}")
    async with auditor.action("records.policy_change", event):
        return await services.records.set_policy(tenant, kind, body)


@router.get("/stats", response_model=OrganizationStats)
async def organization_stats(tenant: StatsReader, services: ServicesDep) -> OrganizationStats:
    """Members by role and state, records by kind, and the size of the organization's
    collection."""
    members = await services.members.counts(tenant)
    records = await services.records.stats(tenant)
    return OrganizationStats(members=members, records=records.kinds,
                             collection=records.collection)


@router.get("/records/{kind}/{record_id:objectid}", response_model=Record,
            responses=responses(NotFound))
async def get_record(kind: Kind, record_id: RecordId, tenant: TenantReadingRecord,
                     services: ServicesDep, response: Response) -> Record:
    """One record by id (404 for ids of other organizations, as for missing ones)."""
    return _etag(response, await services.records.get(tenant, kind, record_id))


@router.put("/records/{kind}/{record_id:objectid}", response_model=Record,
            responses=responses(NotFound, PreconditionFailed, PayloadTooLarge))
async def replace_record(kind: Kind, record_id: RecordId, data: RecordData,
                         tenant: RecordWriter, services: ServicesDep, response: Response,
                         if_match: IfMatch = None) -> Record:
    """Replace a record's data; the version goes up by one."""
    return _etag(response, await services.records.replace(
        tenant, kind, record_id, data, if_match))


@router.patch("/records/{kind}/{record_id:objectid}", response_model=Record,
              responses=responses(NotFound, PreconditionFailed, PayloadTooLarge,
                                  Conflict))
async def patch_record(
    kind: Kind, record_id: RecordId, tenant: RecordWriter, services: ServicesDep,
    response: Response,
    patch: Annotated[dict[str, Any], WithJsonSchema(RECORD_DATA_SCHEMA), Body(
        description="JSON merge patch (RFC 7396): null removes a field, objects merge; the "
                    "same rules as a record's data",
        media_type="application/merge-patch+json",
        examples=[{"title": "Lead engineer", "phone": None}])],
    if_match: IfMatch = None,
) -> Record:
    """Change part of a record's data with a JSON merge patch; the version goes up by one."""
    return _etag(response, await services.records.patch(
        tenant, kind, record_id, patch, if_match))


@router.delete("/records/{kind}/{record_id:objectid}", status_code=status.HTTP_204_NO_CONTENT,
               responses=responses(NotFound, PreconditionFailed))
async def delete_record(kind: Kind, record_id: RecordId, tenant: RecordWriter,
                        services: ServicesDep, if_match: IfMatch = None) -> Response:
    """Delete a record."""
    await services.records.delete(tenant, kind, record_id, if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/export", response_class=StreamingResponse, responses={
    200: {"content": {"application/x-ndjson": {}},
          "description": "An organization line, one line per record, then "
                         "{\"type\": \"end\", \"records\": <count>}"},
    **responses()})
async def export_organization(tenant: RecordReader, services: ServicesDep
                              ) -> StreamingResponse:
    """The organization's metadata and all its records as streamed NDJSON."""
    filename = f"{tenant.collection_name}.ndjson"
    return StreamingResponse(
        await services.records.export(tenant), media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/indexes", response_model=IndexList)
async def list_indexes(tenant: IndexManager, services: ServicesDep) -> IndexList:
    """The secondary indexes the organization declared, ready or still building."""
    return await services.records.list_indexes(tenant)


@router.post("/indexes", status_code=status.HTTP_201_CREATED, response_model=IndexInfo,
             responses={202: {"model": IndexInfo, "description": "Still building"},
                        **responses(Conflict)})
async def create_index(body: IndexCreate, tenant: IndexManager, services: ServicesDep,
                       response: Response) -> IndexInfo:
    """Declare an index on data fields of one kind (at most MAX_INDEXES_PER_ORG). It builds
    in the background: 201 when ready within INDEX_BUILD_WAIT_SECONDS, else 202."""
    info = await services.records.create_index(tenant, body)
    if info.state == "building":
        response.status_code = status.HTTP_202_ACCEPTED
    return info


@router.delete("/indexes/{name}", status_code=status.HTTP_204_NO_CONTENT,
               responses=responses(NotFound))
async def drop_index(name: IndexName, tenant: IndexManager, services: ServicesDep
                     ) -> Response:
    """Drop a declared index."""
    await services.records.drop_index(tenant, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
