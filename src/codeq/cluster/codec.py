"""What crosses the channel between shard processes: commands, outcomes, errors, read answers.

Everything is msgpack (msgspec), never pickle: the peer at the other end of an address could
one day be a process on another node. A command names its outcome type (`Command[OutcomeT]`),
so the receiver decodes an outcome by the command it sent.
"""

from __future__ import annotations

from functools import cache
from typing import Any, get_args

import msgspec

from codeq.core import errors
from codeq.core.errors import CodeqError
from codeq.engine import commands as c
from codeq.engine.outcomes import BatchApplied, Completed, Created

_encoder = msgspec.msgpack.Encoder()
_BATCH_TYPES: dict[str, type[Created] | type[Completed]] = {"created": Created, "completed": Completed}


def encode(value: object) -> bytes:
    return _encoder.encode(value)


@cache
def outcome_type(command: type[c.Command[Any]]) -> type:
    """The outcome class a command's apply returns, read off its `Command[OutcomeT]` base."""
    for base in getattr(command, "__orig_bases__", ()):
        args = get_args(base)
        if args:
            outcome: type = args[0]
            return outcome
    raise TypeError(f"{command.__name__} names no outcome type")


@cache
def _decoder(kind: Any) -> msgspec.msgpack.Decoder[Any]:
    return msgspec.msgpack.Decoder(kind)


def decode(raw: bytes, kind: Any) -> Any:
    return _decoder(kind).decode(raw)


def encode_outcome(outcome: object) -> bytes:
    if isinstance(outcome, BatchApplied):  # items mix outcomes and errors: each says which it is
        return encode([_batch_item(item) for item in outcome.items])
    return encode(outcome)


def decode_outcome(command: type[c.Command[Any]], raw: bytes) -> object:
    kind = outcome_type(command)
    if kind is not BatchApplied:
        return decode(raw, kind)
    items: list[Created | Completed | CodeqError] = []
    for tag, body in decode(raw, list[tuple[str, bytes]]):
        items.append(decode_error(body) if tag == "error" else decode(body, _BATCH_TYPES[tag]))
    return BatchApplied(items)


def _batch_item(item: Created | Completed | CodeqError) -> tuple[str, bytes]:
    if isinstance(item, CodeqError):
        return "error", encode_error(item)
    return ("created" if isinstance(item, Created) else "completed"), encode(item)


def encode_error(exc: BaseException) -> bytes:
    """A CodeqError by class name and attributes; anything else as an internal error."""
    if isinstance(exc, CodeqError):
        return encode((type(exc).__name__, vars(exc)))
    return encode(("CodeqError", {"template": f"internal error in a shard process: {exc!r}"}))


def decode_error(raw: bytes) -> CodeqError:
    name, attributes = decode(raw, tuple[str, dict[str, Any]])
    kind = _error_classes().get(name, CodeqError)
    exc = kind.__new__(kind)
    exc.__dict__.update(attributes)
    exc.__dict__.setdefault("field", None)
    exc.__dict__.setdefault("template", kind.code)
    exc.__dict__.setdefault("message", exc.template)
    Exception.__init__(exc, exc.message)
    return exc


@cache
def _error_classes() -> dict[str, type[CodeqError]]:
    found: dict[str, type[CodeqError]] = {}
    todo: list[type[CodeqError]] = [errors.CodeqError]
    while todo:
        kind = todo.pop()
        found[kind.__name__] = kind
        todo.extend(kind.__subclasses__())
    return found
