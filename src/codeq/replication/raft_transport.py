"""The Raft port's TCP transport: PySyncObj's, bounded before a peer has proven the secret.

PySyncObj frames each message with a 4-byte length and buffers a frame of any declared length
(up to 2 GiB) before it authenticates anything, growing a `bytes` buffer by concatenation —
quadratic time on the tick thread. A 64 MB stream from anyone who could reach the port made a
leader miss its heartbeats (two leaders, hung writes). Here, on every connection:

- a declared length beyond the largest message PySyncObj can send (`FrameLimits`) drops it;
- bytes accumulate in a `bytearray` consumed from an offset, so buffering is linear, and one
  poll event reads at most `READ_PER_EVENT` bytes, so one sender cannot hold the tick thread;
- until a peer has completed the key exchange and named itself, its frames may be only
  `handshake_bytes` long and it has `handshake_seconds` to get there, else it is dropped
  (a frame that does not decode — wrong secret, not PySyncObj — drops it at once).

The second module that imports PySyncObj (beside `raft.py`), for the same reason: it is where
PySyncObj's private names are touched, against the pinned version.
"""

from __future__ import annotations

import functools
import logging
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from pysyncobj import pickle
from pysyncobj.monotonic import monotonic
from pysyncobj.tcp_connection import CONNECTION_STATE, TcpConnection
from pysyncobj.tcp_server import TcpServer
from pysyncobj.transport import TCPTransport

log = logging.getLogger("codeq.raft")

MiB = 1024 * 1024
READ_PER_EVENT = 4 * MiB
_HEADER = struct.Struct("i")  # PySyncObj's framing: a native signed int, then the frame


@dataclass(frozen=True, slots=True)
class FrameLimits:
    """What one Raft connection may send. `max_frame_bytes` 0: derived from the config."""

    max_frame_bytes: int = 0
    # Before the key exchange and the peer's name: a Fernet token of a 32-byte key, then of
    # the node's address (a few hundred bytes each).
    handshake_bytes: int = 16 * 1024
    handshake_seconds: float = 3.0


def largest_frame_bytes(append_entries_batch_bytes: int) -> int:
    """The largest frame PySyncObj sends with this batch size: entries are gathered until they
    reach the batch size, so a message holds less than two batches' worth (an entry larger
    than a batch is split into batch-sized pieces); zlib may add a little, Fernet's base64
    adds a third."""
    return (2 * append_entries_batch_bytes + MiB) * 4 // 3


class BoundedConnection(TcpConnection):  # type: ignore[misc]
    """A `TcpConnection` whose reading is linear and bounded (see the module docstring)."""

    def __init__(self, limits: FrameLimits, **kwargs: Any) -> None:
        self.limits = limits
        self.trusted = False  # set by the transport once the peer proved the secret and named itself
        self.opened_at = monotonic()
        self._inbox = bytearray()
        self._offset = 0
        super().__init__(**kwargs)

    def connect(self, host: str, port: int) -> bool:
        self._reset()
        return bool(super().connect(host, port))

    def disconnect(self) -> None:
        self._reset()
        super().disconnect()

    def _reset(self) -> None:
        self.trusted = False
        self.opened_at = monotonic()
        self._inbox = bytearray()
        self._offset = 0

    def _frame_cap(self) -> int:
        return self.limits.max_frame_bytes if self.trusted else self.limits.handshake_bytes

    def _drop(self, why: str) -> None:
        log.warning("raft connection dropped: %s", why)
        self.disconnect()

    # PySyncObj's private read path, replaced (name-mangled overrides).

    def _TcpConnection__tryReadBuffer(self) -> None:
        sock = self._TcpConnection__socket
        size = self._TcpConnection__recvBufferSize
        budget = READ_PER_EVENT
        while budget > 0:
            try:
                chunk = sock.recv(size)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.disconnect()
                return
            if not chunk:
                self.disconnect()
                return
            self._inbox += chunk
            budget -= len(chunk)
            # Before the handshake read no further than one small frame: the parse that follows
            # either completes it (a peer's next frames may be large) or drops the connection.
            if not self.trusted and len(self._inbox) - self._offset > self.limits.handshake_bytes:
                break
        self._TcpConnection__lastReadTime = monotonic()

    def _TcpConnection__processParseMessage(self) -> Any:
        inbox, start = self._inbox, self._offset
        if len(inbox) - start >= _HEADER.size:
            (length,) = _HEADER.unpack_from(inbox, start)
            if length < 0 or length > self._frame_cap():
                self._drop(f"a frame of {length} bytes declared (limit {self._frame_cap()})")
                return None
            end = start + _HEADER.size + length
            if len(inbox) >= end:
                self._offset = end
                return self._decode(bytes(inbox[start + _HEADER.size : end]))
        # Waiting for more: drop what was consumed, once per read, so buffering stays linear.
        if start:
            del inbox[:start]
            self._offset = 0
        return None

    def _decode(self, data: bytes) -> Any:
        """PySyncObj's frame format: Fernet (when a secret is set) over zlib over pickle, the
        payload paired with this session's random key once the keys are exchanged."""
        try:
            if self.encryptor:
                stamp = self.encryptor.extract_timestamp(data)
                last: int = getattr(self, "recvLastTimestamp")  # noqa: B009 - mypy cannot type it
                if stamp < last:
                    raise ValueError("frame older than the last one")
                self.recvLastTimestamp = stamp
                data = self.encryptor.decrypt(data)
            message = pickle.loads(zlib.decompress(data))
            if self.recvRandKey:
                key, message = message
                if key != self.recvRandKey:
                    raise ValueError("wrong session key")
        except Exception as exc:  # anything undecodable: the peer is not one of ours
            self._drop(f"undecodable frame ({type(exc).__name__})")
            return None
        return message


class _BoundedServer(TcpServer):  # type: ignore[misc]
    """PySyncObj's listener, handing out `BoundedConnection`s."""

    def __init__(self, limits: FrameLimits, *args: Any, **kwargs: Any) -> None:
        self.limits = limits
        super().__init__(*args, **kwargs)

    def _TcpServer__onNewConnection(self, descr: int, event: int) -> None:
        listener = self._TcpServer__socket
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.unbind()
            return
        sock.setblocking(False)
        conn = BoundedConnection(
            self.limits,
            poller=self._TcpServer__poller,
            socket=sock,
            timeout=self._TcpServer__connectionTimeout,
            sendBufferSize=self._TcpServer__sendBufferSize,
            recvBufferSize=self._TcpServer__recvBufferSize,
            keepalive=self._TcpServer__keepalive,
        )
        self._TcpServer__onNewConnectionCallback(conn)


class GuardedTransport(TCPTransport):  # type: ignore[misc]
    """PySyncObj's TCP transport over `BoundedConnection`s, sweeping slow handshakes each tick."""

    def __init__(
        self, syncObj: Any, selfNode: Any, otherNodes: Any, limits: FrameLimits | None = None
    ) -> None:
        limits = limits or FrameLimits()
        if not limits.max_frame_bytes:
            batch = syncObj.conf.appendEntriesBatchSizeBytes
            limits = FrameLimits(largest_frame_bytes(batch), limits.handshake_bytes, limits.handshake_seconds)
        self.limits = limits
        super().__init__(syncObj, selfNode, otherNodes)

    def _createServer(self) -> None:
        super()._createServer()
        plain: Any = getattr(self, "_server")  # noqa: B009 - replaced below: mypy cannot type it
        conf = self._syncObj.conf
        self._server = _BoundedServer(
            self.limits,
            self._syncObj._poller,
            plain._TcpServer__host,
            plain._TcpServer__port,
            onNewConnection=self._onNewIncomingConnection,
            sendBufferSize=conf.sendBufferSize,
            recvBufferSize=conf.recvBufferSize,
            connectionTimeout=conf.connectionTimeout,
        )

    def addNode(self, node: Any) -> None:
        super().addNode(node)
        if node not in self._connections:
            return
        conf = self._syncObj.conf
        conn = BoundedConnection(
            self.limits,
            poller=self._syncObj._poller,
            timeout=conf.connectionTimeout,
            sendBufferSize=conf.sendBufferSize,
            recvBufferSize=conf.recvBufferSize,
            keepalive=conf.tcp_keepalive,
        )
        conn.encryptor = self._syncObj.encryptor
        conn.setOnConnectedCallback(functools.partial(self._onOutgoingConnected, conn))
        conn.setOnMessageReceivedCallback(functools.partial(self._onMessageReceived, node))
        conn.setOnDisconnectedCallback(functools.partial(self._onDisconnected, conn))
        self._connections[node] = conn

    def _onIncomingMessageReceived(self, conn: Any, message: Any) -> None:
        super()._onIncomingMessageReceived(conn, message)
        if conn not in self._unknownConnections and conn.state == CONNECTION_STATE.CONNECTED:
            conn.trusted = True  # keys exchanged and a known peer named

    def _onOutgoingConnected(self, conn: Any) -> None:
        conn.trusted = not self._syncObj.encryptor  # no secret, no key exchange to wait for
        super()._onOutgoingConnected(conn)

    def _onOutgoingMessageReceived(self, conn: Any, message: Any) -> None:
        super()._onOutgoingMessageReceived(conn, message)
        conn.trusted = True  # the peer's key arrived, encrypted with the secret

    def _onTick(self) -> None:
        super()._onTick()
        now = monotonic()
        late = [
            conn
            for conn in (*self._unknownConnections, *self._connections.values())
            if isinstance(conn, BoundedConnection)
            and not conn.trusted
            and conn.state != CONNECTION_STATE.DISCONNECTED
            and now - conn.opened_at > self.limits.handshake_seconds
        ]
        for conn in late:
            conn._drop(f"no handshake within {self.limits.handshake_seconds:g} s")
