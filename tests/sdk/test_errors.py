"""Status and error text to typed errors; which failures a retry may repeat."""

from __future__ import annotations

import pytest

from codeq.client import _errors as e
from codeq.client._retry import Backoff, RetryPolicy, is_transient, retried, with_retries


@pytest.mark.parametrize(
    ("status", "text", "cls"),
    [
        (400, "invalid command", e.BadRequest),
        (401, "invalid token", e.Unauthorized),
        (403, "missing scope", e.Forbidden),
        (403, "not-owner", e.NotOwner),
        (404, "not found", e.NotFound),
        (404, "result not found", e.ResultNotReady),
        (409, "conflict", e.Conflict),
        (409, "not-in-progress", e.NotInProgress),
        (413, "payload exceeds 65536 bytes", e.PayloadTooLarge),
        (429, "rate limit exceeded", e.RateLimited),
        (500, "internal error", e.ServerError),
        (502, "bad gateway", e.ServerError),
        (503, "no leader available", e.Unavailable),
        (405, "method not allowed", e.CodeqError),
    ],
)
def test_status_and_text_pick_the_class(status: int, text: str, cls: type[e.CodeqError]) -> None:
    error = e.error_from_response(status, f'{{"error":"{text}","field":"command"}}'.encode())
    assert type(error) is cls
    assert error.status == status and error.message == text and error.field == "command"
    assert str(error) == f"{status} {text}"


def test_retry_after_is_read_from_the_header() -> None:
    limited = e.error_from_response(429, b'{"error":"rate limit exceeded"}', "3")
    assert isinstance(limited, e.RateLimited) and limited.retry_after == 3.0
    assert e.error_from_response(503, b'{"error":"x"}', "Wed, 21 Oct 2015 07:28:00 GMT").retry_after is None


def test_a_body_that_is_not_our_json_still_gives_a_message() -> None:
    error = e.error_from_response(502, b"<html>Bad Gateway</html>")
    assert isinstance(error, e.ServerError) and error.message == "<html>Bad Gateway</html>"
    assert e.error_from_response(500, b"").message == "HTTP 500"


def test_only_failures_that_cannot_duplicate_work_are_retried_for_creates() -> None:
    never_sent = e.ConnectionFailed("refused", request_sent=False)
    lost_answer = e.ConnectionFailed("reset", request_sent=True)
    unavailable = e.Unavailable("store failed")
    assert is_transient(never_sent, repeatable=False)
    assert not is_transient(lost_answer, repeatable=False)
    assert not is_transient(unavailable, repeatable=False)
    assert is_transient(lost_answer, repeatable=True) and is_transient(unavailable, repeatable=True)
    assert not is_transient(e.BadRequest("invalid command"), repeatable=True)
    assert not is_transient(e.RateLimited("slow down"), repeatable=True)


def test_backoff_grows_to_its_cap_and_honours_retry_after() -> None:
    backoff = Backoff(0.1, 1.0)
    delays = [backoff.next_delay() for _ in range(10)]
    assert all(0 <= d <= 1.0 for d in delays)
    assert backoff.next_delay(retry_after=5) == 5
    backoff.reset()
    assert backoff.next_delay() <= 0.1


async def test_retries_follow_the_policy_after_a_first_failure() -> None:
    policy = RetryPolicy(attempts=3, base_seconds=0, max_seconds=0)
    failures = [e.ConnectionFailed("down", request_sent=False)] * 2

    async def flaky() -> str:
        if failures:
            raise failures.pop()
        return "ok"

    assert await with_retries(flaky, policy, repeatable=False, what="test") == "ok"
    calls: list[int] = []

    async def always_down() -> str:
        calls.append(1)
        raise e.ConnectionFailed(f"down {len(calls)}", request_sent=False)

    with pytest.raises(e.ConnectionFailed, match="down 3"):  # the last failure, after 3 tries
        await with_retries(always_down, policy, repeatable=False, what="test")
    first = e.ServerError("lost", 500)  # a lost answer: not repeated for a create
    with pytest.raises(e.ServerError):
        await retried(always_down, policy, first, started=0.0, repeatable=False, what="test")
    assert len(calls) == 3
