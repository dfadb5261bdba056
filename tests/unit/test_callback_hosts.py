"""Callback host checks: private ranges refused unless allowed, deny list wins, lists parsed."""

from __future__ import annotations

import asyncio
import socket

import pytest

from codeq.service.callback_hosts import CallbackHosts, CallbackRefused


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/x",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://172.16.5.4/",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/",
        "http://[::1]/",
        "http://[fd00::1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
    ],
)
def test_private_literal_addresses_are_refused_by_default(url: str) -> None:
    with pytest.raises(CallbackRefused):
        CallbackHosts().check_url(url)


def test_public_addresses_and_names_pass_by_default() -> None:
    assert CallbackHosts().check_url("https://8.8.8.8/hook") == "8.8.8.8"
    assert CallbackHosts().check_url("https://Hooks.Example.COM./x") == "hooks.example.com"


def test_allow_list_admits_named_hosts_and_networks_only() -> None:
    hosts = CallbackHosts.from_lists("10.0.0.0/8, *.internal.example, 127.0.0.1", "")
    assert hosts.check_url("http://10.2.3.4/") == "10.2.3.4"
    assert hosts.check_url("http://a.internal.example/") == "a.internal.example"
    assert hosts.check_url("http://127.0.0.1:9/") == "127.0.0.1"
    for url in ("http://192.168.0.1/", "https://example.com/", "http://internal.example.evil/"):
        with pytest.raises(CallbackRefused):
            hosts.check_url(url)


def test_deny_list_wins() -> None:
    hosts = CallbackHosts.from_lists("10.0.0.0/8", "10.9.0.0/16,bad.example.com")
    with pytest.raises(CallbackRefused):
        hosts.check_url("http://10.9.1.1/")
    with pytest.raises(CallbackRefused):
        CallbackHosts.from_lists("", "bad.example.com").check_url("https://bad.example.com/")


async def test_names_are_checked_against_what_they_resolve_to() -> None:
    with pytest.raises(CallbackRefused, match="private address"):
        await CallbackHosts().check_resolved("http://localhost:9/")
    await CallbackHosts.from_lists("localhost", "").check_resolved("http://localhost:9/")


def test_config_rejects_a_malformed_cidr() -> None:
    from codeq.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match=r"webhookAllowHosts: '10\.0\.0\.0/33' is not a valid CIDR"):
        load_settings(environ={"WEBHOOK_ALLOW_HOSTS": "example.com, 10.0.0.0/33"}, overrides={"dev": True})
    settings = load_settings(
        environ={"WEBHOOK_DENY_HOSTS": "10.0.0.0/8,bad.example"}, overrides={"dev": True}
    )
    assert settings.webhooks.deny_hosts == "10.0.0.0/8,bad.example"


# IPv6 forms that carry an IPv4 address: each leads to the metadata endpoint, 10.0.0.1 or loopback.
EMBEDDED_PRIVATE = [
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "http://[64:ff9b::10.0.0.1]/",
    "http://[64:ff9b:1::808:808]/",  # local-use NAT64: never public
    "http://[2002:a9fe:a9fe::1]/",  # 6to4
    "http://[2002:7f00:1::]/",
    "http://[::169.254.169.254]/",  # IPv4-compatible
    "http://[::7f00:1]/",
    "http://[::ffff:0:a9fe:a9fe]/",  # IPv4-translated
    "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/",  # Teredo, client 10.0.0.1
]
EMBEDDED_PUBLIC = ["http://[64:ff9b::808:808]/", "http://[2002:808:808::1]/", "http://[::ffff:8.8.8.8]/"]


@pytest.mark.parametrize("url", EMBEDDED_PRIVATE)
async def test_ipv6_carrying_a_private_ipv4_is_refused_at_create_and_delivery(url: str) -> None:
    with pytest.raises(CallbackRefused, match="private address"):
        CallbackHosts().check_url(url)
    with pytest.raises(CallbackRefused, match="private address"):
        await CallbackHosts().check_resolved(url)


@pytest.mark.parametrize("url", EMBEDDED_PUBLIC)
def test_ipv6_carrying_a_public_ipv4_passes(url: str) -> None:
    assert CallbackHosts().check_url(url) == url.split("[")[1].split("]")[0]


def test_deny_and_allow_lists_cover_the_ipv4_an_ipv6_address_carries() -> None:
    with pytest.raises(CallbackRefused, match="not allowed"):
        CallbackHosts.from_lists("", "8.8.8.0/24").check_url("http://[64:ff9b::808:808]/")
    assert CallbackHosts.from_lists("10.0.0.0/8", "").check_url("http://[64:ff9b::a00:1]/")


async def test_a_name_resolving_to_nat64_of_a_private_address_is_refused_at_delivery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()

    async def resolve(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("64:ff9b::a9fe:a9fe", port, 0, 0))]

    monkeypatch.setattr(loop, "getaddrinfo", resolve)
    hosts = CallbackHosts()
    assert hosts.check_url("https://hooks.example.com/x") == "hooks.example.com"
    with pytest.raises(CallbackRefused, match="private address"):
        await hosts.check_resolved("https://hooks.example.com/x")
