"""The blocking one-shot GET against the fake server: framing, the body cap, the deadline, errors."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import pytest

from codeq.h1 import (
    H1ConnectError,
    H1ProtocolError,
    H1Response,
    H1Timeout,
    H1TransportError,
    fetch,
)
from tests.h1.fake_server import Handler, Peer, keep_serving, reply, serving

pytestmark = pytest.mark.timeout(10)


async def fetch_off_loop(url: str, **options: object) -> H1Response:
    """Callers of `fetch` run it on a worker thread; the fake server lives on this loop."""
    options.setdefault("timeout", 5.0)
    return await asyncio.to_thread(fetch, url, **options)  # type: ignore[arg-type]


def answer_then_close(response: bytes) -> Handler:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response)

    return handler


async def test_a_get_with_its_headers_and_a_content_length_body() -> None:
    response = reply(200, b'{"keys":[]}', "Cache-Control: max-age=60")
    async with serving(keep_serving(response)) as server:
        got = await fetch_off_loop(f"{server.url}/jwks?x=1", headers=(("Accept", "application/json"),))
    assert (got.status, got.body, got.header("cache-control")) == (200, b'{"keys":[]}', "max-age=60")
    sent = server.requests[0]
    assert (sent.method, sent.target, sent.body) == ("GET", "/jwks?x=1", b"")
    assert sent.headers == {
        "host": f"127.0.0.1:{server.port}",
        "connection": "close",
        "accept": "application/json",
    }


@pytest.mark.parametrize(
    "response",
    [
        reply(200, b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "Transfer-Encoding: chunked"),
        b"HTTP/1.1 200 OK\r\n\r\nhello world",  # no length: the body runs to the close
        b"HTTP/1.1 100 Continue\r\n\r\n" + reply(200, b"hello world"),
    ],
    ids=["chunked", "until-close", "after-1xx"],
)
async def test_every_framing_the_client_reads(response: bytes) -> None:
    async with serving(answer_then_close(response)) as server:
        got = await fetch_off_loop(server.url)
    assert (got.status, got.body) == (200, b"hello world")


async def test_a_redirect_is_returned_not_followed() -> None:
    async with serving(keep_serving(reply(302, b"", "Location: http://elsewhere/"))) as server:
        got = await fetch_off_loop(server.url)
    assert (got.status, got.header("location")) == (302, "http://elsewhere/")
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "response",
    [
        reply(200, b"x" * 101),
        reply(
            200,
            b"40\r\n" + b"x" * 64 + b"\r\n40\r\n" + b"x" * 64 + b"\r\n0\r\n\r\n",
            "Transfer-Encoding: chunked",
        ),
        b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 101,
    ],
    ids=["content-length", "chunked", "until-close"],
)
async def test_a_body_over_the_cap_is_refused(response: bytes) -> None:
    async with serving(answer_then_close(response)) as server:
        assert (await fetch_off_loop(server.url, max_body_bytes=101 + 28)).status == 200
        with pytest.raises(H1ProtocolError, match="exceeds 100"):
            await fetch_off_loop(server.url, max_body_bytes=100)


async def test_a_silent_server_runs_out_the_deadline() -> None:
    async def silent(peer: Peer) -> None:
        await peer.read_request()
        await peer.wait_closed_by_client()

    async with serving(silent) as server:
        with pytest.raises(H1Timeout) as caught:
            await fetch_off_loop(server.url, timeout=0.2)
    assert caught.value.request_sent
    assert isinstance(caught.value, TimeoutError)


async def test_a_close_before_the_response_is_complete_is_a_transport_error() -> None:
    async with serving(answer_then_close(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")) as server:
        with pytest.raises(H1TransportError, match="closed before the response was complete"):
            await fetch_off_loop(server.url)


async def test_a_malformed_response_is_a_protocol_error() -> None:
    async with serving(answer_then_close(b"HTTP/2 200\r\n\r\n")) as server:
        with pytest.raises(H1ProtocolError, match="bad status line"):
            await fetch_off_loop(server.url)


def test_connection_refused_is_a_connect_error() -> None:
    with socket.socket() as bound:  # bound but not listening: connecting is refused
        bound.bind(("127.0.0.1", 0))
        with pytest.raises(H1ConnectError) as caught:
            fetch(f"http://127.0.0.1:{bound.getsockname()[1]}/", timeout=5.0)
    assert not caught.value.request_sent


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("ftp://127.0.0.1/", ()),
        ("http:///nohost", ()),
        ("http://127.0.0.1/", (("Connection", "keep-alive"),)),
        ("http://127.0.0.1/", (("X-Bad", "a\r\nInjected: 1"),)),
    ],
)
def test_bad_arguments_are_value_errors(url: str, headers: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(ValueError):
        fetch(url, timeout=1.0, headers=headers)


async def test_https_verifies_the_server(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    async with serving(keep_serving(reply(200, b"secret")), tls=server_tls) as server:
        assert (await fetch_off_loop(server.url, verify=trusting)).body == b"secret"
        with pytest.raises(H1ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await fetch_off_loop(server.url)
