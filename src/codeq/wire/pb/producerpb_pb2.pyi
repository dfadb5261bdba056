import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Hello(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: str
    def __init__(self, token: _Optional[str] = ...) -> None: ...

class CreateTask(_message.Message):
    __slots__ = ("seq", "command", "payload", "priority", "webhook", "max_attempts", "idempotency_key", "run_at", "delay_seconds", "trace_parent", "trace_state")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    RUN_AT_FIELD_NUMBER: _ClassVar[int]
    DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TRACE_PARENT_FIELD_NUMBER: _ClassVar[int]
    TRACE_STATE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    command: str
    payload: bytes
    priority: int
    webhook: str
    max_attempts: int
    idempotency_key: str
    run_at: _timestamp_pb2.Timestamp
    delay_seconds: int
    trace_parent: str
    trace_state: str
    def __init__(self, seq: _Optional[int] = ..., command: _Optional[str] = ..., payload: _Optional[bytes] = ..., priority: _Optional[int] = ..., webhook: _Optional[str] = ..., max_attempts: _Optional[int] = ..., idempotency_key: _Optional[str] = ..., run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delay_seconds: _Optional[int] = ..., trace_parent: _Optional[str] = ..., trace_state: _Optional[str] = ...) -> None: ...

class CreateTaskBatch(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[CreateTask]
    def __init__(self, tasks: _Optional[_Iterable[_Union[CreateTask, _Mapping]]] = ...) -> None: ...

class ProducerEvent(_message.Message):
    __slots__ = ("hello", "create", "create_batch")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    CREATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_BATCH_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    create: CreateTask
    create_batch: CreateTaskBatch
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., create: _Optional[_Union[CreateTask, _Mapping]] = ..., create_batch: _Optional[_Union[CreateTaskBatch, _Mapping]] = ...) -> None: ...

class HelloAck(_message.Message):
    __slots__ = ("tenant_id", "subject")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    subject: str
    def __init__(self, tenant_id: _Optional[str] = ..., subject: _Optional[str] = ...) -> None: ...

class CreateAck(_message.Message):
    __slots__ = ("seq", "ok", "task_id", "error_message")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    ok: bool
    task_id: str
    error_message: str
    def __init__(self, seq: _Optional[int] = ..., ok: _Optional[bool] = ..., task_id: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class ServerError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class CreateAckBatch(_message.Message):
    __slots__ = ("acks",)
    ACKS_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[CreateAck]
    def __init__(self, acks: _Optional[_Iterable[_Union[CreateAck, _Mapping]]] = ...) -> None: ...

class ServerEvent(_message.Message):
    __slots__ = ("hello_ack", "create_ack", "error", "create_ack_batch")
    HELLO_ACK_FIELD_NUMBER: _ClassVar[int]
    CREATE_ACK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATE_ACK_BATCH_FIELD_NUMBER: _ClassVar[int]
    hello_ack: HelloAck
    create_ack: CreateAck
    error: ServerError
    create_ack_batch: CreateAckBatch
    def __init__(self, hello_ack: _Optional[_Union[HelloAck, _Mapping]] = ..., create_ack: _Optional[_Union[CreateAck, _Mapping]] = ..., error: _Optional[_Union[ServerError, _Mapping]] = ..., create_ack_batch: _Optional[_Union[CreateAckBatch, _Mapping]] = ...) -> None: ...
