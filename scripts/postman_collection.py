"""Writes the Postman collection and environment in postman/ (run after changing routes).

    .venv/bin/python scripts/postman_collection.py

The JSON files are what QA imports and what scripts/postman.sh runs with Newman; this script
is their source, so edit here and regenerate (tests/postman checks the files match it). The
Idempotency-Key replays are included when POST /org/create takes that header.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "postman"

def js(*lines: str) -> dict[str, Any]:
    return {"type": "text/javascript", "exec": list(lines)}

def req(name: str, method: str, path: str, *, body: Any = None, auth: str | None = None,
        headers: dict[str, str] | None = None, tests: list[str] | tuple[str, ...] = (),
        pre: list[str] | tuple[str, ...] = (), desc: str | None = None) -> dict[str, Any]:
    # Every request says it comes from this run's own address: see CLIENT_ADDRESS.
    h = [{"key": "X-Forwarded-For", "value": "{{client_address}}"}]
    if body is not None:
        h.append({"key": "Content-Type", "value": "application/json"})
    if auth:
        h.append({"key": "Authorization", "value": f"Bearer {{{{{auth}}}}}"})
    for k, v in (headers or {}).items():
        h = [x for x in h if x["key"] != k]
        h.append({"key": k, "value": v})
    bare, _, query = path.partition("?")
    url = {"raw": "{{base_url}}" + path, "host": ["{{base_url}}"],
           "path": bare.strip("/").split("/")}
    if query:
        url["query"] = [dict(zip(("key", "value"), pair.split("=", 1), strict=True))
                        for pair in query.split("&")]
    r = {"method": method, "header": h, "url": url}
    if body is not None:
        r["body"] = {"mode": "raw", "raw": json.dumps(body, indent=2, ensure_ascii=False),
                     "options": {"raw": {"language": "json"}}}
    if desc:
        r["description"] = desc
    item = {"name": name, "request": r, "event": []}
    if pre:
        item["event"].append({"listen": "prerequest", "script": js(*pre)})
    if tests:
        item["event"].append({"listen": "test", "script": js(*tests)})
    return item

def status(code: int) -> list[str]:
    return [f'pm.test("status is {code}", () => pm.response.to.have.status({code}));']

def error(code: int, err: str) -> list[str]:
    return status(code) + [
        'pm.test("error body names the problem", () => {',
        '  const body = pm.response.json();',
        f'  pm.expect(body.error).to.eql("{err}");',
        '  pm.expect(body.detail).to.be.a("string").and.not.empty;',
        '});']

A, B = "{{org_a_name}}", "{{org_b_name}}"
A_EMAIL, B_EMAIL = "{{org_a_email}}", "{{org_b_email}}"
PW = "secure123"

health = {"name": "Health", "item": [
    req("Liveness", "GET", "/health", tests=status(200) + [
        'pm.test("status ok", () => pm.expect(pm.response.json().status).to.eql("ok"));']),
    req("Readiness (database answers)", "GET", "/ready", tests=status(200) + [
        'pm.test("status ok", () => pm.expect(pm.response.json().status).to.eql("ok"));']),
    req("X-Request-ID is echoed", "GET", "/health",
        headers={"X-Request-ID": "postman-{{run_id}}"}, tests=status(200) + [
        'pm.test("the request id comes back", () =>',
        '  pm.expect(pm.response.headers.get("X-Request-ID")).to.eql("postman-" + pm.collectionVariables.get("run_id")));']),
    req("Prometheus metrics", "GET", "/metrics", tests=status(200) + [
        'pm.test("Prometheus text with request counts, latencies and the organizations gauge", () => {',
        '  pm.expect(pm.response.headers.get("Content-Type")).to.include("text/plain");',
        '  const text = pm.response.text();',
        '  pm.expect(text).to.include("http_requests_total{");',
        '  pm.expect(text).to.include("http_request_duration_seconds_bucket{");',
        '  pm.expect(text).to.include("mongodb_command_duration_seconds_bucket{");',
        '  pm.expect(text).to.match(/^organizations \\d+/m);',
        '});']),
]}

# The login and create throttles count per client address. Run against a developer's own
# API on 127.0.0.1, the collection's failed logins and creates would count against the
# developer's address and lock them out of their own server (20 failed logins per 15 min,
# 20 creates per hour). uvicorn believes X-Forwarded-For from 127.0.0.1 (its default
# FORWARDED_ALLOW_IPS), so each run comes from an address of its own in 198.18.0.0/15 (set
# aside for benchmarks, RFC 2544). From another host the header is ignored: the collection
# then counts against that host's address (`org-service throttle clear --address` clears it).
CLIENT_ADDRESS = [
    'pm.collectionVariables.set("client_address", "198." + (18 + Math.floor(Math.random() * 2))',
    '  + "." + Math.floor(Math.random() * 256) + "." + (1 + Math.floor(Math.random() * 254)));',
]

new_run = [
    '// A fresh suffix per run: reruns against a persistent database never collide.',
    'const runId = Date.now().toString(36) + Math.random().toString(36).slice(2, 6);',
    'pm.collectionVariables.set("run_id", runId);',
    '// And a fresh client address: the throttles of one run do not carry over to the next.',
    *CLIENT_ADDRESS,
    'pm.collectionVariables.set("org_a_name", "Postman A " + runId);',
    'pm.collectionVariables.set("org_a_email", "admin-a-" + runId + "@example.com");',
    'pm.collectionVariables.set("org_b_name", "Postman B " + runId);',
    'pm.collectionVariables.set("org_b_email", "admin-b-" + runId + "@example.com");',
]

orgs = {"name": "Organizations", "item": [
    req("Create organization A", "POST", "/org/create", pre=new_run,
        body={"organization_name": A, "email": A_EMAIL, "password": PW}, tests=status(201) + [
        'const body = pm.response.json();',
        'pm.test("created with its own collection", () => {',
        '  pm.expect(body.organization_name).to.eql(pm.collectionVariables.get("org_a_name"));',
        '  pm.expect(body.admin_email).to.eql(pm.collectionVariables.get("org_a_email"));',
        '  pm.expect(body.collection_name).to.match(/^org_postman_a_/);',
        '  pm.expect(body.id).to.match(/^[0-9a-f]{24}$/);',
        '  pm.expect(body).to.have.property("created_at");',
        '  pm.expect(body).to.not.have.property("password");',
        '});',
        'pm.collectionVariables.set("org_a_id", body.id);']),
    req("Create organization B", "POST", "/org/create",
        body={"organization_name": B, "email": B_EMAIL, "password": PW}, tests=status(201) + [
        'pm.collectionVariables.set("org_b_id", pm.response.json().id);']),
    req("Create: same name again → 409", "POST", "/org/create",
        body={"organization_name": A, "email": "other-{{run_id}}@example.com", "password": PW},
        tests=error(409, "conflict")),
    req("Create: bad body → 422", "POST", "/org/create",
        body={"organization_name": "", "email": "not-an-email"}, tests=error(422, "validation_error") + [
        'pm.test("each bad field is listed", () => {',
        '  const fields = pm.response.json().errors.map(e => e.loc[e.loc.length - 1]);',
        '  pm.expect(fields).to.include.members(["organization_name", "email", "password"]);',
        '});']),
    req("Get organization", "POST", "/org/get", body={"organization_name": A},
        tests=status(200) + [
        'const body = pm.response.json();',
        'pm.test("public fields of A", () => {',
        '  pm.expect(body.id).to.eql(pm.collectionVariables.get("org_a_id"));',
        '  pm.expect(body.organization_name).to.eql(pm.collectionVariables.get("org_a_name"));',
        '  pm.expect(body).to.have.all.keys("id", "organization_name", "collection_name", "created_at", "updated_at");',
        '});']),
    req("Get: unknown organization → 404", "POST", "/org/get",
        body={"organization_name": "Nobody {{run_id}}"}, tests=error(404, "not_found")),
]}

auth = {"name": "Admin auth", "item": [
    req("Login: wrong password → 401", "POST", "/admin/login",
        body={"email": A_EMAIL, "password": "wrong-password"}, tests=error(401, "unauthorized") + [
        'pm.test("asks for a bearer token", () => pm.expect(pm.response.headers.get("WWW-Authenticate")).to.eql("Bearer"));']),
    req("Login as A's admin (saves access_token)", "POST", "/admin/login",
        headers={"X-Request-ID": "postman-login-{{run_id}}"},
        body={"email": A_EMAIL, "password": PW}, tests=status(200) + [
        'const body = pm.response.json();',
        'pm.test("a bearer token for A", () => {',
        '  pm.expect(body.token_type).to.eql("bearer");',
        '  pm.expect(body.access_token.split(".")).to.have.lengthOf(3);',
        '  pm.expect(body.organization_name).to.eql(pm.collectionVariables.get("org_a_name"));',
        '  pm.expect(body.email).to.eql(pm.collectionVariables.get("org_a_email"));',
        '  pm.expect(body.expires_in).to.be.above(0);',
        '});',
        'pm.environment.set("access_token", body.access_token);']),
    req("Login as B's admin (saves access_token_b)", "POST", "/admin/login",
        body={"email": B_EMAIL, "password": PW}, tests=status(200) + [
        'pm.environment.set("access_token_b", pm.response.json().access_token);']),
    req("Who am I", "GET", "/admin/me", auth="access_token", tests=status(200) + [
        'const body = pm.response.json();',
        'pm.test("the caller and their organization", () => {',
        '  pm.expect(body.email).to.eql(pm.collectionVariables.get("org_a_email"));',
        '  pm.expect(body.organization.id).to.eql(pm.collectionVariables.get("org_a_id"));',
        '  pm.expect(body).to.not.have.property("password_hash");',
        '});']),
    req("Who am I: no token → 401", "GET", "/admin/me", tests=error(401, "unauthorized")),
    req("Who am I: garbage token → 401", "GET", "/admin/me",
        headers={"Authorization": "Bearer not.a.jwt"}, tests=error(401, "unauthorized")),
    req("Who am I: other organization's id → 403", "GET", "/admin/me", auth="access_token",
        headers={"X-Organization-ID": "{{org_b_id}}"}, tests=error(403, "forbidden")),
]}

REC = "/org/records/contacts"
records = {"name": "Tenant records", "item": [
    req("Create a record (saves record_id)", "POST", REC, auth="access_token",
        body={"name": "Ada Lovelace", "department": "engineering", "age": 36},
        tests=status(201) + [
        'const body = pm.response.json();',
        'pm.test("stored at version 1 with its data", () => {',
        '  pm.expect(body.id).to.be.a("string").and.not.empty;',
        '  pm.expect(body.kind).to.eql("contacts");',
        '  pm.expect(body.version).to.eql(1);',
        '  pm.expect(body.data).to.eql({name: "Ada Lovelace", department: "engineering", age: 36});',
        '  pm.expect(pm.response.headers.get("ETag")).to.eql(\'"1"\');',
        '});',
        'pm.collectionVariables.set("record_id", body.id);']),
    req("Create: bad body (not an object) → 422", "POST", REC, auth="access_token",
        body=[1, 2, 3], tests=error(422, "validation_error")),
    req("Create: no token → 401", "POST", REC, body={"name": "Nobody"},
        tests=error(401, "unauthorized")),
    req("Bulk create", "POST", REC + "/bulk", auth="access_token",
        body=[{"name": "Grace Hopper", "department": "navy"},
              {"name": "Alan Turing", "department": "engineering"}],
        tests=status(201) + [
        'pm.test("all stored", () => {',
        '  const body = pm.response.json();',
        '  pm.expect(body.count).to.eql(2);',
        '  pm.expect(body.ids).to.have.lengthOf(2);',
        '});']),
    req("List kinds", "GET", "/org/records", auth="access_token", tests=status(200) + [
        'pm.test("contacts with 3 records", () => {',
        '  const kinds = pm.response.json().kinds;',
        '  pm.expect(kinds).to.deep.include({kind: "contacts", count: 3});',
        '});']),
    req("List records, two per page", "GET", REC + "?limit=2", auth="access_token",
        tests=status(200) + [
        'const body = pm.response.json();',
        'pm.test("a page and a cursor", () => {',
        '  pm.expect(body.items).to.have.lengthOf(2);',
        '  pm.expect(body.next).to.be.a("string").and.not.empty;',
        '});',
        'pm.collectionVariables.set("records_next", body.next);']),
    req("List records, next page", "GET", REC + "?limit=2&after={{records_next}}",
        auth="access_token", tests=status(200) + [
        'pm.test("the last record", () => pm.expect(pm.response.json().items).to.have.lengthOf(1));']),
    req("Query records", "POST", REC + "/query", auth="access_token",
        body={"filter": {"department": "engineering"}, "limit": 10}, tests=status(200) + [
        'pm.test("only engineering", () => {',
        '  const items = pm.response.json().items;',
        '  pm.expect(items).to.have.lengthOf(2);',
        '  items.forEach(r => pm.expect(r.data.department).to.eql("engineering"));',
        '});']),
    req("Query: bad filter operator → 422", "POST", REC + "/query", auth="access_token",
        body={"filter": {"name": {"$where": "1"}}}, tests=error(422, "validation_error")),
    req("Read a record by id", "GET", REC + "/{{record_id}}", auth="access_token",
        tests=status(200) + [
        'pm.test("the record", () => {',
        '  pm.expect(pm.response.json().id).to.eql(pm.collectionVariables.get("record_id"));',
        '  pm.expect(pm.response.headers.get("ETag")).to.eql(\'"1"\');',
        '});']),
    req("Read: other organization's token → 404", "GET", REC + "/{{record_id}}",
        auth="access_token_b", tests=error(404, "not_found")),
    req("Replace at version 1", "PUT", REC + "/{{record_id}}", auth="access_token",
        headers={"If-Match": '"1"'}, body={"name": "Ada King", "department": "engineering"},
        tests=status(200) + [
        'pm.test("version 2 with the new data", () => {',
        '  const body = pm.response.json();',
        '  pm.expect(body.version).to.eql(2);',
        '  pm.expect(body.data).to.eql({name: "Ada King", department: "engineering"});',
        '});']),
    req("Replace: stale If-Match → 412", "PUT", REC + "/{{record_id}}", auth="access_token",
        headers={"If-Match": '"1"'}, body={"name": "Lost update"},
        tests=error(412, "precondition_failed")),
    req("Merge patch", "PATCH", REC + "/{{record_id}}", auth="access_token",
        headers={"Content-Type": "application/merge-patch+json"},
        body={"title": "Countess of Lovelace", "department": None}, tests=status(200) + [
        'pm.test("merged: field added, null removed, version 3", () => {',
        '  const body = pm.response.json();',
        '  pm.expect(body.version).to.eql(3);',
        '  pm.expect(body.data).to.eql({name: "Ada King", title: "Countess of Lovelace"});',
        '});']),
    req("Declare an index", "POST", "/org/indexes", auth="access_token",
        body={"name": "by_department", "kind": "contacts", "fields": [{"path": "department"}]},
        tests=['pm.test("status is 201 or 202 (still building)", () => pm.expect(pm.response.code).to.be.oneOf([201, 202]));',
               'pm.test("declared", () => pm.expect(pm.response.json().name).to.eql("by_department"));']),
    req("List indexes", "GET", "/org/indexes", auth="access_token", tests=status(200) + [
        'pm.test("lists by_department", () => {',
        '  pm.expect(JSON.stringify(pm.response.json())).to.include("by_department");',
        '});']),
    req("Drop the index", "DELETE", "/org/indexes/by_department", auth="access_token",
        tests=status(204)),
    req("Export (NDJSON)", "GET", "/org/export", auth="access_token", tests=status(200) + [
        'pm.test("organization line, 3 records, end line", () => {',
        '  const lines = pm.response.text().trim().split("\\n").map(l => JSON.parse(l));',
        '  pm.expect(lines).to.have.lengthOf(5);',
        '  pm.expect(lines[lines.length - 1]).to.include({type: "end", records: 3});',
        '});']),
    req("Delete the record", "DELETE", REC + "/{{record_id}}", auth="access_token",
        tests=status(204)),
    req("Read the deleted record → 404", "GET", REC + "/{{record_id}}", auth="access_token",
        tests=error(404, "not_found")),
]}
audit = {"name": "Audit", "item": [
    req("Audit trail of A", "GET", "/org/audit?limit=50", auth="access_token", tests=status(200) + [
        'const body = pm.response.json();',
        'pm.test("newest first, with A\'s creation and login", () => {',
        '  pm.expect(body.entries).to.be.an("array").that.is.not.empty;',
        '  const actions = body.entries.map(e => e.action);',
        '  pm.expect(actions).to.include.members(["organization.create", "admin.login"]);',
        '  body.entries.forEach(e => pm.expect(e.organization_id).to.eql(pm.collectionVariables.get("org_a_id")));',
        '  const times = body.entries.map(e => Date.parse(e.at));',
        '  pm.expect(times).to.eql([...times].sort((a, b) => b - a));',
        '  pm.expect(body).to.have.property("next");',
        '});',
        'pm.test("the login entry carries the login request\'s X-Request-ID", () => {',
        '  const login = body.entries.find(e => e.action === "admin.login" && e.outcome === "success");',
        '  pm.expect(login.request_id).to.eql("postman-login-" + pm.collectionVariables.get("run_id"));',
        '});',
        'pm.test("no secrets in the trail", () => pm.expect(pm.response.text()).to.not.include("secure123"));']),
    req("Audit: one entry per page, then the next page", "GET", "/org/audit?limit=1",
        auth="access_token", tests=status(200) + [
        'const body = pm.response.json();',
        'pm.test("one entry and a cursor", () => {',
        '  pm.expect(body.entries).to.have.lengthOf(1);',
        '  pm.expect(body.next).to.be.a("string").and.not.empty;',
        '});',
        'pm.collectionVariables.set("audit_cursor", body.next);']),
    req("Audit: second page", "GET", "/org/audit?limit=1&after={{audit_cursor}}",
        auth="access_token", tests=status(200) + [
        'pm.test("another entry", () => pm.expect(pm.response.json().entries).to.have.lengthOf(1));']),
    req("Audit: no token → 401", "GET", "/org/audit", tests=error(401, "unauthorized")),
    req("Audit: bad limit → 422", "GET", "/org/audit?limit=0", auth="access_token",
        tests=error(422, "validation_error")),
]}

MANAGER_EMAIL, EMPLOYEE_EMAIL = "manager-{{run_id}}@example.com", "employee-{{run_id}}@example.com"
members = {"name": "Members", "item": [
    req("Owner adds a manager", "POST", "/org/members", auth="access_token",
        body={"email": MANAGER_EMAIL, "password": PW, "name": "Mona Manager",
              "role": "manager", "department": "Sales"}, tests=status(201) + [
        'const body = pm.response.json();',
        'pm.test("a manager, active", () => {',
        '  pm.expect(body.role).to.eql("manager");',
        '  pm.expect(body.state).to.eql("active");',
        '  pm.expect(body).to.not.have.property("password_hash");',
        '});',
        'pm.collectionVariables.set("manager_id", body.id);']),
    req("Owner adds an employee reporting to the manager", "POST", "/org/members",
        auth="access_token", body={"email": EMPLOYEE_EMAIL, "password": PW, "name": "Eddie Employee",
                                   "role": "employee", "manager_id": "{{manager_id}}"},
        tests=status(201) + [
        'const body = pm.response.json();',
        'pm.test("reports to the manager", () => pm.expect(body.manager_id).to.eql(pm.collectionVariables.get("manager_id")));',
        'pm.collectionVariables.set("employee_id", body.id);']),
    req("Add: the email is taken → 409", "POST", "/org/members", auth="access_token",
        body={"email": MANAGER_EMAIL, "password": PW, "name": "Again"},
        tests=error(409, "conflict")),
    req("Manager logs in at /auth/login", "POST", "/auth/login",
        body={"email": MANAGER_EMAIL, "password": PW}, tests=status(200) + [
        'const body = pm.response.json();',
        'pm.test("a manager\'s token", () => pm.expect(body.role).to.eql("manager"));',
        'pm.collectionVariables.set("manager_token", body.access_token);']),
    req("Employee logs in at /auth/login", "POST", "/auth/login",
        body={"email": EMPLOYEE_EMAIL, "password": PW}, tests=status(200) + [
        'pm.collectionVariables.set("employee_token", pm.response.json().access_token);']),
    req("Employee at /admin/login → 403 naming /auth/login", "POST", "/admin/login",
        body={"email": EMPLOYEE_EMAIL, "password": PW}, tests=error(403, "use_auth_login")),
    req("Employee: who am I", "GET", "/me", auth="employee_token", tests=status(200) + [
        'pm.test("the employee", () => pm.expect(pm.response.json().role).to.eql("employee"));']),
    req("Employee sets their own title", "PATCH", "/me", auth="employee_token",
        body={"title": "Analyst"}, tests=status(200) + [
        'pm.test("titled", () => pm.expect(pm.response.json().title).to.eql("Analyst"));']),
    req("Employee: the directory, searched by name", "GET", "/org/members?q=mona",
        auth="employee_token", tests=status(200) + [
        'pm.test("finds the manager", () => pm.expect(pm.response.json().items.map(m => m.id))',
        '  .to.eql([pm.collectionVariables.get("manager_id")]));']),
    req("Employee: one member", "GET", "/org/members/{{manager_id}}", auth="employee_token",
        tests=status(200)),
    req("Manager: all reports", "GET", "/org/members/{{manager_id}}/reports?depth=all",
        auth="manager_token", tests=status(200) + [
        'pm.test("the employee, one level down", () => {',
        '  const items = pm.response.json().items;',
        '  pm.expect(items.map(m => [m.id, m.depth])).to.eql([[pm.collectionVariables.get("employee_id"), 1]]);',
        '});']),
    req("Employee reads records", "GET", "/org/records", auth="employee_token",
        tests=status(200)),
    req("Employee: the audit trail → 403", "GET", "/org/audit", auth="employee_token",
        tests=error(403, "permission_denied")),
    req("Manager adds a member → 403", "POST", "/org/members", auth="manager_token",
        body={"email": "x-{{run_id}}@example.com", "password": PW, "name": "X"},
        tests=error(403, "permission_denied")),
    req("Manager hands over ownership → 403", "POST", "/org/ownership/transfer",
        auth="manager_token", body={"member_id": "{{manager_id}}"},
        tests=error(403, "permission_denied")),
    req("Owner changes the employee's department", "PATCH", "/org/members/{{employee_id}}",
        auth="access_token", body={"department": "Sales"}, tests=status(200) + [
        'pm.test("moved", () => pm.expect(pm.response.json().department).to.eql("Sales"));']),
    req("Owner files a salary record", "POST", "/org/records/salaries", auth="access_token",
        body={"member": "{{employee_id}}", "eur": 42000}, tests=status(201) + [
        'pm.collectionVariables.set("salary_id", pm.response.json().id);']),
    req("Salaries: the default policy", "GET", "/org/records/salaries/policy",
        auth="access_token", tests=status(200) + [
        'pm.test("every role reads by default", () => {',
        '  const body = pm.response.json();',
        '  pm.expect(body.default).to.eql(true);',
        '  pm.expect(body.read).to.include("employee");',
        '});']),
    req("Salaries: only managers (and owners, admins) read", "PUT",
        "/org/records/salaries/policy", auth="access_token",
        body={"read": ["manager"], "write": []}, tests=status(200) + [
        'pm.test("owners and admins are always in", () => {',
        '  const body = pm.response.json();',
        '  pm.expect(body.read).to.eql(["owner", "admin", "manager"]);',
        '  pm.expect(body.write).to.eql(["owner", "admin"]);',
        '});']),
    req("Employee: a salary → 404", "GET", "/org/records/salaries/{{salary_id}}",
        auth="employee_token", tests=error(404, "not_found")),
    req("Employee: salaries are not among the kinds", "GET", "/org/records",
        auth="employee_token", tests=status(200) + [
        'pm.test("no salaries", () => pm.expect(pm.response.json().kinds.map(k => k.kind)).to.not.include("salaries"));']),
    req("Manager reads the salary", "GET", "/org/records/salaries/{{salary_id}}",
        auth="manager_token", tests=status(200)),
    req("Manager: the organization's stats", "GET", "/org/stats", auth="manager_token",
        tests=status(200) + [
        'pm.test("members by role and the collection", () => {',
        '  const body = pm.response.json();',
        '  pm.expect(body.members.map(m => m.role)).to.include.members(["owner", "manager", "employee"]);',
        '  pm.expect(body.collection.documents).to.be.above(0);',
        '});']),
    req("Employee: stats → 403", "GET", "/org/stats", auth="employee_token",
        tests=error(403, "permission_denied")),
    req("Suspend the employee", "POST", "/org/members/{{employee_id}}/suspend",
        auth="access_token", tests=status(200) + [
        'pm.test("suspended", () => pm.expect(pm.response.json().state).to.eql("suspended"));']),
    req("The suspended employee's token → 403", "GET", "/me", auth="employee_token",
        tests=error(403, "member_suspended")),
    req("Reactivate the employee", "POST", "/org/members/{{employee_id}}/reactivate",
        auth="access_token", tests=status(200) + [
        'pm.test("back, as an employee", () => {',
        '  pm.expect(pm.response.json().state).to.eql("active");',
        '  pm.expect(pm.response.json().role).to.eql("employee");',
        '});']),
    req("Remove the manager (the employee reports to nobody then)", "DELETE",
        "/org/members/{{manager_id}}", auth="access_token", tests=status(204)),
    req("The directory now", "GET", "/org/members?role=employee", auth="access_token",
        tests=status(200) + [
        'pm.test("the employee, with no manager", () => {',
        '  const items = pm.response.json().items;',
        '  pm.expect(items).to.have.lengthOf(1);',
        '  pm.expect(items[0].manager_id).to.eql(null);',
        '});']),
]}

sessions = {"name": "Sessions", "item": [
    req("Log in: a session starts (saves session tokens)", "POST", "/auth/login",
        body={"email": A_EMAIL, "password": PW}, tests=status(200) + [
        'const body = pm.response.json();',
        'pm.test("an access token and a refresh token", () => {',
        '  pm.expect(body.refresh_token).to.be.a("string").and.not.empty;',
        '  pm.expect(body.expires_in).to.be.above(0);',
        '});',
        'pm.collectionVariables.set("session_access", body.access_token);',
        'pm.collectionVariables.set("session_refresh", body.refresh_token);']),
    req("Refresh: a new pair, the refresh token spent", "POST", "/auth/refresh",
        body={"refresh_token": "{{session_refresh}}"}, tests=status(200) + [
        'const body = pm.response.json();',
        'pm.test("a new refresh token", () => {',
        '  pm.expect(body.refresh_token).to.not.eql(pm.collectionVariables.get("session_refresh"));',
        '  pm.expect(body.token_type).to.eql("bearer");',
        '});',
        'pm.collectionVariables.set("spent_refresh", pm.collectionVariables.get("session_refresh"));',
        'pm.collectionVariables.set("session_access", body.access_token);',
        'pm.collectionVariables.set("session_refresh", body.refresh_token);']),
    req("Refresh again with the token just spent (a second tab): the same pair", "POST",
        "/auth/refresh", body={"refresh_token": "{{spent_refresh}}"}, tests=status(200) + [
        'pm.test("the pair the first refresh got", () => {',
        '  const body = pm.response.json();',
        '  pm.expect(body.refresh_token).to.eql(pm.collectionVariables.get("session_refresh"));',
        '  pm.expect(body.access_token).to.eql(pm.collectionVariables.get("session_access"));',
        '});']),
    req("Refresh: malformed body → 422", "POST", "/auth/refresh", body={"token": "x"},
        tests=error(422, "validation_error")),
    req("Refresh: unknown token → 401", "POST", "/auth/refresh",
        body={"refresh_token": "never-issued-{{run_id}}"}, tests=error(401, "session_ended")),
    req("Log in elsewhere (saves other_access)", "POST", "/auth/login",
        headers={"User-Agent": "Postman other device"},
        body={"email": A_EMAIL, "password": PW}, tests=status(200) + [
        'pm.collectionVariables.set("other_access", pm.response.json().access_token);']),
    req("The other device finds its session id (saves other_session_id)", "GET", "/me/sessions",
        auth="other_access", tests=status(200) + [
        'const current = pm.response.json().sessions.filter(s => s.current);',
        'pm.test("exactly one current session, with its user agent", () => {',
        '  pm.expect(current).to.have.lengthOf(1);',
        '  pm.expect(current[0].user_agent).to.eql("Postman other device");',
        '});',
        'pm.collectionVariables.set("other_session_id", current[0].id);']),
    req("My sessions: both listed", "GET", "/me/sessions", auth="session_access",
        tests=status(200) + [
        'const ids = pm.response.json().sessions.map(s => s.id);',
        'pm.test("the other device is listed", () => pm.expect(ids).to.include(pm.collectionVariables.get("other_session_id")));']),
    req("End the other device's session", "DELETE", "/me/sessions/{{other_session_id}}",
        auth="session_access", tests=status(204)),
    req("The other device's token is refused at once", "GET", "/me", auth="other_access",
        tests=error(401, "session_ended")),
    req("End it again → 404", "DELETE", "/me/sessions/{{other_session_id}}",
        auth="session_access", tests=error(404, "not_found")),
    req("An admin ends every session of the employee", "DELETE",
        "/org/members/{{employee_id}}/sessions", auth="access_token", tests=status(200) + [
        'pm.test("says how many", () => pm.expect(pm.response.json().ended).to.be.a("number"));']),
    req("Log out", "POST", "/auth/logout", auth="session_access", tests=status(204)),
    req("The logged-out access token is refused", "GET", "/me", auth="session_access",
        tests=error(401, "session_ended")),
    req("The logged-out refresh token is refused", "POST", "/auth/refresh",
        body={"refresh_token": "{{session_refresh}}"}, tests=error(401, "session_ended")),
]}

lifecycle = {"name": "Organizations: rename and delete", "item": [
    req("Update: other organization → 403", "PUT", "/org/update", auth="access_token",
        body={"old_organization_name": B, "new_organization_name": "Stolen {{run_id}}"},
        tests=error(403, "forbidden")),
    req("Update: another organization's name as old, own as new → 403", "PUT", "/org/update",
        auth="access_token", body={"old_organization_name": B, "new_organization_name": A},
        tests=error(403, "forbidden")),
    req("Update: wrong current_password → 403", "PUT", "/org/update", auth="access_token",
        body={"old_organization_name": A, "new_organization_name": A,
              "current_password": "not-the-password", "password": "stolen-pass-1"},
        tests=error(403, "invalid_current_password")),
    req("Update: bad body → 422", "PUT", "/org/update", auth="access_token",
        body={"old_organization_name": A}, tests=error(422, "validation_error")),
    req("Update: no token → 401", "PUT", "/org/update",
        body={"old_organization_name": A, "new_organization_name": "Renamed A {{run_id}}"},
        tests=error(401, "unauthorized")),
    req("Rename A (its collection moves)", "PUT", "/org/update", auth="access_token",
        body={"old_organization_name": A, "new_organization_name": "Renamed A {{run_id}}"},
        tests=status(200) + [
        'const body = pm.response.json();',
        'pm.test("same id, new name and collection", () => {',
        '  pm.expect(body.id).to.eql(pm.collectionVariables.get("org_a_id"));',
        '  pm.expect(body.organization_name).to.eql("Renamed A " + pm.collectionVariables.get("run_id"));',
        '  pm.expect(body.collection_name).to.match(/^org_renamed_a_/);',
        '});',
        'pm.collectionVariables.set("org_a_name", body.organization_name);']),
    req("Delete: other organization → 403", "DELETE", "/org/delete", auth="access_token",
        body={"organization_name": B}, tests=error(403, "forbidden")),
    req("Delete A", "DELETE", "/org/delete", auth="access_token",
        body={"organization_name": A}, tests=status(200) + [
        'const body = pm.response.json();',
        'pm.test("deleted", () => {',
        '  pm.expect(body.deleted).to.eql(true);',
        '  pm.expect(body.id).to.eql(pm.collectionVariables.get("org_a_id"));',
        '});']),
    req("Get deleted A → 404", "POST", "/org/get", body={"organization_name": A},
        tests=error(404, "not_found")),
    req("A's token no longer works → 401", "GET", "/admin/me", auth="access_token",
        tests=error(401, "unauthorized")),
    req("Delete B (clean up)", "DELETE", "/org/delete", auth="access_token_b",
        body={"organization_name": B}, tests=status(200)),
]}


INVITEE = "invitee-{{run_id}}@example.com"
invitations = {"name": "Invitations", "item": [
    req("Owner invites an employee (201, the link once)", "POST", "/org/invitations",
        auth="access_token", body={"email": INVITEE, "role": "employee", "expires_in_days": 7},
        tests=status(201) + [
        'const body = pm.response.json();',
        'pm.test("pending, with its accept link", () => {',
        '  pm.expect(body.state).to.eql("pending");',
        '  pm.expect(body.role).to.eql("employee");',
        '  pm.expect(body.accept_url).to.match(/\\/invitations\\/[A-Za-z0-9_-]{43}$/);',
        '});',
        'pm.collectionVariables.set("invitation_id", body.id);',
        '// The token is the last part of the link (the default INVITE_URL_TEMPLATE).',
        'pm.collectionVariables.set("invitation_token", body.accept_url.split("/").pop());']),
    req("List invitations", "GET", "/org/invitations?state=pending", auth="access_token",
        tests=status(200) + [
        'pm.test("the pending invitation is listed, without its link", () => {',
        '  const item = pm.response.json().items.find(i => i.id === pm.collectionVariables.get("invitation_id"));',
        '  pm.expect(item).to.be.an("object");',
        '  pm.expect(item).to.not.have.property("accept_url");',
        '});']),
    req("Invite the same email again → 200, the existing one", "POST", "/org/invitations",
        auth="access_token", body={"email": INVITEE}, tests=status(200) + [
        'pm.test("the same invitation, no new link", () => {',
        '  const body = pm.response.json();',
        '  pm.expect(body.id).to.eql(pm.collectionVariables.get("invitation_id"));',
        '  pm.expect(body.accept_url).to.eql(null);',
        '});']),
    req("What the accept page shows (public)", "GET", "/invitations/{{invitation_token}}",
        tests=status(200) + [
        'pm.test("organization, role and a masked email", () => {',
        '  const body = pm.response.json();',
        '  pm.expect(body.organization_name).to.eql(pm.collectionVariables.get("org_a_name"));',
        '  pm.expect(body.role).to.eql("employee");',
        '  pm.expect(body.email).to.match(/^i\\*\\*\\*@example\\.com$/);',
        '});']),
    req("Accept it (a member, logged in)", "POST", "/invitations/accept",
        body={"token": "{{invitation_token}}", "name": "Invitee", "password": PW},
        tests=status(201) + [
        'const body = pm.response.json();',
        'pm.test("a token for the new employee", () => {',
        '  pm.expect(body.access_token).to.be.a("string").and.not.empty;',
        '  pm.expect(body.role).to.eql("employee");',
        '});',
        'pm.collectionVariables.set("invitee_token", body.access_token);']),
    req("The new member's token works on /me", "GET", "/me", auth="invitee_token",
        tests=status(200) + [
        'pm.test("it is the invited email", () =>',
        '  pm.expect(pm.response.json().email).to.eql("invitee-" + pm.collectionVariables.get("run_id") + "@example.com"));']),
    req("Accept the used link again → 404", "POST", "/invitations/accept",
        body={"token": "{{invitation_token}}", "name": "Invitee", "password": PW},
        tests=error(404, "not_found")),
    req("Invite a second person", "POST", "/org/invitations", auth="access_token",
        body={"email": "second-{{run_id}}@example.com", "role": "manager"},
        tests=status(201) + [
        'pm.collectionVariables.set("second_invitation_id", pm.response.json().id);']),
    req("Revoke the second invitation", "POST",
        "/org/invitations/{{second_invitation_id}}/revoke", auth="access_token",
        tests=status(200) + [
        'pm.test("revoked", () => pm.expect(pm.response.json().state).to.eql("revoked"));']),
    req("Resend a revoked invitation → 409", "POST",
        "/org/invitations/{{second_invitation_id}}/resend", auth="access_token",
        tests=error(409, "conflict")),
    req("A token that leads nowhere → 404", "GET",
        "/invitations/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        tests=error(404, "not_found")),
    req("Inviting an owner → 422", "POST", "/org/invitations", auth="access_token",
        body={"email": "owner-{{run_id}}@example.com", "role": "owner"},
        tests=error(422, "validation_error")),
]}


# Stops at "email queued": Newman cannot read mail (the suite reads the token from the
# outbox instead: tests/recovery).
recovery = {"name": "Recovery", "item": [
    req("Ask for a password reset (202, email queued)", "POST", "/auth/password-reset",
        body={"email": A_EMAIL}, tests=status(202) + [
        'pm.test("an answer that tells nothing about the account", () =>',
        '  pm.expect(pm.response.json().detail).to.be.a("string").and.not.empty);',
        'pm.collectionVariables.set("reset_answer", pm.response.text());']),
    req("Ask for an unknown email → the same 202", "POST", "/auth/password-reset",
        body={"email": "nobody-{{run_id}}@example.com"}, tests=status(202) + [
        'pm.test("byte for byte the same body as for a real account", () =>',
        '  pm.expect(pm.response.text()).to.eql(pm.collectionVariables.get("reset_answer")));']),
    req("Confirm with a link that leads nowhere → 404", "POST", "/auth/password-reset/confirm",
        body={"token": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "password": "new-secure123"},
        tests=error(404, "not_found")),
    req("Confirm with a malformed token → 422", "POST", "/auth/password-reset/confirm",
        body={"token": "short", "password": "new-secure123"},
        tests=error(422, "validation_error")),
]}


CHANGED_A = "changed-a-{{run_id}}@example.com"
# Stops at "email queued" too (the suite follows the links it reads from the outbox:
# tests/verification, and the mass-assignment walk).
verification = {"name": "Email verification", "item": [
    req("Ask for a new verification link (202, email queued)", "POST", "/me/email/verify",
        auth="access_token", tests=status(202) + [
        'pm.test("the link went to my email", () =>',
        '  pm.expect(pm.response.json().email).to.eql(pm.collectionVariables.get("org_a_email")));']),
    req("Ask for a new link by email (202, email queued)", "POST", "/auth/verify-email/resend",
        body={"email": A_EMAIL}, tests=status(202) + [
        'pm.collectionVariables.set("verify_answer", pm.response.text());']),
    req("Ask for an unknown email → the same 202", "POST", "/auth/verify-email/resend",
        body={"email": "nobody-{{run_id}}@example.com"}, tests=status(202) + [
        'pm.test("byte for byte the same body as for a real account", () =>',
        '  pm.expect(pm.response.text()).to.eql(pm.collectionVariables.get("verify_answer")));']),
    req("Verify with a link that leads nowhere → 404", "POST", "/auth/verify-email",
        body={"token": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
        tests=error(404, "not_found")),
    req("Verify with a malformed token → 422", "POST", "/auth/verify-email",
        body={"token": "short"}, tests=error(422, "validation_error")),
    req("Change my email to a taken one → 409", "PATCH", "/me", auth="access_token",
        body={"email": B_EMAIL, "current_password": PW}, tests=error(409, "conflict")),
    req("Change my email (200, it waits for the new address's link)", "PATCH", "/me",
        auth="access_token", body={"email": CHANGED_A, "current_password": PW},
        tests=status(200) + [
        'const body = pm.response.json();',
        'pm.test("the email stays until the new address confirms", () => {',
        '  pm.expect(body.email).to.eql(pm.collectionVariables.get("org_a_email"));',
        '  pm.expect(body.pending_email).to.eql("changed-a-" + pm.collectionVariables.get("run_id") + "@example.com");',
        '});']),
    req("The old email still logs in", "POST", "/auth/login",
        body={"email": A_EMAIL, "password": PW}, tests=status(200)),
    req("The new email does not, yet → 401", "POST", "/auth/login",
        body={"email": CHANGED_A, "password": PW}, tests=error(401, "unauthorized")),
]}

IDEMPOTENCY_KEY = "postman-b-{{run_id}}"
idempotent_replays = [
    req("Create B again with the same Idempotency-Key → the first 201", "POST", "/org/create",
        headers={"Idempotency-Key": IDEMPOTENCY_KEY},
        body={"organization_name": B, "email": B_EMAIL, "password": PW}, tests=status(201) + [
        'pm.test("the same organization, nothing new", () =>',
        '  pm.expect(pm.response.json().id).to.eql(pm.collectionVariables.get("org_b_id")));']),
    req("Same Idempotency-Key, another body → 422", "POST", "/org/create",
        headers={"Idempotency-Key": IDEMPOTENCY_KEY},
        body={"organization_name": B, "email": "other-b-{{run_id}}@example.com", "password": PW},
        tests=error(422, "validation_error")),
]


def has_idempotency_keys() -> bool:
    """Whether POST /org/create takes an Idempotency-Key header (crash-safe lifecycle)."""
    os.environ.setdefault("JWT_SECRET_KEY", secrets.token_urlsafe(48))
    sys.path.insert(0, str(ROOT))
    from org_service.main import app

    create = app.openapi()["paths"]["/org/create"]["post"]
    return any(p["name"] == "Idempotency-Key" for p in create.get("parameters", []))


def documents(idempotency: bool) -> dict[str, str]:
    """File name → content of each file this script writes."""
    organizations = copy.deepcopy(orgs)
    if idempotency:
        create_b, *rest = [item for item in organizations["item"]
                           if item["name"] == "Create organization B"]
        assert not rest
        create_b["request"]["header"].append({"key": "Idempotency-Key",
                                              "value": IDEMPOTENCY_KEY})
        at = organizations["item"].index(create_b) + 1
        organizations["item"][at:at] = idempotent_replays
    collection = {
        "info": {
            "name": "org_service",
            "description": "Every route of org_service, with tests. Run it with scripts/postman.sh "
                           "(Newman against a throwaway API), or import it with "
                           "local.postman_environment.json and run it against your own API. "
                           "Each run uses fresh names, so reruns against a persistent database pass, "
                           "and its own client address (X-Forwarded-For, believed from 127.0.0.1), "
                           "so its failed logins and creates do not throttle yours.",
            "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json",
        },
        "item": [health, organizations, auth, records, audit, members, invitations, recovery,
                 verification,
                 sessions, lifecycle],
        "event": [
            {"listen": "prerequest", "script": js(
                'if (!pm.collectionVariables.get("run_id")) {',
                '  pm.collectionVariables.set("run_id", Date.now().toString(36));',
                '}',
                'if (!pm.collectionVariables.get("client_address")) {',
                *("  " + line for line in CLIENT_ADDRESS),
                '}')},
            {"listen": "test", "script": js(
                'pm.test("[every request] answers with an X-Request-ID and no server error", () => {',
                '  pm.expect(pm.response.headers.get("X-Request-ID")).to.be.a("string").and.not.empty;',
                '  pm.expect(pm.response.code).to.be.below(500);',
                '});')},
        ],
        "variable": [{"key": k, "value": ""} for k in
                     ("run_id", "client_address", "org_a_name", "org_a_email", "org_a_id",
                      "org_b_name", "org_b_email", "org_b_id", "audit_cursor", "record_id", "records_next",
                      "manager_id", "employee_id", "manager_token", "employee_token",
                      "salary_id", "invitation_id", "invitation_token", "invitee_token",
                      "second_invitation_id", "session_access", "session_refresh",
                      "spent_refresh", "other_access", "other_session_id",
                      "reset_answer", "verify_answer")],
    }

    env = {
        "name": "org_service local",
        "values": [
            {"key": "base_url", "value": "http://127.0.0.1:8000", "type": "default", "enabled": True},
            {"key": "access_token", "value": "", "type": "secret", "enabled": True},
            {"key": "access_token_b", "value": "", "type": "secret", "enabled": True},
        ],
        "_postman_variable_scope": "environment",
    }

    return {
        "org_service.postman_collection.json":
            json.dumps(collection, indent=2, ensure_ascii=False) + "\n",
        "local.postman_environment.json": json.dumps(env, indent=2) + "\n",
    }


def main() -> None:
    for name, text in documents(has_idempotency_keys()).items():
        (OUT / name).write_text(text)
        print(f"wrote postman/{name}")


if __name__ == "__main__":
    main()
