"""Each Raft peer's readiness as its `/readyz` last answered, probed in the background.

`/raft/status` reports every voter's readiness; asking the peers while serving that request
would make one slow peer slow every status read (and the console polls it), so a runner
probes them all on an interval, each with a short timeout, and the request reads the cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from codeq.h1 import H1Client, H1Error

# GET url -> status code; raises H1Error (or OSError) when the peer does not answer.
StatusProbe = Callable[[str, float], Awaitable[int]]


class PeerReadiness:
    """`tick()` probes every peer at once; `ready_of(id)` is its last answer (None: never probed)."""

    def __init__(
        self, peer_urls: Mapping[str, str], *, timeout_seconds: float = 1.0, probe: StatusProbe | None = None
    ) -> None:
        self._urls = {peer: url.rstrip("/") for peer, url in peer_urls.items() if url}
        self._timeout = timeout_seconds
        # The base URL only anchors the client: every probe names its own absolute URL.
        self._client: H1Client | None = None
        if probe is None:
            self._client = H1Client(
                "http://localhost", max_connections=max(len(self._urls), 1), connect_timeout=timeout_seconds
            )
            probe = self._get_status
        self._probe = probe
        self._ready: dict[str, bool] = {}

    def follow(self, peer_urls: Mapping[str, str]) -> None:
        """The peers changed (a membership change): probe these from the next tick on."""
        self._urls = {peer: url.rstrip("/") for peer, url in peer_urls.items() if url}

    def ready_of(self, peer: str) -> bool | None:
        return self._ready.get(peer)

    async def tick(self) -> None:
        peers = list(self._urls)
        answers = await asyncio.gather(*(self._is_ready(self._urls[peer]) for peer in peers))
        self._ready = dict(zip(peers, answers, strict=True))

    async def _is_ready(self, url: str) -> bool:
        try:
            status = await asyncio.wait_for(self._probe(f"{url}/readyz", self._timeout), self._timeout)
        except (H1Error, OSError, TimeoutError):
            return False  # a peer that cannot say it is ready is not, as far as anyone here knows
        return status == 200

    async def _get_status(self, url: str, timeout: float) -> int:
        assert self._client is not None
        response = await self._client.request("GET", url, headers=(("User-Agent", "codeq"),), timeout=timeout)
        return response.status

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
