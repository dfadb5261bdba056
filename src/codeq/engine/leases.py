"""Who may act on a leased task: the owning worker and, when it presents one, the current lease token."""

from __future__ import annotations

from codeq.core.errors import NotOwner, StaleLease, WrongState
from codeq.core.model import Status, Task
from codeq.engine import commands as c

# The commands that act on a task under a lease.
LeaseCommand = c.Heartbeat | c.Abandon | c.Nack | c.Complete


def check_held(task: Task, cmd: LeaseCommand) -> None:
    """Raise unless `cmd`'s sender still holds `task`'s lease.

    A lease token names one claim (the task's `lease_epoch` when it was claimed): once that
    lease has moved on (expired, handed back, claimed again or finished), a holder presenting
    it is told it no longer owns the task, never let through. Without a token (0) only the
    worker is checked, as codeQ does.
    """
    if cmd.lease_token and (task.status is not Status.IN_PROGRESS or task.lease_epoch != cmd.lease_token):
        raise StaleLease()
    if task.status is not Status.IN_PROGRESS:
        raise WrongState("not-in-progress")
    if task.worker_id != cmd.worker_id:
        raise NotOwner()
