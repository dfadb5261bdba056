"""Which hosts codeq may call back: allow and deny lists, private ranges refused by default.

A result webhook or a subscription's callback URL is chosen by a client, and codeq will POST
to it from inside the network it runs in. Unless an operator allows it, codeq refuses any
address that is not a public unicast one (loopback, RFC 1918, link-local — which includes
cloud metadata endpoints — CGNAT, unique-local, multicast, reserved), so it cannot be used to
probe or poke internal services. Names are checked when the URL is accepted (literal IPs and
the lists) and again at every delivery against every address the name resolves to, so a
name that later resolves to a private address is still refused.

An IPv6 address that carries an IPv4 one — IPv4-mapped and -translated, NAT64
(`64:ff9b::/96`), 6to4 (`2002::/16`), IPv4-compatible (`::/96`), Teredo — reaches that IPv4
host through a translator or tunnel, so it is judged by the IPv4 address it carries (and
`http://[64:ff9b::a9fe:a9fe]/` is the metadata endpoint). The local-use NAT64 prefix
`64:ff9b:1::/48` (RFC 8215) is never public: where it embeds the address is the site's choice.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from codeq.core.errors import FIELD, InvalidInput

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")


class CallbackRefused(InvalidInput):
    """The callback URL's host is not allowed."""


@dataclass(frozen=True, slots=True)
class HostRule:
    """One list entry: a CIDR (`10.0.0.0/8`), an address, a name, or `*.suffix`."""

    network: Network | None = None
    name: str = ""

    @classmethod
    def parse(cls, text: str) -> HostRule:
        text = text.strip().lower()
        try:
            return cls(network=ipaddress.ip_network(text, strict=False))
        except ValueError:
            return cls(name=text.rstrip("."))

    def matches_name(self, host: str) -> bool:
        if not self.name:
            return False
        if self.name.startswith("*."):
            return host.endswith(self.name[1:])
        return host == self.name

    def matches_address(self, address: Address) -> bool:
        """The address, or an IPv4 address it carries, is in this network."""
        if self.network is None:
            return False
        return any(candidate in self.network for candidate in (address, *embedded_ipv4(address)))


def embedded_ipv4(address: Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to through a translator or tunnel."""
    if isinstance(address, ipaddress.IPv4Address):
        return []
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)  # (server, client): traffic reaches both
    if address in _NAT64 or address in _IPV4_COMPATIBLE or address in _IPV4_TRANSLATED:
        return [ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)]
    return []


def _public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address in _NAT64_LOCAL:
        return False
    carried = embedded_ipv4(address)
    if carried:
        return all(_public(ipv4) for ipv4 in carried)
    return address.is_global and not address.is_multicast


class CallbackHosts:
    """The allow list (empty: any public host) and the deny list (always wins)."""

    def __init__(self, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> None:
        self.allow = [HostRule.parse(entry) for entry in allow if entry.strip()]
        self.deny = [HostRule.parse(entry) for entry in deny if entry.strip()]

    @classmethod
    def from_lists(cls, allow: str, deny: str) -> CallbackHosts:
        """From comma-separated lists, as the config gives them."""
        return cls(allow.split(","), deny.split(","))

    def check_url(self, url: str, field: str = "webhook") -> str:
        """Refuse a URL whose host is listed, or is a literal address that is not allowed;
        returns the host name (lower case)."""
        host = (urlsplit(url).hostname or "").lower().rstrip(".")
        if not host:
            raise CallbackRefused(f"invalid {FIELD} url", field=field)
        address = _literal(host)
        if any(rule.matches_name(host) for rule in self.deny) or (
            address is not None and any(rule.matches_address(address) for rule in self.deny)
        ):
            raise CallbackRefused(f"{FIELD} host {host} is not allowed", field=field)
        named = any(rule.matches_name(host) for rule in self.allow)
        if self.allow and not named and (address is None or not self._allowed_address(address)):
            raise CallbackRefused(f"{FIELD} host {host} is not in the allow list", field=field)
        if address is not None:
            self.check_address(host, address, field, named=named)
        return host

    def check_address(self, host: str, address: Address, field: str, *, named: bool = False) -> None:
        """A private address passes only when the allow list names its host or covers it."""
        if any(rule.matches_address(address) for rule in self.deny):
            raise CallbackRefused(f"{FIELD} host {host} resolves to a denied address", field=field)
        if not _public(address) and not named and not self._allowed_address(address):
            raise CallbackRefused(f"{FIELD} host {host} resolves to a private address", field=field)

    async def check_resolved(self, url: str, field: str = "webhook") -> None:
        """`check_url`, then every address the host resolves to right now."""
        host = self.check_url(url, field)
        if _literal(host) is not None:
            return
        named = any(rule.matches_name(host) for rule in self.allow)
        port = urlsplit(url).port or 443
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise CallbackRefused(f"{FIELD} host {host} does not resolve: {exc}", field=field) from None
        for info in infos:
            self.check_address(host, ipaddress.ip_address(info[4][0]), field, named=named)

    def _allowed_address(self, address: Address) -> bool:
        return any(rule.matches_address(address) for rule in self.allow)


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
