"""One long-lived bidirectional stream shared by concurrent callers: opened lazily, reopened after a break."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from google.protobuf.message import Message

from codeq.client._errors import CodeqError, ConnectionFailed, PayloadTooLarge, Unavailable
from codeq.client._pb import error_from_code

log = logging.getLogger("codeq.client.stream")
T = TypeVar("T")
# Room for the event and batch framing around the items of one message.
_FRAMING_BYTES = 1024


class Call(Protocol):
    """One open RPC. Every method raises `CodeqError`s only."""

    async def write(self, event: Message | bytes) -> None:
        """Send one event, or its encoding."""
        ...

    async def read(self) -> Message | None:
        """The next server event; None when the server ended the stream cleanly."""
        ...

    async def done_writing(self) -> None: ...

    def cancel(self) -> None: ...

    async def aclose(self) -> None:
        """Cancel the RPC if it still runs and release its connection."""
        ...


Dial = Callable[[], Awaitable[Call]]


class Answers:
    """The answers one sent event waits for, in the order of its keys: one future for them all,
    done when the last one arrives (a batch of 100 results is one wait, not 100)."""

    __slots__ = ("_missing", "_values", "future", "keys")

    def __init__(self, keys: Sequence[Hashable], future: asyncio.Future[list[Any]]) -> None:
        self.keys = keys
        self.future = future
        self._values: list[Any] = [None] * len(keys)
        self._missing = len(keys)
        if not keys:
            future.set_result(self._values)  # nothing to wait for

    def fill(self, index: int, value: Any) -> bool:
        """Place one answer; False when its caller gave up (or the stream failed it) meanwhile."""
        if self.future.done():
            return False
        self._values[index] = value
        self._missing -= 1
        if self._missing == 0:
            self.future.set_result(self._values)
        return True

    def fail(self, error: BaseException) -> bool:
        if self.future.done():
            return False
        self.future.set_exception(error)
        self.future.exception()  # marked retrieved: its caller may be gone
        return True


Waiter = tuple[Answers, int]  # whose answer, and which of its answers


class Waiters:
    """Callers waiting for answers, oldest first per key. A waiter whose caller gave up stays
    queued, done, so that the answer meant for it is not handed to the next one.

    A key mostly has one waiter at a time (task ids, seqs): it is then stored as is, and a
    queue is made only for a key that repeats (the oldest first)."""

    def __init__(self) -> None:
        self._queues: dict[Hashable, Waiter | deque[Waiter]] = {}

    def expect(self, keys: Sequence[Hashable]) -> Answers:
        """Wait for one answer per key (a key may repeat: its answers come in order)."""
        answers = Answers(keys, asyncio.get_running_loop().create_future())
        queues = self._queues
        for index, key in enumerate(keys):
            found = queues.get(key)
            if found is None:
                queues[key] = (answers, index)
            elif isinstance(found, deque):
                found.append((answers, index))
            else:
                queues[key] = deque((found, (answers, index)))
        return answers

    def resolve(self, key: Hashable, value: Any) -> bool:
        """Hand `value` to the oldest waiter of `key`; False when nobody was waiting for it."""
        found = self._pop(key)
        return found is not None and found[0].fill(found[1], value)

    def reject(self, key: Hashable, error: BaseException) -> bool:
        """Fail the oldest waiter of `key` (and the rest of its event's answers with it)."""
        found = self._pop(key)
        return found is not None and found[0].fail(error)

    def discard(self, answers: Answers) -> None:
        """Forget answers whose request never went out (none will come for them)."""
        for key in set(answers.keys):
            kept = [waiter for waiter in self._waiting(key) if waiter[0] is not answers]
            if not kept:
                self._queues.pop(key, None)
            else:
                self._queues[key] = kept[0] if len(kept) == 1 else deque(kept)
        answers.future.cancel()

    def fail_all(self, error: CodeqError) -> None:
        for key in list(self._queues):
            for answers, _ in self._waiting(key):
                answers.fail(error)
        self._queues.clear()

    def _waiting(self, key: Hashable) -> list[Waiter]:
        found = self._queues.get(key)
        if found is None:
            return []
        return list(found) if isinstance(found, deque) else [found]

    def _pop(self, key: Hashable) -> Waiter | None:
        found = self._queues.get(key)
        if found is None:
            return None
        if not isinstance(found, deque):
            del self._queues[key]
            return found
        waiter = found.popleft()
        if not found:
            del self._queues[key]
        return waiter


class Stream(ABC):
    """A stream opened on first use with a hello exchange, then read by one task that hands
    each server event to `dispatch`. When it breaks (or an answer is overdue) every waiting
    caller fails with the cause, and the next call opens a new one."""

    def __init__(self, dial: Dial, timeout: float, max_message_bytes: int) -> None:
        self.timeout = timeout
        self.max_message_bytes = max_message_bytes
        self.waiters = Waiters()
        self._dial = dial
        self._call: Call | None = None
        self._reader: asyncio.Task[None] | None = None
        self._opening = asyncio.Lock()
        self._writing = asyncio.Lock()

    @abstractmethod
    def hello(self) -> Message:
        """The first event of every stream."""

    @abstractmethod
    def accept_hello(self, event: Message) -> None:
        """Check the server's first answer; raise the error it carries if it refused."""

    @abstractmethod
    def dispatch(self, event: Message) -> None:
        """Hand one server event to whoever waits for it."""

    async def exchange(self, event: Message | bytes, keys: Sequence[Hashable], wait: float = 0) -> list[Any]:
        """Send `event` (or its encoding) and return one answer per key, in order; the waiters
        are registered just before it goes out. Waits `timeout` (plus `wait`) for them, then
        gives the stream up. Refused before sending when it exceeds `max_message_bytes`."""
        data = event if isinstance(event, bytes) else event.SerializeToString()
        if len(data) > self.max_message_bytes:
            raise PayloadTooLarge(f"the message exceeds {self.max_message_bytes} bytes")
        call = await self._live()
        answers = self.waiters.expect(keys)
        try:
            await self._write(call, data)
        except BaseException:
            self.waiters.discard(answers)
            raise
        try:
            done, _ = await asyncio.wait((answers.future,), timeout=self.timeout + wait)
        except asyncio.CancelledError:
            answers.future.cancel()
            raise
        if not done:
            error = ConnectionFailed(f"no answer within {self.timeout + wait:.0f}s", request_sent=True)
            self._broken(call, error)
            answers.fail(error)  # failed already, unless this stream had been replaced meanwhile
        return answers.future.result()

    async def send_packed(
        self,
        items: Sequence[T],
        send_group: Callable[[Sequence[T]], Awaitable[list[Any]]],
        size_of: Callable[[T], int],
    ) -> list[Any]:
        """Send `items` in as few messages as fit; one answer per item, in order. A batch that
        fits one message (the usual case) is encoded once; a larger one goes in groups sized
        item by item with `size_of`, and an item too large alone is refused before sending:
        its answer is the `PayloadTooLarge`."""
        if not items:
            return []
        try:
            return await send_group(items)
        except PayloadTooLarge as exc:
            if len(items) <= 1:
                return [exc] * len(items)
        answers: list[Any] = []
        for group in self.pack(items, size_of):
            try:
                answers += await send_group(group)
            except PayloadTooLarge as exc:
                answers += [exc] * len(group)
        return answers

    def hello_ack(self, event: Message) -> Any:
        """The HelloAck in the server's first answer; raise what it says if it refused."""
        answer: Any = event  # either package's ServerEvent: both have hello_ack and error
        kind = answer.WhichOneof("event")
        if kind == "hello_ack":
            return answer.hello_ack
        if kind == "error":
            raise error_from_code(answer.error.code, answer.error.message)
        raise ConnectionFailed(f"expected a HelloAck, got {kind}", request_sent=False)

    def pack(self, items: Sequence[T], size_of: Callable[[T], int]) -> Iterable[list[T]]:
        """`items` in groups that each fit one message; an item too large alone is a group of one
        (which `exchange` refuses with `PayloadTooLarge`)."""
        budget = self.max_message_bytes - _FRAMING_BYTES
        group: list[T] = []
        used = 0
        for item in items:
            size = size_of(item) + 8  # the field's tag and length prefix
            if group and used + size > budget:
                yield group
                group, used = [], 0
            group.append(item)
            used += size
        if group:
            yield group

    async def aclose(self) -> None:
        """Half-close the stream, let the server answer what is in flight, then release it."""
        call, reader = self._call, self._reader
        if call is not None and reader is not None:
            with contextlib.suppress(CodeqError):
                await call.done_writing()
            done, _ = await asyncio.wait((reader,), timeout=self.timeout)
            if not done:
                self._broken(call, ConnectionFailed("the stream was closed", request_sent=True))
        if reader is not None:
            await asyncio.wait((reader,))  # it releases the connection on its way out

    async def _live(self) -> Call:
        call = self._call
        if call is not None:
            return call
        async with self._opening:
            if self._call is None:
                self._call = await self._open()
                self._reader = asyncio.ensure_future(self._read(self._call))
            return self._call

    async def _open(self) -> Call:
        call = await self._dial()
        try:
            await call.write(self.hello())
            first = await asyncio.wait_for(call.read(), self.timeout)
            if first is None:
                raise ConnectionFailed("the server ended the stream at hello", request_sent=False)
            self.accept_hello(first)
        except BaseException as exc:
            await call.aclose()
            if isinstance(exc, TimeoutError):
                raise ConnectionFailed("no answer to hello", request_sent=False) from exc
            if isinstance(exc, ConnectionFailed | Unavailable):
                # Nothing of the caller's went out yet, so any caller may try again (a not-leader
                # answer has pointed the next attempt at the leader).
                raise ConnectionFailed(exc.message, request_sent=False) from exc
            raise
        return call

    async def _write(self, call: Call, event: Message | bytes) -> None:
        async with self._writing:  # one write at a time on a gRPC call
            if call is not self._call:
                raise ConnectionFailed("the stream broke", request_sent=False)
            try:
                await call.write(event)
            except CodeqError:
                self._broken(call, ConnectionFailed("the stream broke", request_sent=True))
                raise

    async def _read(self, call: Call) -> None:
        error: CodeqError = ConnectionFailed("the server ended the stream", request_sent=True)
        try:
            while (event := await call.read()) is not None:
                self.dispatch(event)
        except CodeqError as exc:
            error = exc
        except Exception as exc:  # a bug in dispatch must not leave callers waiting forever
            log.exception("stream reader failed")
            error = ConnectionFailed(f"stream reader failed: {exc!r}", request_sent=True)
        finally:
            self._broken(call, error)
            await asyncio.shield(call.aclose())

    def _broken(self, call: Call, error: CodeqError) -> None:
        if call is not self._call:
            return
        log.info("stream ended: %s", error)
        self._call = None
        call.cancel()
        self.waiters.fail_all(error)
