"""The OpenAPI 3.1 document served at /openapi.json, built from the wire Structs (design D5).

Every route of the table in app.py is described here with its body, its answers and its
errors; the schemas come from `msgspec.json.schema_components` over the very Structs the
handlers decode and encode, so they cannot drift apart silently. tests/api/test_openapi.py
checks that the document and the route table list the same operations, and a bounded
schemathesis run checks the live server against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from codeq.service.listing import STATES
from codeq.service.policy import Policy
from codeq.transport.http import openapi_rules
from codeq.wire import http as w
from codeq.wire import raft as w_raft

PREFIX = "/v1/codeq"
_REF = "#/components/schemas/{name}"
_JSON = "application/json"

# Errors each route group can answer, beyond its own (spec 02 §2 and §7).
_AUTH = {401: "no, malformed or refused credentials", 403: "invalid tenant claims, or a missing scope"}
_ADMIN = {401: _AUTH[401], 403: "invalid tenant claims, or not an admin"}
_BODY = {400: "malformed body or a field out of range (`field` names it)", 413: "body or payload too large"}
_UNAVAILABLE = {503: "the store or the cluster cannot serve this now (`Retry-After`)"}
_REDIRECT = {307: "not the leader: resend to `Location`"}


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    summary: str
    tag: str
    body: type | None = None
    body_required: bool = True
    ok: dict[int, tuple[Any, str]] = field(default_factory=dict)  # status -> (schema type, text)
    errors: dict[int, str] = field(default_factory=dict)
    rate_limited: bool = False
    query: Sequence[tuple[str, dict[str, Any], str]] = ()
    headers: Sequence[tuple[str, str]] = ()
    auth: bool = True
    # status -> operations the answer leads to, with how to fill their parameters (OpenAPI links)
    links: dict[int, dict[str, Link]] = field(default_factory=dict)


@dataclass(frozen=True)
class Link:
    method: str
    path: str
    parameters: dict[str, str] = field(default_factory=dict)
    body: Any = None


def op_id(method: str, path: str) -> str:
    return method.lower() + path.replace("/", "_").replace("{", "").replace("}", "")


_TASK = PREFIX + "/tasks/{id}"
_BY_ID = {"id": "$response.body#/id"}
# Where a created or claimed task leads: a client (or a stateful test) follows its id.
_TASK_LINKS = {
    "GetTask": Link("GET", _TASK, _BY_ID),
    "GetResult": Link("GET", _TASK + "/result", _BY_ID),
}
_LEASE_LINKS = {
    **_TASK_LINKS,
    "Heartbeat": Link("POST", _TASK + "/heartbeat", _BY_ID),
    "Abandon": Link("POST", _TASK + "/abandon", _BY_ID),
    "Nack": Link("POST", _TASK + "/nack", _BY_ID),
    "Result": Link("POST", _TASK + "/result", _BY_ID, {"status": "COMPLETED", "result": {}}),
}
_CREATED_LINKS = {**_TASK_LINKS, "Claim": Link("POST", PREFIX + "/tasks/claim", body={})}
_TOPIC = PREFIX + "/admin/topics/{topicName}"
_SCHEDULE = PREFIX + "/admin/schedules/{scheduleName}"
_BY_NAME = {"topicName": "$request.path.topicName"}
_TOPIC_LINKS = {"GetTopic": Link("GET", _TOPIC, _BY_NAME), "DeleteTopic": Link("DELETE", _TOPIC, _BY_NAME)}


_IDEMPOTENCY_KEY = ("Idempotency-Key", "the body's `idempotencyKey` as a header; both given must agree")
_WORKER_ID = ("X-Worker-Id", "an instance of the token's subject that owns the leases it takes")
_NO_SUBSCRIPTION = "no such live subscription of the caller's tenant and subject"
_ID_ERRORS = {
    **_AUTH,
    404: "no such task in the caller's tenant",
    409: "the task is not IN_PROGRESS (`not-in-progress`), an admin cancelled it (`task cancelled`), "
    "or the `leaseToken` given names a lease that has since moved on: expired and claimed again, "
    "handed back or finished (`not-owner`)",
}


def _worker(path: str, summary: str, body: type | None, ok: Any, **kw: Any) -> Op:
    errors = {**_ID_ERRORS, **_BODY, **_UNAVAILABLE, **_REDIRECT, **kw.pop("errors", {})}
    return Op("POST", path, summary, "workers", body, ok={200: (ok, "done")}, errors=errors,
              headers=[_WORKER_ID], **kw)  # fmt: skip


def operations() -> list[Op]:
    task, topic, dlq = _TASK, _TOPIC, PREFIX + "/admin/dlq/{command}"
    sub = PREFIX + "/workers/subscriptions"
    wait = ("waitSeconds", {"type": "integer"}, "long-poll up to this many seconds (capped)")
    return [
        Op("POST", PREFIX + "/tasks", "Create a task", "producers", w.CreateTaskRequest,
           ok={202: (w.TaskJSON, "created"), 200: (w.TaskJSON, "idempotent replay")},
           errors={**_AUTH, **_BODY, **_UNAVAILABLE, **_REDIRECT}, rate_limited=True,
           links={202: _CREATED_LINKS}, headers=[_IDEMPOTENCY_KEY]),
        Op("POST", PREFIX + "/tasks/batch", "Create tasks in one request", "producers",
           w.BatchCreateRequest, ok={200: (w.BatchCreateJSON, "one outcome per item")},
           errors={**_AUTH, **_BODY, **_UNAVAILABLE}, rate_limited=True),
        Op("POST", PREFIX + "/tasks/claim", "Claim a task", "workers", w.ClaimRequest,
           body_required=False, ok={200: (w.TaskJSON, "leased"), 204: (None, "nothing to claim")},
           errors={**_AUTH, **_BODY, **_UNAVAILABLE}, rate_limited=True, headers=[_WORKER_ID],
           links={200: _LEASE_LINKS}),
        Op("POST", PREFIX + "/tasks/claim/batch", "Claim up to `count` tasks", "workers",
           w.BatchClaimRequest, ok={200: (w.BatchClaimJSON, "leased"), 204: (None, "nothing to claim")},
           errors={**_AUTH, **_BODY, **_UNAVAILABLE}, rate_limited=True, headers=[_WORKER_ID]),
        _worker(task + "/heartbeat", "Extend a lease", w.HeartbeatRequest, w.OkJSON, body_required=False),
        _worker(task + "/abandon", "Give a task back", w.AbandonRequest, w.StatusJSON, body_required=False),
        _worker(task + "/nack", "Retry later or dead-letter", w.NackRequest, w.NackJSON, body_required=False),
        _worker(task + "/result", "Complete or fail a task", w.SubmitResultRequest, w.ResultJSON),
        Op("POST", PREFIX + "/tasks/batch/results", "Submit results in one request", "workers",
           w.BatchResultsRequest, ok={200: (w.BatchResultsJSON, "one outcome per item")},
           errors={**_AUTH, **_BODY, **_UNAVAILABLE}, headers=[_WORKER_ID]),
        Op("POST", sub, "Subscribe to queue-ready notifications", "workers", w.SubscriptionRequest,
           ok={200: (w.SubscriptionJSON, "the subscription and its expiry")},
           errors={**_AUTH, **_BODY, **_UNAVAILABLE, **_REDIRECT}),
        Op("POST", sub + "/{id}/heartbeat", "Renew a subscription", "workers",
           w.SubscriptionHeartbeatRequest, body_required=False,
           ok={200: (w.SubscriptionJSON, "the new expiry")},
           errors={**_AUTH, 404: _NO_SUBSCRIPTION, **_UNAVAILABLE, **_REDIRECT}),
        Op("DELETE", sub + "/{id}", "Delete a subscription", "workers", ok={204: (None, "deleted")},
           errors={**_AUTH, 404: _NO_SUBSCRIPTION, **_UNAVAILABLE, **_REDIRECT}),
        Op("GET", sub, "The caller's live subscriptions", "workers",
           ok={200: (w.SubscriptionListJSON, "in id order")}, errors=_AUTH),
        Op("GET", sub + "/{id}", "Read one of the caller's subscriptions", "workers",
           ok={200: (w.SubscriptionDetailJSON, "the subscription")},
           errors={**_AUTH, 404: _NO_SUBSCRIPTION}),
        Op("GET", task, "Read a task", "reads", ok={200: (w.TaskJSON, "the task")},
           errors={**_AUTH, 404: "no such task in the caller's tenant"}),
        Op("GET", task + "/result", "Read a task's result", "reads",
           ok={200: (w.TaskWithResultJSON, "the task and its result")},
           errors={**_AUTH, 404: "no such task, or no result yet"}, query=[wait]),
        Op("GET", PREFIX + "/admin/queues", "Queue sizes of the caller's tenant", "admin",
           ok={200: (dict[str, int], "label -> count, non-empty buckets only")}, errors=_ADMIN),
        Op("GET", PREFIX + "/admin/queues/{command}", "One command's queue sizes", "admin",
           ok={200: (w.QueueStatsJSON, "the counts")}, errors={**_ADMIN, 400: "blank command"}),
        Op("GET", PREFIX + "/admin/queues/{command}/tasks", "A page of one command's tasks in one state",
           "admin", ok={200: (w.TaskPageJSON, "the page, newest or oldest first")},
           errors={**_ADMIN, 400: "blank command, or a bad state, order, cursor or limit"},
           query=[("state", {"type": "string", "enum": list(STATES)}, "the tasks' state"),
                  ("order", {"type": "string", "enum": ["newest", "oldest"]}, "default newest"),
                  ("cursor", {"type": "string"}, "the `nextCursor` of the previous page"),
                  ("limit", {"type": "string", "pattern": "^[0-9]{1,3}$"}, "page size (50; at most 500)")]),
        Op("POST", task + "/cancel", "Cancel a task", "admin",
           ok={200: (w.TaskJSON, "CANCELLED, or IN_PROGRESS with cancelRequested until its worker calls")},
           errors={**_ADMIN, 404: "no such task in the caller's tenant",
                   409: "the task already finished (COMPLETED or FAILED)", **_UNAVAILABLE, **_REDIRECT}),
        Op("GET", PREFIX + "/admin/overview", "Every command of the caller's tenant with its counts", "admin",
           ok={200: (w.OverviewJSON, "per command: live counts, finishes in the last minute and hour")},
           errors=_ADMIN),
        Op("POST", PREFIX + "/admin/tasks/cleanup", "Delete expired finished tasks", "admin",
           w.CleanupRequest, body_required=False, ok={200: (w.CleanupJSON, "what was deleted")},
           errors={**_ADMIN, **_BODY, **_UNAVAILABLE}, rate_limited=True),
        Op("PUT", topic, "Create or update a topic", "topics", w.TopicPolicyRequest,
           ok={201: (w.TopicJSON, "created"), 200: (w.TopicJSON, "unchanged or updated")},
           errors={**_ADMIN, **_BODY, 422: "a policy rule is broken (`field` names it)",
                   **_UNAVAILABLE, **_REDIRECT}, links={201: _TOPIC_LINKS, 200: _TOPIC_LINKS}),
        Op("GET", topic, "Read a topic", "topics", ok={200: (w.TopicJSON, "the topic")},
           errors={**_ADMIN, 404: "no such topic in the caller's tenant", 422: "invalid topicName"}),
        Op("DELETE", topic, "Delete a topic (idempotent)", "topics", ok={204: (None, "deleted or absent")},
           errors={**_ADMIN, 400: "deletionPolicy=Delete is missing", 422: "invalid topicName",
                   **_UNAVAILABLE, **_REDIRECT},
           query=[("deletionPolicy", {"type": "string", "enum": ["Delete"]}, "must be `Delete`")]),
        Op("GET", PREFIX + "/admin/schedules", "List the caller's tenant's schedules", "schedules",
           ok={200: (w.ScheduleListJSON, "every schedule of the tenant, by name")}, errors=_ADMIN),
        Op("PUT", _SCHEDULE, "Create or update a schedule", "schedules", w.ScheduleRequest,
           ok={201: (w.ScheduleJSON, "created"), 200: (w.ScheduleJSON, "unchanged or updated")},
           errors={**_ADMIN, **_BODY, 422: "a schedule rule is broken (`field` names it)",
                   **_UNAVAILABLE, **_REDIRECT}),
        Op("GET", _SCHEDULE, "Read a schedule", "schedules", ok={200: (w.ScheduleJSON, "the schedule")},
           errors={**_ADMIN, 404: "no such schedule in the caller's tenant", 422: "invalid scheduleName"}),
        Op("DELETE", _SCHEDULE, "Delete a schedule (idempotent)", "schedules",
           ok={204: (None, "deleted or absent")},
           errors={**_ADMIN, 422: "invalid scheduleName", **_UNAVAILABLE, **_REDIRECT}),
        Op("GET", PREFIX + "/raft/status", "Raft groups of this node", "operations",
           ok={200: ((w_raft.RaftStatusJSON, w_raft.RaftStatusWithGroupsJSON), "`groups` when Raft is on")},
           errors=_AUTH),
        Op("POST", PREFIX + "/admin/raft/transfer-leader", "Hand a shard's leadership to a node",
           "operations", w_raft.TransferLeaderRequest,
           ok={200: (w_raft.TransferLeaderJSON, "the node now leading the shard")},
           errors={**_ADMIN, **_BODY, **_UNAVAILABLE, **_REDIRECT}),
        Op("POST", PREFIX + "/admin/raft/members", "Add or remove one node in a shard's Raft group",
           "operations", w_raft.MembershipRequest,
           ok={200: (w_raft.MembershipJSON, "the change is committed: the group's voters now")},
           errors={401: _AUTH[401], 403: "not an operator (codeq:operator)", 404: "no such voter",
                   409: "another change in flight, an even count without force, or too few alive",
                   **_BODY, **_UNAVAILABLE, **_REDIRECT}),
        Op("GET", dlq, "A page of dead-lettered tasks", "admin", ok={200: (w.DlqPageJSON, "the page")},
           errors={**_ADMIN, 400: "blank command or a bad limit"},
           query=[("limit", {"type": "string", "pattern": "^[0-9]{1,3}$"}, "page size"),
                  ("after", {"type": "string"}, "the `nextAfter` of the previous page")]),
        Op("POST", dlq + "/requeue", "Requeue dead letters", "admin", w.DlqActionRequest,
           ok={200: (w.DlqActionJSON, "how many were requeued")},
           errors={**_ADMIN, **_BODY, **_UNAVAILABLE}),
        Op("POST", dlq + "/purge", "Delete dead letters", "admin", w.DlqActionRequest,
           ok={200: (w.DlqActionJSON, "how many were deleted")},
           errors={**_ADMIN, **_BODY, **_UNAVAILABLE}),
        Op("POST", PREFIX + "/admin/backup", "Checkpoint the stores into a directory", "admin",
           w.BackupRequest, ok={200: (w.BackupJSON, "what was written")},
           errors={**_ADMIN, **_BODY, 409: "the memory store, or the destination exists",
                   **_UNAVAILABLE}),
        Op("GET", "/metrics", "Prometheus metrics", "operations", auth=False,
           ok={200: ("text", "Prometheus text exposition")}),
        Op("GET", "/healthz", "Liveness", "operations", auth=False, ok={200: (w.StatusJSON, "alive")}),
        Op("GET", "/readyz", "Readiness", "operations", auth=False,
           ok={200: (w.StatusJSON, "ready"), 503: (w.StatusJSON, "not ready, with the reason")}),
        Op("GET", "/openapi.json", "This document", "operations", auth=False,
           ok={200: ("object", "the OpenAPI document")}),
    ]  # fmt: skip


def document(policy: Policy | None = None) -> dict[str, Any]:
    """The whole document; `policy` supplies the configured limits (defaults otherwise)."""
    ops = operations()
    types: set[Any] = {w.ErrorJSON, w.RateLimitedJSON, w.BatchResultItem}
    for op in ops:
        if op.body is not None:
            types.add(op.body)
        for kind, _ in op.ok.values():
            if kind not in (None, "text", "object"):
                types.update(kind if isinstance(kind, tuple) else (kind,))
    ordered = sorted(types, key=_type_name)
    schemas, components = msgspec.json.schema_components(ordered, ref_template=_REF)
    refs = dict(zip(ordered, schemas, strict=True))
    openapi_rules.apply(components, policy or Policy())
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "codeq",
            "version": "1",
            "description": "The codeq task-queue HTTP API (wire-compatible with codeQ).",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", repr(kind))


def _operation(op: Op, refs: dict[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": op_id(op.method, op.path),
        "summary": op.summary,
        "tags": [op.tag],
        "responses": _responses(op, refs),
    }
    params = [_path_param(name) for name in _path_names(op.path)]
    params += [
        {"name": n, "in": "query", "required": False, "schema": s, "description": d} for n, s, d in op.query
    ]
    params += [{"name": n, "in": "header", "required": False, "schema": {"type": "string"}, "description": d}
               for n, d in op.headers]  # fmt: skip
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": op.body_required, "content": {_JSON: {"schema": refs[op.body]}}}
    out["security"] = [{"bearer": []}] if op.auth else []
    return out


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}


def _responses(op: Op, refs: dict[Any, Any]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, (kind, text) in op.ok.items():
        responses[str(status)] = _content(kind, text, refs)
        links = op.links.get(status)
        if links:
            responses[str(status)]["links"] = {name: _link(link) for name, link in links.items()}
    error = {"$ref": _REF.format(name="ErrorJSON")}
    for status, text in op.errors.items():
        body: dict[str, Any] = {"description": text, "content": {_JSON: {"schema": error}}}
        if status in (503,):
            body["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
        if status == 307:
            body["headers"] = {"Location": {"schema": {"type": "string"}}}
        responses[str(status)] = body
    if op.rate_limited:
        responses["429"] = {
            "description": "rate limited",
            "headers": {
                "Retry-After": {"required": True, "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"}}
            },
            "content": {_JSON: {"schema": {"$ref": _REF.format(name="RateLimitedJSON")}}},
        }
    return responses


def _link(link: Link) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op_id(link.method, link.path)}
    if link.parameters:
        out["parameters"] = link.parameters
    if link.body is not None:
        out["requestBody"] = link.body
    return out


def _content(kind: Any, text: str, refs: dict[Any, Any]) -> dict[str, Any]:
    if kind is None:
        return {"description": text}
    if kind == "text":
        return {"description": text, "content": {"text/plain": {"schema": {"type": "string"}}}}
    if kind == "object":
        schema: dict[str, Any] = {"type": "object"}
    elif isinstance(kind, tuple):
        schema = {"anyOf": [refs[k] for k in kind]}
    else:
        schema = refs[kind]
    return {"description": text, "content": {_JSON: {"schema": schema}}}
