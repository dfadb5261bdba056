"""Topic administration routes (spec 02 §4.15, routes 18-20): strict bodies, 201/200/204."""

from __future__ import annotations

from typing import TypeVar

import msgspec

from codeq.core.errors import InvalidInput
from codeq.core.topics import Topic, TopicPolicy
from codeq.service.container import Services
from codeq.transport.http.asgi import Reply, Request
from codeq.transport.http.errors import json_reply
from codeq.transport.http.render import TimeFormat
from codeq.transport.json_input import check_json
from codeq.wire import http as w

_decoder = msgspec.json.Decoder(w.TopicPolicyRequest)
BodyT = TypeVar("BodyT")
_UTC = TimeFormat()  # topic timestamps are UTC whatever the server's zone (spec 02 §4.15)


class TopicRoutes:
    def __init__(self, services: Services, max_body_bytes: int) -> None:
        self.s = services
        self.max_body = max_body_bytes

    async def put(self, request: Request) -> Reply:
        principal = self.s.auth.admin(request.header(b"authorization"), request.header(b"x-role"))
        policy = decode_policy(await request.body(self.max_body))
        topic, created = await self.s.topics.put(principal, request.path_params["topicName"], policy)
        return json_reply(render(topic), 201 if created else 200)

    async def get(self, request: Request) -> Reply:
        principal = self.s.auth.admin(request.header(b"authorization"), request.header(b"x-role"))
        return json_reply(render(await self.s.topics.get(principal, request.path_params["topicName"])))

    async def delete(self, request: Request) -> Reply:
        principal = self.s.auth.admin(request.header(b"authorization"), request.header(b"x-role"))
        # Checked before the name, as in the reference: a delete must say what it means.
        if request.query("deletionPolicy") != "Delete":
            raise InvalidInput("deletionPolicy=Delete is required", field="deletionPolicy")
        await self.s.topics.delete(principal, request.path_params["topicName"])
        return Reply(204, content_type=b"application/json")


def decode_strict(decoder: msgspec.json.Decoder[BodyT], body: bytes) -> BodyT:
    """An admin body decoded strictly (topics, schedules): one JSON object, exact field names
    and types, no unknown fields; every refusal a 400 naming the field where there is one."""
    if not body.strip():
        raise InvalidInput("invalid request body: EOF")
    check_json(body, "invalid request body", envelope=1)
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"invalid request body: {reason_of(exc)}", field=field_of(exc)) from None
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"invalid request body: {reason_of(exc)}") from None


def decode_policy(body: bytes) -> TopicPolicy:
    """Strict: exact field names, no unknown fields, one JSON object, every type exact."""
    doc = decode_strict(_decoder, body)
    return TopicPolicy(
        priority_tiers=tuple(doc.priority_tiers),
        max_attempts=doc.max_attempts,
        dead_letter_topic_ref=doc.dead_letter_topic_ref,
        retention_seconds=doc.retention_seconds,
        max_consumers=doc.max_consumers,
    )


def reason_of(exc: Exception) -> str:
    text = str(exc)
    if text.startswith("Object contains unknown field `"):
        return 'json: unknown field "' + text.split("`", 2)[1] + '"'
    if "trailing characters" in text:
        return "only one JSON object is allowed"
    return text


def field_of(exc: msgspec.ValidationError) -> str | None:
    text = str(exc)
    if "missing required field `" in text:
        return text.split("missing required field `", 1)[1].split("`", 1)[0]
    if "unknown field `" in text:
        return text.split("unknown field `", 1)[1].split("`", 1)[0]
    if "at `$." in text:
        return text.split("at `$.", 1)[1].split("`", 1)[0].split("[", 1)[0]
    return None


def render(topic: Topic) -> w.TopicJSON:
    p = topic.policy
    return w.TopicJSON(
        topic_id=topic.topic_id,
        tenant_id=topic.tenant,
        topic_name=topic.name,
        policy=w.TopicPolicyJSON(
            priority_tiers=list(p.priority_tiers),
            max_attempts=p.max_attempts,
            dead_letter_topic_ref=p.dead_letter_topic_ref,
            retention_seconds=p.retention_seconds,
            max_consumers=p.max_consumers,
        ),
        version=topic.version,
        created_at=_UTC.timestamp(topic.created_ms),
        updated_at=_UTC.timestamp(topic.updated_ms),
    )
