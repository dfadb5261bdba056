"""JSON shapes of the HTTP API, wire-compatible with codeQ (spec 02). camelCase lives here.

Request structs refuse unknown fields (a 400 naming the field; the reference ignores them,
docs/compatibility.md), and `null` means absent. Integer fields must be JSON integers.
Response structs omit zero-valued optional fields, as the reference does.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

NULL = msgspec.Raw(b"null")
# codeq extension: on every response of a node with a process per shard, the shard whose
# process answered (ADR 0009). Our SDK sends a task's heartbeats and outcome on a connection
# to the process that claimed it, where they need not cross to another process.
SHARD_PROCESS_HEADER = "codeq-shard-process"
# codeq extension: on a claim's response, when the claimed tasks live in another shard process
# of the node than the one that answered (a forwarded claim), that process: the SDK sends the
# tasks' calls there rather than to the answering one, which would forward each of them.
TASK_PROCESS_HEADER = "codeq-task-process"
# codeq extensions for fenced leases (docs/compatibility.md): new optional fields only.
_LEASE_TOKEN_IN = (
    "codeq extension: the claim's `leaseToken`. Given, the request is refused with 409 "
    "`not-owner` once that lease has moved on (expired and claimed again, handed back, finished); "
    "absent, only the worker is checked"
)
_LEASE_TOKEN_OUT = (
    "codeq extension: while the task is IN_PROGRESS, the token of the claim holding it; "
    "present it with that claim's heartbeat, nack, abandon and result"
)


class _Request(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    """A request body: a misspelt field is an error, not silently ignored."""


class CreateTaskRequest(_Request, kw_only=True):
    command: str
    payload: msgspec.Raw
    priority: int | None = None
    webhook: str | None = None
    max_attempts: int | None = None
    idempotency_key: str | None = None
    run_at: str | None = None
    delay_seconds: int | None = None


class BatchCreateRequest(_Request, kw_only=True):
    tasks: list[msgspec.Raw]


class ClaimRequest(_Request, kw_only=True):
    commands: list[str] | None = None
    lease_seconds: int | None = None
    wait_seconds: int | None = None


class BatchClaimRequest(_Request, kw_only=True):
    count: int
    commands: list[str] | None = None
    lease_seconds: int | None = None
    # Ignored (a batch claim never waits, spec 02 §4.4), but accepted: codeQ's Go SDK sends
    # its claim options, `waitSeconds` included, to this route too.
    wait_seconds: int | None = None


class _LeaseRequest(_Request, kw_only=True):
    """A request about a claimed task, which may present the claim's lease token."""

    lease_token: Annotated[int | None, msgspec.Meta(description=_LEASE_TOKEN_IN)] = None


class HeartbeatRequest(_LeaseRequest, kw_only=True):
    extend_seconds: int | None = None


class NackRequest(_LeaseRequest, kw_only=True):
    delay_seconds: int | None = None
    reason: str | None = None


class AbandonRequest(_LeaseRequest, kw_only=True):
    pass


class ArtifactIn(_Request, kw_only=True):
    name: str = ""
    url: str | None = None
    content_base64: str | None = None
    content_type: str | None = None


class SubmitResultRequest(_LeaseRequest, kw_only=True):
    status: str
    # absent and null are the same: no result (a factory, so the JSON schema shows no Raw default)
    result: msgspec.Raw = msgspec.field(default_factory=lambda: NULL)
    error: str | None = None
    artifacts: list[ArtifactIn] | None = None
    worker_id: str | None = None  # ignored: the worker is the token's subject


class BatchResultItem(SubmitResultRequest, kw_only=True):
    task_id: str = ""
    status: str = ""


class BatchResultsRequest(_Request, kw_only=True):
    results: list[msgspec.Raw]


class CleanupRequest(_Request, kw_only=True):
    limit: int | None = None
    before: str | None = None


class SubscriptionRequest(_Request, kw_only=True):
    callback_url: str | None = None
    event_types: list[str] | None = None
    ttl_seconds: int | None = None
    delivery_mode: str | None = None
    group_id: str | None = None
    min_interval_seconds: int | None = None


class SubscriptionHeartbeatRequest(_Request, kw_only=True):
    ttl_seconds: int | None = None


class DlqActionRequest(_Request, kw_only=True):
    task_ids: list[str] | None = None
    all: bool | None = None


class _Response(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    pass


class TaskJSON(_Response, kw_only=True):
    id: str
    command: str
    payload: str
    priority: int = 0
    webhook: str = ""
    status: str
    last_known_location: str = ""
    worker_id: str = ""
    lease_until: str = ""
    lease_token: Annotated[int, msgspec.Meta(description=_LEASE_TOKEN_OUT)] = 0
    attempts: int = 0
    max_attempts: int = 0
    error: str = ""
    result_key: str = ""
    tenant_id: str = ""
    created_at: str
    updated_at: str
    cancel_requested: bool = False  # an admin cancelled it while leased (issue 14)
    trace_parent: str = ""  # W3C trace context stored at create (only while tracing is on)
    trace_state: str = ""


class ArtifactJSON(_Response, kw_only=True):
    name: str
    url: str


class ResultJSON(_Response, kw_only=True):
    task_id: str
    status: str
    result: msgspec.Raw | None = None
    error: str = ""
    artifacts: list[ArtifactJSON] = []
    completed_at: str


class TaskWithResultJSON(_Response, kw_only=True):
    result: ResultJSON
    task: TaskJSON


class QueueStatsJSON(msgspec.Struct, rename="camel", kw_only=True):
    command: str
    ready: int
    delayed: int
    in_progress: int
    dlq: int


class ErrorJSON(_Response, kw_only=True):
    error: str
    field: str = ""
    leader: str = ""


class RateLimitedJSON(msgspec.Struct, rename="camel", kw_only=True):
    """The 429 body; keys in the reference's (alphabetical) order."""

    error: str
    operation: str
    retry_after_seconds: int
    scope: str


class NackJSON(msgspec.Struct, rename="camel", kw_only=True):
    delay_seconds: int
    status: str


class CleanupJSON(msgspec.Struct, kw_only=True):
    before: str
    deleted: int
    limit: int


class _TopicPolicy(msgspec.Struct, rename="camel", kw_only=True):
    priority_tiers: list[int]
    max_attempts: int
    dead_letter_topic_ref: str
    retention_seconds: int = 0  # 0: unset
    max_consumers: int = 0  # 0: unset


class TopicPolicyRequest(_TopicPolicy, kw_only=True, forbid_unknown_fields=True):
    """The topic PUT body, decoded strictly (spec 02 §4.15): unknown fields are errors."""


class TopicPolicyJSON(_TopicPolicy, kw_only=True, omit_defaults=True):
    """A topic's policy as answered: unset optional numbers are left out."""


class TopicJSON(msgspec.Struct, rename="camel", kw_only=True):
    topic_id: str
    tenant_id: str
    topic_name: str
    policy: TopicPolicyJSON
    version: int
    created_at: str
    updated_at: str


class ScheduleRequest(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    """The schedule PUT body: the task to create, and exactly one of `cron` and `everySeconds`."""

    command: str
    payload: msgspec.Raw
    priority: int = 0
    max_attempts: int = 0  # 0: the server's default
    cron: str = ""
    timezone: str = "UTC"
    every_seconds: int = 0
    jitter_seconds: int = 0
    catch_up: str = "skip"  # skip or once


class ScheduleJSON(msgspec.Struct, rename="camel", kw_only=True):
    name: str
    tenant_id: str
    command: str
    payload: msgspec.Raw
    priority: int
    max_attempts: int
    cron: str
    timezone: str
    every_seconds: int
    jitter_seconds: int
    catch_up: str
    version: int
    created_at: str
    updated_at: str
    last_slot_at: str = ""  # the latest slot fired; empty before the first


class ScheduleListJSON(msgspec.Struct, rename="camel", kw_only=True):
    schedules: list[ScheduleJSON]


# -- shapes the handlers build as plain mappings; described here for /openapi.json ---------


class OkJSON(msgspec.Struct, kw_only=True):
    ok: bool


class StatusJSON(msgspec.Struct, kw_only=True, omit_defaults=True):
    """`{"status": "requeued"}` (abandon), `{"status": "ok"}` (healthz), readiness with `error`."""

    status: str
    error: str = ""


class BatchCreateItemJSON(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One item: exactly one of `task` (created or replayed) and `error`."""

    error: str = ""
    task: TaskJSON | None = None


class BatchCreateJSON(msgspec.Struct, kw_only=True):
    results: list[BatchCreateItemJSON]


class BatchClaimJSON(msgspec.Struct, kw_only=True):
    tasks: list[TaskJSON]


class BatchResultItemJSON(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    """One item: the task id and exactly one of `result` and `error`."""

    task_id: str
    error: str = ""
    result: ResultJSON | None = None


class BatchResultsJSON(msgspec.Struct, kw_only=True):
    results: list[BatchResultItemJSON]


class DlqPageJSON(_Response, kw_only=True):
    command: str
    tasks: list[TaskJSON]
    next_after: str = ""  # the `after` of the next page; absent on the last one


class TaskPageJSON(_Response, kw_only=True):
    """`GET /admin/queues/{command}/tasks`: one page; `nextCursor` absent on the last one."""

    tasks: list[TaskJSON]
    next_cursor: str = ""


class QueueOverviewJSON(msgspec.Struct, rename="camel", kw_only=True):
    command: str
    ready: int
    delayed: int
    in_progress: int
    dead_lettered: int
    completed_1m: int = msgspec.field(name="completed1m")
    failed_1m: int = msgspec.field(name="failed1m")
    completed_1h: int = msgspec.field(name="completed1h")
    failed_1h: int = msgspec.field(name="failed1h")


class OverviewJSON(msgspec.Struct, kw_only=True):
    """`GET /admin/overview`: every command of the caller's tenant, by name."""

    queues: list[QueueOverviewJSON]


# The 409 texts a worker acts on (issue 14): its task was cancelled; a cancel came too late.
TASK_CANCELLED = "task cancelled"
TASK_ALREADY_FINISHED = "task already finished"


class DlqActionJSON(_Response, kw_only=True):
    command: str
    requeued: int | None = None
    purged: int | None = None


class BackupRequest(_Request, kw_only=True):
    dest: str
    shard: int | None = None  # None: every shard


class BackupShardJSON(msgspec.Struct, rename="camel", kw_only=True):
    shard: int
    path: str
    bytes: int
    files: int


class BackupJSON(msgspec.Struct, rename="camel", kw_only=True):
    dest: str
    num_shards: int
    shards: list[BackupShardJSON]


class SubscriptionJSON(msgspec.Struct, rename="camel", kw_only=True):
    expires_at: str
    subscription_id: str


class SubscriptionDetailJSON(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    """One subscription as its owner reads it back; `eventTypes` are command keys or `*`."""

    subscription_id: str
    callback_url: str
    event_types: list[str]
    delivery_mode: str
    min_interval_seconds: int
    created_at: str
    expires_at: str
    group_id: str = ""


class SubscriptionListJSON(msgspec.Struct, rename="camel", kw_only=True):
    subscriptions: list[SubscriptionDetailJSON]
