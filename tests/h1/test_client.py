"""The stdlib HTTP/1.1 client against small fake servers: framing, pooling, stale connections, errors."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from codeq.h1 import (
    MAX_BODY_BYTES,
    H1Client,
    H1ConnectError,
    H1ProtocolError,
    H1Response,
    H1Timeout,
    H1TransportError,
)
from codeq.h1.pool import _Conn
from tests.h1.fake_server import Handler, Peer, keep_serving, reply, serving

pytestmark = pytest.mark.timeout(10)


@contextlib.asynccontextmanager
async def client_for(url: str, **options: object) -> AsyncIterator[H1Client]:
    client = H1Client(url, **options)  # type: ignore[arg-type]
    try:
        yield client
    finally:
        await client.aclose()


async def get(client: H1Client, path: str = "/", **options: object) -> H1Response:
    return await client.request("GET", path, timeout=5.0, **options)  # type: ignore[arg-type]


async def post(client: H1Client, path: str = "/", body: bytes = b"{}") -> H1Response:
    return await client.request("POST", path, body=body, timeout=5.0)


# --------------------------------------------------------------------------- requests and framing


async def test_request_encoding_and_a_content_length_body() -> None:
    auth = (("Authorization", "Bearer t"), ("Content-Type", "application/json"))
    handler = keep_serving(reply(200, b"hello", "X-Thing: a", "x-thing: b"))
    async with serving(handler) as server, client_for(server.url + "/base/") as client:
        resp = await client.request("POST", "/tasks?x=1", headers=auth, body=b'{"a":1}', timeout=5.0)
        await client.request("POST", "/empty", headers=auth, timeout=5.0)
        await get(client, "/read")
    assert (resp.status, resp.body) == (200, b"hello")
    assert resp.header("X-THING") == "a, b" and resp.header("content-length") == "5"
    assert resp.header("missing") is None
    first, empty, read = server.requests
    assert (first.method, first.target, first.body) == ("POST", "/base/tasks?x=1", b'{"a":1}')
    assert first.headers == {
        "host": f"127.0.0.1:{server.port}",
        "connection": "keep-alive",
        "authorization": "Bearer t",
        "content-type": "application/json",
        "content-length": "7",
    }
    assert empty.headers["content-length"] == "0"
    assert "content-length" not in read.headers and read.target == "/base/read"
    assert server.connections == 1


async def test_a_chunked_body_with_extensions_and_trailers() -> None:
    chunked = reply(
        200,
        b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nTrailer-One: x\r\n\r\n",
        "Transfer-Encoding: chunked",
    )
    async with serving(keep_serving(chunked)) as server, client_for(server.url) as client:
        assert (await get(client)).body == b"hello world"
        assert (await get(client)).body == b"hello world"  # the trailers were consumed
    assert server.connections == 1


@pytest.mark.parametrize(
    "response",
    [
        reply(200, b"hello world"),
        reply(200, b"5\r\nhello\r\n6\r\n world\r\n0\r\nT: x\r\n\r\n", "Transfer-Encoding: gzip, chunked"),
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
        + reply(200, b"hello world"),
    ],
    ids=["content-length", "chunked", "after-1xx"],
)
def test_responses_fed_one_byte_at_a_time(response: bytes) -> None:
    async def run() -> H1Response:
        conn = _Conn()
        conn.connection_made(_NullTransport())
        waiter = conn.send(b"GET / HTTP/1.1\r\n\r\n", head_only=False)
        for i in range(len(response)):
            assert not waiter.done()
            conn.data_received(response[i : i + 1])
        assert conn.reusable
        return await waiter

    resp = asyncio.run(run())
    assert (resp.status, resp.body) == (200, b"hello world")


class _NullTransport(asyncio.Transport):
    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def abort(self) -> None:
        pass


async def test_no_body_for_204_304_and_head() -> None:
    responses = iter(
        [
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
            reply(200, b"in step"),
        ]
    )

    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(next(responses))

    async with serving(handler) as server, client_for(server.url) as client:
        assert (await get(client)).status == 204
        assert (await get(client)).status == 304
        head = await client.request("HEAD", "/", timeout=5.0)
        assert (head.status, head.body, head.header("content-length")) == (200, b"", "1000")
        assert (await get(client)).body == b"in step"
    assert server.connections == 1


async def test_a_body_without_length_is_read_until_close() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst part, ")
        await peer.send(b"second part")

    async with serving(handler) as server, client_for(server.url) as client:
        assert (await get(client)).body == b"first part, second part"
        assert (await get(client)).body == b"first part, second part"
    assert server.connections == 2


async def test_keep_alive_reuses_one_connection() -> None:
    async with serving(keep_serving(reply(200, b"ok"))) as server, client_for(server.url) as client:
        for _ in range(5):
            assert (await post(client)).body == b"ok"
    assert server.connections == 1 and len(server.requests) == 5


@pytest.mark.parametrize(
    ("response", "reused"),
    [
        (reply(200, b"ok", "Connection: close"), False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", False),
        (b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok", True),
        (reply(200, b"ok", "Connection: keep-alive, Upgrade"), True),
    ],
    ids=["close", "http/1.0", "http/1.0-keep-alive", "keep-alive"],
)
async def test_the_server_decides_whether_a_connection_is_reused(response: bytes, reused: bool) -> None:
    async with serving(keep_serving(response)) as server, client_for(server.url) as client:
        assert (await get(client)).body == b"ok"
        assert (await get(client)).body == b"ok"
        if not reused:  # the client closed the first connection itself
            await server.peers[0].wait_closed_by_client()
    assert server.connections == (1 if reused else 2)


# --------------------------------------------------------------------------- stale connections


@pytest.mark.parametrize("how", ["close", "stray-bytes"])
async def test_a_connection_the_server_dropped_while_idle_is_replaced_before_sending(how: str) -> None:
    dropped = asyncio.Event()

    async def handler(peer: Peer) -> None:
        if peer.server.connections > 1:
            return await keep_serving(reply(200, b"fresh"))(peer)
        await peer.read_request()
        await peer.send(reply(200, b"first"))
        if how == "close":
            peer.writer.close()
            await peer.writer.wait_closed()
        else:  # what a server's idle timeout may send before it closes
            await peer.send(reply(408, b"", "Connection: close", reason="Request Timeout"))
        dropped.set()
        await peer.wait_closed_by_client()

    async with serving(handler) as server, client_for(server.url) as client:
        assert (await post(client)).body == b"first"
        await dropped.wait()
        assert (await post(client)).body == b"fresh"
    assert server.connections == 2
    assert [len(peer.requests) for peer in server.peers] == [1, 1]  # sent once


def drop_second_request(*, on_fresh: bool = False) -> Handler:
    """A server that reads a request and closes without answering: the first connection
    answers its first request, then drops the next one; with `on_fresh`, every request."""

    async def handler(peer: Peer) -> None:
        if not on_fresh and peer.server.connections == 1:
            await peer.read_request()
            await peer.send(reply(200, b"first"))
        await peer.read_request()

    return handler


async def test_a_post_dropped_after_it_was_read_is_not_retried() -> None:
    async with serving(drop_second_request()) as server, client_for(server.url) as client:
        await post(client)
        with pytest.raises(H1TransportError) as caught:
            await post(client)
    assert type(caught.value) is H1TransportError and caught.value.request_sent
    assert len(server.requests) == 2 and server.connections == 1


async def test_a_request_dropped_on_a_fresh_connection_is_not_retried() -> None:
    async with serving(drop_second_request(on_fresh=True)) as server, client_for(server.url) as client:
        with pytest.raises(H1TransportError) as caught:
            await get(client)
    assert caught.value.request_sent
    assert len(server.requests) == 1 and server.connections == 1


async def test_a_get_dropped_on_a_reused_connection_is_retried_once_on_a_new_one() -> None:
    async def handler(peer: Peer) -> None:
        if peer.server.connections == 1:
            return await drop_second_request()(peer)
        await keep_serving(reply(200, b"retried"))(peer)

    async with serving(handler) as server, client_for(server.url) as client:
        await get(client)
        assert (await get(client)).body == b"retried"
    assert len(server.requests) == 3 and server.connections == 2


async def test_the_retry_happens_only_once() -> None:
    async def handler(peer: Peer) -> None:
        if peer.server.connections == 1:
            return await drop_second_request()(peer)
        await peer.read_request()  # the retry is dropped too

    async with serving(handler) as server, client_for(server.url) as client:
        await get(client)
        with pytest.raises(H1TransportError) as caught:
            await get(client)
    assert caught.value.request_sent
    assert len(server.requests) == 3 and server.connections == 2


# --------------------------------------------------------------------------- timeouts and errors


def silent(peer_gone: asyncio.Event) -> Handler:
    """Reads requests and never answers; notes when the client closes the connection."""

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.wait_closed_by_client()
        peer_gone.set()

    return handler


async def test_a_timeout_discards_the_connection() -> None:
    gone = asyncio.Event()
    async with serving(silent(gone)) as server, client_for(server.url) as client:
        with pytest.raises(H1Timeout) as caught:
            await client.request("POST", "/", body=b"{}", timeout=0.05)
        assert caught.value.request_sent and isinstance(caught.value, TimeoutError)
        await gone.wait()  # the client closed it rather than pooling it
        with pytest.raises(H1Timeout):
            await client.request("GET", "/", timeout=0.05)
    assert server.connections == 2


async def test_cancelling_a_request_discards_the_connection() -> None:
    gone = asyncio.Event()
    async with serving(silent(gone)) as server, client_for(server.url) as client:
        task = asyncio.ensure_future(get(client))
        await server.arrivals.get()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await gone.wait()


async def test_connection_refused_is_a_connect_error() -> None:
    with socket.socket() as bound:  # bound but not listening: connecting is refused
        bound.bind(("127.0.0.1", 0))
        async with client_for(f"http://127.0.0.1:{bound.getsockname()[1]}") as client:
            with pytest.raises(H1ConnectError) as caught:
                await post(client)
    assert not caught.value.request_sent and "cannot connect to 127.0.0.1" in str(caught.value)


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/2 200\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        f"HTTP/1.1 200 OK\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode(),
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (70 * 1024),
    ],
)
async def test_a_malformed_or_oversized_response_is_a_protocol_error(response: bytes) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response)
        await peer.wait_closed_by_client()

    async with serving(handler) as server, client_for(server.url) as client:
        with pytest.raises(H1ProtocolError) as caught:
            await get(client)
    assert caught.value.request_sent and isinstance(caught.value, H1TransportError)


def test_bad_arguments_are_value_errors() -> None:
    for url in (
        "ftp://host/",
        "http:///nohost",
        "http://user@host/",
        "http://host/?q=1",
        "http://host:99999",
    ):
        with pytest.raises(ValueError):
            H1Client(url)
    with pytest.raises(ValueError):
        H1Client("http://host", max_connections=0)

    async def run() -> None:
        async with client_for("http://127.0.0.1:9") as client:
            for method, path, headers in [
                ("GET", "relative", ()),
                ("GET", "/with space", ()),
                ("GE T", "/", ()),
                ("GET", "/", (("X-Evil", "a\r\nInjected: yes"),)),
                ("GET", "/", (("Bad Name", "x"),)),
                ("GET", "/", (("Host", "elsewhere"),)),
                ("GET", "/", (("Content-Length", "3"),)),
            ]:
                with pytest.raises(ValueError):
                    await client.request(method, path, headers=headers, timeout=1.0)

    asyncio.run(run())


# --------------------------------------------------------------------------- the pool


async def test_requests_beyond_max_connections_wait_in_order() -> None:
    release: dict[str, asyncio.Future[None]] = {}

    async def handler(peer: Peer) -> None:
        while (request := await peer.read_request()) is not None:
            await release.setdefault(request.target, asyncio.get_running_loop().create_future())
            await peer.send(reply(200, request.target.encode()))

    async with serving(handler) as server, client_for(server.url, max_connections=2) as client:
        tasks = [asyncio.ensure_future(get(client, f"/{name}")) for name in "abcd"]
        assert {(await server.arrivals.get()).target for _ in range(2)} == {"/a", "/b"}
        assert server.arrivals.empty() and server.connections == 2
        release.setdefault("/a", asyncio.get_running_loop().create_future()).set_result(None)
        assert (await server.arrivals.get()).target == "/c"  # first come, first served
        release.setdefault("/b", asyncio.get_running_loop().create_future()).set_result(None)
        assert (await server.arrivals.get()).target == "/d"
        for name in "cd":
            release.setdefault(f"/{name}", asyncio.get_running_loop().create_future()).set_result(None)
        assert [(await task).body for task in tasks] == [b"/a", b"/b", b"/c", b"/d"]
    assert server.connections == 2


async def test_a_request_waiting_for_a_connection_times_out_unsent() -> None:
    gone = asyncio.Event()
    async with serving(silent(gone)) as server, client_for(server.url, max_connections=1) as client:
        busy = asyncio.ensure_future(get(client))
        await server.arrivals.get()
        with pytest.raises(H1Timeout) as caught:
            await client.request("POST", "/", body=b"{}", timeout=0.05)
        assert not caught.value.request_sent and len(server.requests) == 1
        busy.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await busy


async def test_large_bodies_both_ways() -> None:
    big = bytes(range(256)) * (32 * 1024)  # 8 MiB

    async def handler(peer: Peer) -> None:
        while (request := await peer.read_request()) is not None:
            await peer.send(reply(200, request.body[::-1] + big))

    upload = b"u" * (3 * 1024 * 1024) + b"end"
    async with serving(handler) as server, client_for(server.url) as client:
        resp = await client.request("PUT", "/", body=upload, timeout=10.0)
        assert resp.body == upload[::-1] + big
        assert (await get(client)).body == big
    assert server.connections == 1


async def test_an_absolute_url_uses_its_own_origin() -> None:
    async with (
        serving(keep_serving(reply(200, b"home"))) as home,
        serving(keep_serving(reply(200, b"away"))) as away,
        client_for(home.url + "/prefix") as client,
    ):
        assert (await get(client, f"{away.url}/v1/x?wait=1")).body == b"away"
        assert (await get(client, f"{away.url.upper().replace('HTTP', 'http')}")).body == b"away"
        assert (await get(client, "/y")).body == b"home"
        assert (await get(client, f"{home.url}/z")).body == b"home"
    assert [r.target for r in away.requests] == ["/v1/x?wait=1", "/"]
    assert away.requests[0].headers["host"] == f"127.0.0.1:{away.port}"
    assert [r.target for r in home.requests] == ["/prefix/y", "/z"]
    assert home.connections == 1 and away.connections == 1


async def test_an_ipv6_literal() -> None:
    try:
        server_cm = serving(keep_serving(reply(200, b"six")), host="::1")
        server = await server_cm.__aenter__()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        async with client_for(server.url + "/p") as client:
            assert (await get(client, "/q")).body == b"six"
        assert server.requests[0].headers["host"] == f"[::1]:{server.port}"
        assert server.requests[0].target == "/p/q"
    finally:
        await server_cm.__aexit__(None, None, None)


async def test_aclose_closes_idle_connections() -> None:
    gone = asyncio.Event()

    async def handler(peer: Peer) -> None:
        await keep_serving(reply(200, b"ok"))(peer)
        gone.set()

    async with serving(handler) as server:
        client = H1Client(server.url)
        await get(client)
        await client.aclose()
        await gone.wait()
        with pytest.raises(RuntimeError):
            await get(client)


# --------------------------------------------------------------------------- TLS


async def test_https_verifies_the_server(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    async with serving(keep_serving(reply(200, b"secret")), tls=server_tls) as server:
        async with client_for(server.url, verify=trusting) as client:
            assert (await get(client)).body == b"secret"
            assert (await get(client)).body == b"secret"
        async with client_for(server.url, verify=False) as client:
            assert (await get(client)).body == b"secret"
        async with client_for(server.url) as client:
            with pytest.raises(H1ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await get(client)
    assert server.requests[0].headers["host"] == f"127.0.0.1:{server.port}"
    assert server.connections == 2  # the failed handshake never reached the handler


async def test_a_preferred_request_takes_an_idle_connection_tagged_by_the_affinity_header() -> None:
    """Each connection answers with its own `Process` field; `prefer` picks a connection
    whose last response carried that value, newest first, and any idle one when none did."""
    both_open = asyncio.Event()
    names = iter("ab")

    async def handler(peer: Peer) -> None:
        name = next(names)
        while (request := await peer.read_request()) is not None:
            if request.target == "/open":
                if name == "b":
                    both_open.set()
                await both_open.wait()  # so the two first requests hold two connections
            await peer.send(reply(200, name.encode(), f"Process: {name}"))

    async with serving(handler) as server, client_for(server.url, affinity_header="process") as client:
        opened = await asyncio.gather(get(client, "/open"), get(client, "/open"))
        assert sorted(response.body for response in opened) == [b"a", b"b"]
        for name in "abba":
            assert (await get(client, prefer=name)).body == name.encode()
        newest = (await get(client)).body  # no preference: the newest idle one, as before
        assert (await get(client, prefer="elsewhere")).body == newest  # no such tag: any idle one
    assert server.connections == 2


async def test_without_an_affinity_header_a_preference_is_ignored() -> None:
    handler = keep_serving(reply(200, b"ok", "Process: a"))
    async with serving(handler) as server, client_for(server.url) as client:
        for _ in range(3):
            assert (await get(client, prefer="a")).body == b"ok"
    assert server.connections == 1
