"""The services a transport can call, bundled by the composition root."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from codeq.auth.edge import Authenticator
from codeq.replication.topology import GroupStatus
from codeq.service.admin import AdminService
from codeq.service.backup import BackupService
from codeq.service.dlq import DlqService
from codeq.service.membership import MembershipService
from codeq.service.results import ResultService
from codeq.service.schedules import ScheduleService
from codeq.service.subscriptions import SubscriptionService
from codeq.service.tasks import TaskService
from codeq.service.topics import TopicService


@dataclass(slots=True)
class Services:
    auth: Authenticator
    tasks: TaskService
    results: ResultService
    admin: AdminService
    ready: Callable[[], tuple[bool, str]]  # (ready?, why not)
    dlq: DlqService
    backup: BackupService
    subscriptions: SubscriptionService
    topics: TopicService
    raft_status: Callable[[], list[GroupStatus]] = field(default=lambda: [])  # empty: raft is off
    transfer_leader: Callable[[int, str], Awaitable[str]] | None = None  # (shard, to node) -> leader
    membership: MembershipService | None = None  # None: raft is off
    schedules: ScheduleService | None = None  # None: a server assembled without the runner
