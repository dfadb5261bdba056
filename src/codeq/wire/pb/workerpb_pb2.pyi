import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Task(_message.Message):
    __slots__ = ("id", "command", "payload", "priority", "webhook", "max_attempts", "status", "worker_id", "lease_until", "attempts", "tenant_id", "created_at", "updated_at", "lease_token", "trace_parent", "trace_state")
    ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_UNTIL_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TRACE_PARENT_FIELD_NUMBER: _ClassVar[int]
    TRACE_STATE_FIELD_NUMBER: _ClassVar[int]
    id: str
    command: str
    payload: bytes
    priority: int
    webhook: str
    max_attempts: int
    status: str
    worker_id: str
    lease_until: str
    attempts: int
    tenant_id: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    lease_token: int
    trace_parent: str
    trace_state: str
    def __init__(self, id: _Optional[str] = ..., command: _Optional[str] = ..., payload: _Optional[bytes] = ..., priority: _Optional[int] = ..., webhook: _Optional[str] = ..., max_attempts: _Optional[int] = ..., status: _Optional[str] = ..., worker_id: _Optional[str] = ..., lease_until: _Optional[str] = ..., attempts: _Optional[int] = ..., tenant_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lease_token: _Optional[int] = ..., trace_parent: _Optional[str] = ..., trace_state: _Optional[str] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("token", "worker_id")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    token: str
    worker_id: str
    def __init__(self, token: _Optional[str] = ..., worker_id: _Optional[str] = ...) -> None: ...

class Ready(_message.Message):
    __slots__ = ("commands", "lease_seconds", "count", "wait_seconds")
    COMMANDS_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    commands: _containers.RepeatedScalarFieldContainer[str]
    lease_seconds: int
    count: int
    wait_seconds: int
    def __init__(self, commands: _Optional[_Iterable[str]] = ..., lease_seconds: _Optional[int] = ..., count: _Optional[int] = ..., wait_seconds: _Optional[int] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("task_id", "status", "result_json", "error", "lease_token")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    status: str
    result_json: bytes
    error: str
    lease_token: int
    def __init__(self, task_id: _Optional[str] = ..., status: _Optional[str] = ..., result_json: _Optional[bytes] = ..., error: _Optional[str] = ..., lease_token: _Optional[int] = ...) -> None: ...

class Nack(_message.Message):
    __slots__ = ("task_id", "delay_seconds", "reason", "lease_token")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    delay_seconds: int
    reason: str
    lease_token: int
    def __init__(self, task_id: _Optional[str] = ..., delay_seconds: _Optional[int] = ..., reason: _Optional[str] = ..., lease_token: _Optional[int] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("task_id", "extend_seconds", "lease_token")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    EXTEND_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    extend_seconds: int
    lease_token: int
    def __init__(self, task_id: _Optional[str] = ..., extend_seconds: _Optional[int] = ..., lease_token: _Optional[int] = ...) -> None: ...

class Abandon(_message.Message):
    __slots__ = ("task_id", "lease_token")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    lease_token: int
    def __init__(self, task_id: _Optional[str] = ..., lease_token: _Optional[int] = ...) -> None: ...

class ResultBatch(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[Result]
    def __init__(self, results: _Optional[_Iterable[_Union[Result, _Mapping]]] = ...) -> None: ...

class WorkerEvent(_message.Message):
    __slots__ = ("hello", "ready", "result", "nack", "heartbeat", "abandon", "result_batch")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    NACK_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    ABANDON_FIELD_NUMBER: _ClassVar[int]
    RESULT_BATCH_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    ready: Ready
    result: Result
    nack: Nack
    heartbeat: Heartbeat
    abandon: Abandon
    result_batch: ResultBatch
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., ready: _Optional[_Union[Ready, _Mapping]] = ..., result: _Optional[_Union[Result, _Mapping]] = ..., nack: _Optional[_Union[Nack, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., abandon: _Optional[_Union[Abandon, _Mapping]] = ..., result_batch: _Optional[_Union[ResultBatch, _Mapping]] = ...) -> None: ...

class HelloAck(_message.Message):
    __slots__ = ("worker_id", "tenant_id")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    tenant_id: str
    def __init__(self, worker_id: _Optional[str] = ..., tenant_id: _Optional[str] = ...) -> None: ...

class TaskAssignment(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: Task
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ...) -> None: ...

class TaskBatch(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ...) -> None: ...

class ResultAckBatch(_message.Message):
    __slots__ = ("acks",)
    ACKS_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[ResultAck]
    def __init__(self, acks: _Optional[_Iterable[_Union[ResultAck, _Mapping]]] = ...) -> None: ...

class ResultAck(_message.Message):
    __slots__ = ("task_id", "ok", "error_message")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    ok: bool
    error_message: str
    def __init__(self, task_id: _Optional[str] = ..., ok: _Optional[bool] = ..., error_message: _Optional[str] = ...) -> None: ...

class HeartbeatAck(_message.Message):
    __slots__ = ("task_id", "ok", "error_message")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    ok: bool
    error_message: str
    def __init__(self, task_id: _Optional[str] = ..., ok: _Optional[bool] = ..., error_message: _Optional[str] = ...) -> None: ...

class NackAck(_message.Message):
    __slots__ = ("task_id", "ok", "error_message", "applied_delay_seconds", "dlq")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    APPLIED_DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DLQ_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    ok: bool
    error_message: str
    applied_delay_seconds: int
    dlq: bool
    def __init__(self, task_id: _Optional[str] = ..., ok: _Optional[bool] = ..., error_message: _Optional[str] = ..., applied_delay_seconds: _Optional[int] = ..., dlq: _Optional[bool] = ...) -> None: ...

class AbandonAck(_message.Message):
    __slots__ = ("task_id", "ok", "error_message")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    ok: bool
    error_message: str
    def __init__(self, task_id: _Optional[str] = ..., ok: _Optional[bool] = ..., error_message: _Optional[str] = ...) -> None: ...

class ServerError(_message.Message):
    __slots__ = ("message", "code")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    message: str
    code: str
    def __init__(self, message: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class ServerEvent(_message.Message):
    __slots__ = ("hello_ack", "task", "result_ack", "heartbeat_ack", "nack_ack", "abandon_ack", "error", "task_batch", "result_ack_batch")
    HELLO_ACK_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    RESULT_ACK_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_ACK_FIELD_NUMBER: _ClassVar[int]
    NACK_ACK_FIELD_NUMBER: _ClassVar[int]
    ABANDON_ACK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TASK_BATCH_FIELD_NUMBER: _ClassVar[int]
    RESULT_ACK_BATCH_FIELD_NUMBER: _ClassVar[int]
    hello_ack: HelloAck
    task: TaskAssignment
    result_ack: ResultAck
    heartbeat_ack: HeartbeatAck
    nack_ack: NackAck
    abandon_ack: AbandonAck
    error: ServerError
    task_batch: TaskBatch
    result_ack_batch: ResultAckBatch
    def __init__(self, hello_ack: _Optional[_Union[HelloAck, _Mapping]] = ..., task: _Optional[_Union[TaskAssignment, _Mapping]] = ..., result_ack: _Optional[_Union[ResultAck, _Mapping]] = ..., heartbeat_ack: _Optional[_Union[HeartbeatAck, _Mapping]] = ..., nack_ack: _Optional[_Union[NackAck, _Mapping]] = ..., abandon_ack: _Optional[_Union[AbandonAck, _Mapping]] = ..., error: _Optional[_Union[ServerError, _Mapping]] = ..., task_batch: _Optional[_Union[TaskBatch, _Mapping]] = ..., result_ack_batch: _Optional[_Union[ResultAckBatch, _Mapping]] = ...) -> None: ...
