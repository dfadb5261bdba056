"""The outcomes of one claimed batch, submitted together: once every task is decided, or after a linger."""

from __future__ import annotations

import asyncio
import logging

from codeq.client._errors import CodeqError
from codeq.client._models import Result, ResultSpec
from codeq.client._transport import Transport

log = logging.getLogger("codeq.client._worker")

# How long a finished task's result may wait for the rest of its batch: long enough for
# handlers finishing together to share one request, short enough not to hold slow ones back.
RESULT_LINGER_SECONDS = 0.02


class ResultBatch:
    """Collects the results of the tasks of one claim and sends them in one `submit_results`.

    Every task of the batch is decided once: by its first `submit()`, or by `decided()` when
    it has no result to send (nacked, abandoned, lease lost). Results are sent as soon as no
    task is still undecided, or `linger` seconds after the first one waiting. A result
    submitted again (a retry) goes out on the next such flush.
    """

    def __init__(self, transport: Transport, size: int, linger: float = RESULT_LINGER_SECONDS) -> None:
        self._transport = transport
        self._undecided = size
        self._linger = linger
        self._waiting: list[tuple[ResultSpec, asyncio.Future[Result]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._submitted: set[str] = set()  # tasks whose first submit decided them

    def decided(self) -> None:
        self._undecided -= 1
        if self._undecided <= 0 and self._waiting:
            self._flush()

    def submit(self, item: ResultSpec) -> asyncio.Future[Result]:
        """Resolves to the stored result, or fails with the error the server answered for this item."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._waiting.append((item, future))
        if item.task_id not in self._submitted:
            # Counted here, not before: the last task's own result must ride in the same flush.
            self._submitted.add(item.task_id)
            self._undecided -= 1
        if self._undecided <= 0:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._linger, self._flush)
        return future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting = self._waiting, []
        if waiting:
            sending = asyncio.ensure_future(self._send(waiting))
            self._sending.add(sending)  # held so the task is not collected mid-flight
            sending.add_done_callback(self._sending.discard)

    async def _send(self, waiting: list[tuple[ResultSpec, asyncio.Future[Result]]]) -> None:
        try:
            outcomes: list[Result | CodeqError] = await self._transport.submit_results(
                [item for item, _ in waiting]
            )
        except Exception as exc:  # every item shares the failure; each caller decides on retries
            outcomes = [exc if isinstance(exc, CodeqError) else CodeqError(repr(exc))] * len(waiting)
            if not isinstance(exc, CodeqError):
                log.error("submitting results failed", exc_info=exc)
        for (_, future), outcome in zip(waiting, outcomes, strict=True):
            if future.done():  # its caller gave up
                continue
            if isinstance(outcome, CodeqError):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
