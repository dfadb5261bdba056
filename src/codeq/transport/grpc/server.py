"""The producer and worker stream servers: one grpc.aio server per listener, started and stopped."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

import grpc
from google.protobuf.message import Message

from codeq.service.container import Services
from codeq.transport.grpc import producer, worker
from codeq.transport.grpc.observe import StreamObserver
from codeq.transport.grpc.servicer import StreamLimits, StreamServicer
from codeq.transport.tls import ServerTls

log = logging.getLogger("codeq.grpc")

# Server pings find dead clients (their streams, and the Ready waits on them, then end);
# clients may ping as often as every 10 s. The reference set no keepalive (spec 07 gap 5).
_KEEPALIVE = (
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
)


class StreamServer:
    """One stream service on its own listener (spec 07 §1)."""

    def __init__(
        self,
        name: str,
        address: str,
        servicer: StreamServicer,
        service: str,
        tls: ServerTls | None = None,
        *,
        reuse_port: bool = False,
    ) -> None:
        self.name = name
        self.tls = tls
        self.address = address
        self.servicer = servicer
        self.port = 0  # the bound port once started (useful when the address asks for port 0)
        limit = servicer.limits.max_message_bytes
        # SO_REUSEPORT off: a port another process holds must fail to bind, not be shared;
        # on only for the processes of one node, which share the port on purpose (ADR 0009).
        options = [
            ("grpc.so_reuseport", int(reuse_port)),
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.max_concurrent_streams", servicer.limits.max_concurrent_streams),
            *_KEEPALIVE,
        ]
        self._server = grpc.aio.server(options=options)
        # Events arrive as raw bytes and are parsed by the servicer, so a malformed one gets an
        # in-stream error instead of ending the stream.
        handler = grpc.stream_stream_rpc_method_handler(
            servicer.handle_rpc, request_deserializer=None, response_serializer=_serialize
        )
        handlers = {"Stream": handler}
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
        self._server.add_registered_method_handlers(service, handlers)

    async def start(self) -> None:
        try:
            self.port = self._bind(_listen_address(self.address))
        except RuntimeError:
            await self._server.stop(None)
            raise OSError(f"cannot listen on {self.address} for the {self.name} stream") from None
        await self._server.start()
        log.debug("%s stream listening on %s (port %d)", self.name, self.address, self.port)

    def _bind(self, address: str) -> int:
        if self.tls is None:
            return int(self._server.add_insecure_port(address))
        key, chain, client_ca = self.tls.pem()
        credentials = grpc.ssl_server_credentials(
            [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
        )
        return int(self._server.add_secure_port(address, credentials))

    async def stop(self, grace_seconds: float) -> None:
        """End every stream once its handlers have answered, then stop within the grace period."""
        self.servicer.shutdown()
        await self._server.stop(grace_seconds)


@dataclass(slots=True)
class StreamServers:
    """The configured stream servers; an empty address leaves that one off."""

    producer: StreamServer | None = None
    worker: StreamServer | None = None
    _started: list[StreamServer] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        services: Services,
        *,
        producer_addr: str,
        worker_addr: str,
        limits: StreamLimits,
        tls: ServerTls | None = None,
        reuse_port: bool = False,
    ) -> StreamServers:
        servers = cls()
        if producer_addr:
            servicer: StreamServicer = producer.ProducerServicer(services, limits)
            servers.producer = StreamServer(
                "producer", producer_addr, servicer, producer.SERVICE, tls, reuse_port=reuse_port
            )
        if worker_addr:
            servicer = worker.WorkerServicer(services, limits)
            servers.worker = StreamServer(
                "worker", worker_addr, servicer, worker.SERVICE, tls, reuse_port=reuse_port
            )
        return servers

    def observe(self, observer: StreamObserver) -> None:
        """Time and count every received message (and trace it, when tracing is on)."""
        for server in (self.producer, self.worker):
            if server is not None:
                server.servicer.observe = functools.partial(observer.wrap, server.name)

    async def start(self) -> None:
        for server in (self.producer, self.worker):
            if server is not None:
                await server.start()
                self._started.append(server)

    async def stop(self, grace_seconds: float) -> None:
        while self._started:
            await self._started.pop().stop(grace_seconds)


def _serialize(event: Message) -> bytes:
    return event.SerializeToString()


def _listen_address(address: str) -> str:
    """Go's `:9092` (every interface) in the form gRPC's core understands."""
    return "0.0.0.0" + address if address.startswith(":") else address
