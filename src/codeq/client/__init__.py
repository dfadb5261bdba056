"""The codeq Python SDK: producers create tasks, workers run them; needs only msgspec."""

from codeq.client._execution import WorkerStats
from codeq.client.errors import (
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
    Unauthorized,
    Unavailable,
)
from codeq.client.job import Job
from codeq.client.models import Artifact, Result, ResultSpec, Task, TaskSpec
from codeq.client.outcomes import Abandon, Fail, Nack
from codeq.client.producer import AsyncProducer, Producer
from codeq.client.transport import Transport
from codeq.client.worker import AsyncWorker, Worker

__all__ = [
    "Abandon",
    "Artifact",
    "AsyncProducer",
    "AsyncWorker",
    "BadRequest",
    "BatchIncomplete",
    "BatchItemError",
    "CodeqError",
    "Conflict",
    "ConnectionFailed",
    "Fail",
    "Forbidden",
    "Job",
    "Nack",
    "NotFound",
    "NotInProgress",
    "NotOwner",
    "PayloadTooLarge",
    "Producer",
    "RateLimited",
    "Result",
    "ResultNotReady",
    "ResultSpec",
    "ServerError",
    "Task",
    "TaskSpec",
    "Transport",
    "Unauthorized",
    "Unavailable",
    "Worker",
    "WorkerStats",
]
