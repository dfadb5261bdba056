"""A network whose messages the test delivers by hand: PySyncObj nodes with no sockets and
no timers that fire on their own (elections only when the test forces one)."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pysyncobj.transport import Transport

from codeq.replication.journal import MemoryTestJournal
from codeq.replication.membership import GroupMembers
from codeq.replication.raft import RaftCore
from codeq.replication.raft_base import BaseCore, make_conf

ADDRS = ["10.0.0.1:7001", "10.0.0.2:7001", "10.0.0.3:7001"]
# Timeouts far beyond any test: nothing campaigns or steps down unless the test says so.
QUIET = {
    "raftMinTimeout": 1000.0,
    "raftMaxTimeout": 1001.0,
    "connectionTimeout": 1002.0,
    "leaderFallbackTimeout": 999.0,
}


@dataclass
class Message:
    src: str
    dst: str
    body: dict[str, Any]


class HandTransport(Transport):  # type: ignore[misc]
    network: HandNetwork  # set on the subclass the network creates

    def __init__(self, syncObj: Any, selfNode: Any, otherNodes: Any) -> None:
        super().__init__(syncObj, selfNode, otherNodes)
        self.self_id = selfNode.id
        self.nodes = {node.id: node for node in otherNodes}
        self.network.transports[self.self_id] = self

    def tryGetReady(self) -> None:
        pass

    def addNode(self, node: Any) -> None:
        """A membership change names a new peer: linked at once when both run."""
        self.nodes[node.id] = node
        if self.network.linked(self.self_id, node.id) and node.id in self.network.transports:
            self._onNodeConnected(node)

    def dropNode(self, node: Any) -> None:
        self.nodes.pop(node.id, None)

    @property
    def ready(self) -> bool:
        return True

    def send(self, node: Any, message: Any) -> bool:
        if not self.network.linked(self.self_id, node.id):
            return False
        # Through pickle, as on the wire: the receiver never shares objects with the sender.
        body = pickle.loads(pickle.dumps(message))
        self.network.queue.append(Message(self.self_id, node.id, body))
        return True

    def destroy(self) -> None:
        pass


@dataclass
class Replica:
    core: BaseCore
    applied: list[tuple[int, bytes]] = field(default_factory=list)


class HandNetwork:
    def __init__(self, core_class: type[BaseCore] = RaftCore) -> None:
        self.core_class = core_class
        self.transports: dict[str, HandTransport] = {}
        self.queue: list[Message] = []
        self.replicas: dict[str, Replica] = {}
        self.journals: dict[str, MemoryTestJournal] = {}
        self.down: set[str] = set()
        self.cut: set[frozenset[str]] = set()
        self.transport_class = type("BoundHandTransport", (HandTransport,), {"network": self})
        self.time = 0.0  # the lease clock of every RaftCore here: moves only when a test says

    def clock(self) -> float:
        return self.time

    # -- membership ------------------------------------------------------------------------

    def start(
        self,
        addr: str,
        journal: MemoryTestJournal | None = None,
        shape: str = "",
        members: GroupMembers | None = None,
        peers: list[str] = ADDRS,
    ) -> Replica:
        journal = journal or self.journals.get(addr) or MemoryTestJournal()
        self.journals[addr] = journal
        replica_box: list[Replica] = []

        def hook(index: int, payload: bytes) -> Any:
            replica_box[0].applied.append((index, payload))
            return payload

        conf = make_conf(secret="test-secret", timing=QUIET)
        conf.password = None  # the hand network does not encrypt; the secret check ran above
        extra: dict[str, Any] = {"shape": shape, "members": members} if self.core_class is RaftCore else {}
        core = self.core_class(
            addr, peers, conf, hook, journal, transport_class=self.transport_class, **extra
        )
        if isinstance(core, RaftCore):
            core.now = self.clock
            core._leader_contact = self.time
        replica = Replica(core)
        replica_box.append(replica)
        self.replicas[addr] = replica
        self.down.discard(addr)
        for other in self.replicas:
            if other != addr and other not in self.down:
                self._connect(addr, other)
        return replica

    def kill(self, addr: str) -> None:
        """The process dies: its queued messages are lost and its peers see the connection drop."""
        self.down.add(addr)
        self.queue = [m for m in self.queue if addr not in (m.src, m.dst)]
        for other, transport in self.transports.items():
            if other != addr and other not in self.down and addr in transport.nodes:
                transport._onNodeDisconnected(transport.nodes[addr])

    def _connect(self, a: str, b: str) -> None:
        for one, other in ((a, b), (b, a)):
            node = self.transports[one].nodes.get(other)
            if node is not None:  # a peer that one's configuration does not name stays unlinked
                self.transports[one]._onNodeConnected(node)

    def linked(self, a: str, b: str) -> bool:
        return a not in self.down and b not in self.down and frozenset((a, b)) not in self.cut

    # -- driving ---------------------------------------------------------------------------

    def live(self) -> list[Replica]:
        return [r for a, r in self.replicas.items() if a not in self.down]

    def tick(self, addr: str | None = None) -> None:
        for a, replica in self.replicas.items():
            if a not in self.down and (addr is None or a == addr):
                replica.core.tick(0.0)

    def deliver(self, keep: Callable[[Message], bool] = lambda m: True) -> int:
        """Deliver every queued message `keep` accepts, in order; the rest stay queued."""
        pending, self.queue = self.queue, []
        delivered = 0
        for message in pending:
            if not self.linked(message.src, message.dst):
                continue
            if not keep(message):
                self.queue.append(message)
                continue
            transport = self.transports[message.dst]
            source = transport.nodes.get(message.src)
            if source is None:
                continue  # the receiver no longer knows the sender (removed): dropped, as on TCP
            transport._onMessageReceived(source, message.body)
            delivered += 1
        return delivered

    def heartbeat(self) -> None:
        """Let the heartbeat period pass for every leader."""
        for replica in self.live():
            replica.core._SyncObj__newAppendEntriesTime = 0

    def settle(self, rounds: int = 30, keep: Callable[[Message], bool] = lambda m: True) -> None:
        for _ in range(rounds):
            self.heartbeat()
            self.tick()
            if not self.deliver(keep) and not self.queue:
                self.tick()
                if not self.queue:
                    return

    def elect(self, addr: str) -> None:
        # Peers grant a pre-vote only once no leader has been heard from for an election
        # timeout (and any lease on their acks has run out): let that time pass.
        self.time += QUIET["raftMinTimeout"] + 1
        self.replicas[addr].core._SyncObj__raftElectionDeadline = 0
        self.settle()
        assert self.replicas[addr].core.is_leader, f"{addr} did not win the election"

    def leader(self) -> Replica | None:
        leaders = [r for r in self.live() if r.core.is_leader]
        return leaders[0] if leaders else None
