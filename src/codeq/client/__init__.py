"""The codeq Python SDK: producers create tasks, workers run them, admins inspect queues; needs only msgspec.

Everything a user needs is imported from here, and only the names in `__all__` are the
SDK's interface (tests/sdk/test_public_api.py pins the list). The modules behind them are
private: their names start with an underscore and may change without notice.
"""

from codeq.client._admin import (
    Admin,
    AsyncAdmin,
    DlqPage,
    QueueOverview,
    QueueStats,
    Subscription,
    TaskPage,
)
from codeq.client._connect import connect
from codeq.client._errors import (
    BadRequest,
    BatchIncomplete,
    BatchItemError,
    CodeqError,
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    NotInProgress,
    NotOwner,
    PayloadTooLarge,
    RateLimited,
    ResultNotReady,
    ServerError,
    TaskCancelled,
    Unauthorized,
    Unavailable,
)
from codeq.client._execution import WorkerStats
from codeq.client._job import Job
from codeq.client._models import Artifact, Result, ResultSpec, Task, TaskSpec
from codeq.client._outcomes import Abandon, Fail, Nack
from codeq.client._producer import AsyncProducer, Producer
from codeq.client._transport import Transport
from codeq.client._worker import AsyncWorker, Worker, WorkerSettings

__all__ = [
    "Abandon",
    "Admin",
    "Artifact",
    "AsyncAdmin",
    "AsyncProducer",
    "AsyncWorker",
    "BadRequest",
    "BatchIncomplete",
    "BatchItemError",
    "CodeqError",
    "Conflict",
    "ConnectionFailed",
    "DlqPage",
    "Fail",
    "Forbidden",
    "Job",
    "Nack",
    "NotFound",
    "NotInProgress",
    "NotOwner",
    "PayloadTooLarge",
    "Producer",
    "QueueOverview",
    "QueueStats",
    "RateLimited",
    "Result",
    "ResultNotReady",
    "ResultSpec",
    "ServerError",
    "Subscription",
    "Task",
    "TaskCancelled",
    "TaskPage",
    "TaskSpec",
    "Transport",
    "Unauthorized",
    "Unavailable",
    "Worker",
    "WorkerSettings",
    "WorkerStats",
    "connect",
]
