"""Schedule administration routes: PUT/GET/DELETE one schedule by name, and the tenant's list."""

from __future__ import annotations

import msgspec

from codeq.core.errors import Unavailable
from codeq.core.schedules import Schedule, ScheduleSpec
from codeq.service.container import Services
from codeq.service.schedules import ScheduleService
from codeq.transport.http.asgi import Reply, Request
from codeq.transport.http.errors import json_reply
from codeq.transport.http.render import TimeFormat
from codeq.transport.http.topics import decode_strict
from codeq.wire import http as w

_decoder = msgspec.json.Decoder(w.ScheduleRequest)
_UTC = TimeFormat()  # schedule timestamps are UTC, like topics'


class ScheduleRoutes:
    def __init__(self, services: Services, max_body_bytes: int) -> None:
        self.s = services
        self.max_body = max_body_bytes

    @property
    def _service(self) -> ScheduleService:
        if self.s.schedules is None:
            raise Unavailable("schedules are not available on this server")
        return self.s.schedules

    async def put(self, request: Request) -> Reply:
        principal = self.s.auth.admin(request.header(b"authorization"), request.header(b"x-role"))
        spec = decode_spec(await request.body(self.max_body))
        schedule, created = await self._service.put(principal, request.path_params["scheduleName"], spec)
        return json_reply(render(schedule), 201 if created else 200)

    async def get(self, request: Request) -> Reply:
        principal = self.s.auth.admin(request.header(b"authorization"), request.header(b"x-role"))
        schedule = await self._service.get(principal, request.path_params["scheduleName"])
        return json_reply(render(schedule))

    async def list(self, request: Request) -> Reply:
        principal = self.s.auth.admin(request.header(b"authorization"), request.header(b"x-role"))
        found = await self._service.list(principal)
        return json_reply(w.ScheduleListJSON(schedules=[render(s) for s in found]))

    async def delete(self, request: Request) -> Reply:
        principal = self.s.auth.admin(request.header(b"authorization"), request.header(b"x-role"))
        await self._service.delete(principal, request.path_params["scheduleName"])
        return Reply(204, content_type=b"application/json")


def decode_spec(body: bytes) -> ScheduleSpec:
    """Strict, like the topic body: exact field names, no unknown fields, one JSON object."""
    doc = decode_strict(_decoder, body)
    return ScheduleSpec(
        command=doc.command,
        payload=bytes(doc.payload).decode(),
        priority=doc.priority,
        max_attempts=doc.max_attempts,
        cron=doc.cron,
        timezone=doc.timezone,
        every_seconds=doc.every_seconds,
        jitter_seconds=doc.jitter_seconds,
        catch_up=doc.catch_up,
    )


def render(schedule: Schedule) -> w.ScheduleJSON:
    s = schedule.spec
    return w.ScheduleJSON(
        name=schedule.name,
        tenant_id=schedule.tenant,
        command=s.command,
        payload=msgspec.Raw(s.payload.encode()),
        priority=s.priority,
        max_attempts=s.max_attempts,
        cron=s.cron,
        timezone=s.timezone,
        every_seconds=s.every_seconds,
        jitter_seconds=s.jitter_seconds,
        catch_up=s.catch_up,
        version=schedule.version,
        created_at=_UTC.timestamp(schedule.created_ms),
        updated_at=_UTC.timestamp(schedule.updated_ms),
        last_slot_at=_UTC.timestamp(schedule.last_slot_ms) if schedule.last_slot_ms else "",
    )
