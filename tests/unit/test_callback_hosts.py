"""Callback host checks: private ranges refused unless allowed, deny list wins, lists parsed."""

from __future__ import annotations

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
