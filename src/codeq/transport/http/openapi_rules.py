"""The rules the services enforce on request fields, written into /openapi.json.

msgspec derives the shapes from the Structs; the ranges, patterns and sizes below are the
services' own checks (core/names.py, core/topics.py, the Policy limits), so a client — or
schemathesis — that follows the document sends requests the server accepts. Breaking one
of these answers the documented 400 (or 422 for topics).
"""

from __future__ import annotations

from typing import Any

from codeq.core.model import Status
from codeq.core.ranges import MAX_PRIORITY, MIN_ATTEMPTS, MIN_PRIORITY, PRIORITY_COUNT
from codeq.core.topics import MAX_CONSUMERS, MAX_RETENTION_SECONDS
from codeq.service.policy import Policy
from codeq.service.tasks import MAX_CLAIM_COMMANDS

COMMAND: dict[str, Any] = {"type": "string", "pattern": r"^[A-Za-z0-9_.:\-]{1,128}$"}
DNS_LABEL = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"}
DATE_TIME = {"type": "string", "format": "date-time"}
URL = {"type": "string", "pattern": r"^https?://[a-z][a-z0-9.\-]{0,62}(:[0-9]{1,5})?(/[A-Za-z0-9/_.\-]*)?$"}
NOT_NULL = {"not": {"type": "null"}, "description": "any JSON value except null"}
RESULT = {"anyOf": [{"type": "object"}, {"type": "null"}], "description": "a JSON object (COMPLETED)"}
_REF = "#/components/schemas/{name}"


def _int(low: int | None = None, high: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    if low is not None:
        schema["minimum"] = low
    if high is not None:
        schema["maximum"] = high
    return schema


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}], "default": None}


def _items(name: str, high: int) -> dict[str, Any]:
    return {"type": "array", "items": {"$ref": _REF.format(name=name)}, "minItems": 1, "maxItems": high}


def rules(p: Policy) -> dict[str, dict[str, dict[str, Any]]]:
    """Component name -> property name -> the schema that replaces msgspec's."""
    create: dict[str, Any] = {
        "command": COMMAND,
        "payload": NOT_NULL,
        "priority": _nullable(_int(MIN_PRIORITY, MAX_PRIORITY)),
        "webhook": _nullable(URL),
        "maxAttempts": _nullable(_int(None, p.max_attempts)),
        "idempotencyKey": _nullable({"type": "string", "maxLength": 256}),
        "runAt": _nullable(DATE_TIME),
        "delaySeconds": _nullable(_int(0, p.max_delay_seconds)),
    }
    commands = _nullable({"type": "array", "items": COMMAND, "maxItems": MAX_CLAIM_COMMANDS})
    result: dict[str, Any] = {
        "status": {"type": "string", "enum": ["COMPLETED", "FAILED"]},
        "result": RESULT,
        "error": _nullable({"type": "string"}),
    }
    return {
        "CreateTaskRequest": create,
        "BatchCreateRequest": {"tasks": _items("CreateTaskRequest", p.max_batch_size)},
        "ClaimRequest": {"commands": commands, "leaseSeconds": _nullable(_int(None, p.max_lease_seconds))},
        "BatchClaimRequest": {
            "count": _int(1, p.max_claim_batch),
            "commands": commands,
            "leaseSeconds": _nullable(_int(None, p.max_lease_seconds)),
        },
        "HeartbeatRequest": {"extendSeconds": _nullable(_int(None, p.max_lease_seconds))},
        "NackRequest": {"delaySeconds": _nullable(_int(0, p.max_delay_seconds))},
        "SubmitResultRequest": result,
        "BatchResultItem": {**result, "taskId": {"type": "string"}},
        "BatchResultsRequest": {"results": _items("BatchResultItem", p.max_batch_size)},
        "CleanupRequest": {"before": _nullable(DATE_TIME)},
        "TaskJSON": {"status": {"type": "string", "enum": [s.value for s in Status]}},
        "ResultJSON": {"status": {"type": "string", "enum": ["COMPLETED", "FAILED", "CANCELLED"]}},
        "TopicPolicyRequest": {
            "priorityTiers": {
                "type": "array",
                "items": _int(MIN_PRIORITY, MAX_PRIORITY),
                "minItems": 1,
                "maxItems": PRIORITY_COUNT,
                "uniqueItems": True,
            },
            "maxAttempts": _int(MIN_ATTEMPTS, p.max_attempts),
            "deadLetterTopicRef": DNS_LABEL,
            "retentionSeconds": _int(0, MAX_RETENTION_SECONDS),
            "maxConsumers": _int(0, MAX_CONSUMERS),
        },
    }


def apply(components: dict[str, Any], p: Policy) -> None:
    for name, properties in rules(p).items():
        target = components[name]["properties"]
        for prop, schema in properties.items():
            if prop not in target:
                raise KeyError(f"{name}.{prop} is not a field of the Struct")  # a renamed field
            target[prop] = schema
