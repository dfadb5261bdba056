"""The Raft port before the secret: oversized, unauthenticated and silent connections are dropped,
and a 64 MB stream at the leader's port neither reaches its memory nor costs it leadership."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest

from codeq.replication.raft_transport import FrameLimits
from tests.cluster.support import Cluster

pytestmark = [pytest.mark.process, pytest.mark.timeout(240)]

MiB = 1024 * 1024
HANDSHAKE = FrameLimits()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cl = Cluster(tmp_path_factory.mktemp("raft-port"))
    try:
        cl.start()
        cl.wait_leader()
        yield cl
    finally:
        cl.stop()


def dial(cluster: Cluster, node: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", cluster.bind[node]), timeout=5)


def closed_by_peer(sock: socket.socket, within_s: float) -> bool:
    """True when the node ends the connection within `within_s` (reading whatever it sends)."""
    sock.settimeout(within_s)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return True


def frame_header(length: int) -> bytes:
    return struct.pack("i", length)


@pytest.mark.parametrize(
    "length",
    [2**31 - 1, 64 * MiB, HANDSHAKE.handshake_bytes + 1],
    ids=["2GiB", "64MiB", "over-the-handshake-cap"],
)
def test_a_frame_declared_too_large_drops_the_connection(cluster: Cluster, length: int) -> None:
    leader = cluster.wait_leader()
    with dial(cluster, leader) as sock:
        sock.sendall(frame_header(length) + b"x" * 1024)
        assert closed_by_peer(sock, within_s=10)


def test_a_silent_connection_is_dropped_after_the_handshake_deadline(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    with dial(cluster, leader) as sock:
        assert closed_by_peer(sock, within_s=HANDSHAKE.handshake_seconds + 10)


def test_a_64mb_stream_is_cut_off_and_the_leader_keeps_leading(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    chunk = b"\0" * MiB
    sent = 0
    with dial(cluster, leader) as sock:
        sock.settimeout(10)
        try:
            sock.sendall(frame_header(64 * MiB))
            while sent < 64 * MiB:
                sock.sendall(chunk)
                sent += len(chunk)
        except (ConnectionResetError, BrokenPipeError):
            pass
    # Loopback socket buffers hold a few MB; the node itself read at most the handshake cap.
    assert sent < 32 * MiB, f"the node accepted {sent // MiB} MiB before any authentication"
    for n in range(20):
        response = cluster.create(leader, {"command": "after-flood", "payload": {"n": n}})
        assert response.status_code == 202, response.text
    assert cluster.wait_leader() == leader
    leaders = {i: (cluster.status(i) or {"groups": [{}]})["groups"][0].get("leaderId") for i in cluster.ids}
    assert set(leaders.values()) == {leader}, leaders
