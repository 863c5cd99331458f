"""SSRF rules: a table of addresses, URL checks, and the connect-time resolver."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from stream.errors import DeliveryError, UnsafeUrlError
from stream.notify.sinks import HttpSink
from stream.notify.ssrf import (
    SafeResolver,
    address_problem,
    check_url,
    resolve_checked,
    safe_session,
)

# address, refused without allow_private, refused with allow_private
ADDRESSES = [
    ("127.0.0.1", True, False),
    ("127.8.9.10", True, False),
    ("10.1.2.3", True, False),
    ("172.16.0.1", True, False),
    ("172.31.255.254", True, False),
    ("192.168.1.1", True, False),
    ("169.254.1.1", True, False),
    ("100.64.0.1", True, False),
    ("::1", True, False),
    ("fc00::1", True, False),
    ("fe80::1", True, False),
    ("::ffff:127.0.0.1", True, False),
    ("::ffff:10.0.0.1", True, False),
    # site-local fec0::/10 (issue 12: was let through), documentation and benchmark ranges
    ("fec0::1", True, False),
    ("fed0:1::1", True, False),
    ("feff:ffff::1", True, False),
    ("2001:db8::1", True, False),
    ("198.18.0.1", True, False),
    # never allowed: metadata, unspecified, multicast, reserved
    ("169.254.169.254", True, True),
    ("fd00:ec2::254", True, True),
    ("::ffff:169.254.169.254", True, True),
    ("0.0.0.0", True, True),
    ("::", True, True),
    ("224.0.0.1", True, True),
    ("ff02::1", True, True),
    ("240.0.0.1", True, True),
    # public
    ("8.8.8.8", False, False),
    ("172.32.0.1", False, False),
    ("2606:4700:4700::1111", False, False),
]


@pytest.mark.parametrize(("address", "refused", "refused_when_allowed"), ADDRESSES)
def test_address_table(address: str, refused: bool, refused_when_allowed: bool) -> None:
    ip = ipaddress.ip_address(address)
    assert (address_problem(ip, allow_private=False) is not None) is refused
    assert (address_problem(ip, allow_private=True) is not None) is refused_when_allowed


@pytest.mark.parametrize(
    ("url", "allow_private", "ok"),
    [
        ("https://hooks.example.com/x", False, True),
        ("http://hooks.example.com/x", False, False),
        ("http://hooks.example.com/x", True, True),
        ("ftp://hooks.example.com/x", True, False),
        ("https://127.0.0.1/x", False, False),
        ("http://127.0.0.1:8080/x", True, True),
        ("https://[::1]/x", False, False),
        ("https://10.0.0.5/x", False, False),
        ("https://169.254.169.254/latest/meta-data", False, False),
        ("http://169.254.169.254/latest/meta-data", True, False),
        ("http://metadata.google.internal/computeMetadata/v1", True, False),
        ("https://METADATA.GOOGLE.INTERNAL./x", False, False),
        ("https:///nohost", False, False),
    ],
)
def test_check_url(url: str, allow_private: bool, ok: bool) -> None:
    if ok:
        check_url(url, allow_private=allow_private)
    else:
        with pytest.raises(UnsafeUrlError):
            check_url(url, allow_private=allow_private)


async def test_hostname_resolving_to_loopback_is_refused() -> None:
    with pytest.raises(UnsafeUrlError, match="loopback"):
        await resolve_checked("https://localhost/hook", allow_private=False)
    assert await resolve_checked("http://localhost/hook", allow_private=True)


class FakeResolver(AbstractResolver):
    """Answers every name with a fixed address: stands in for a rebinding DNS server."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.calls = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.calls += 1
        return [
            ResolveResult(
                hostname=host, host=self.address, port=port, family=socket.AF_INET, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        pass


async def test_resolver_refuses_any_unsafe_address() -> None:
    resolver = SafeResolver(allow_private=False, inner=FakeResolver("10.0.0.7"))
    with pytest.raises(UnsafeUrlError, match="private"):
        await resolver.resolve("hooks.example.com", 443)
    public = SafeResolver(allow_private=False, inner=FakeResolver("93.184.216.34"))
    assert (await public.resolve("hooks.example.com", 443))[0]["host"] == "93.184.216.34"


async def test_connect_time_check_catches_rebinding() -> None:
    """The name passed the startup check once; at connect time it points at loopback."""
    fake = FakeResolver("127.0.0.1")
    async with safe_session(allow_private=False, timeout=2, resolver=fake) as session:
        with pytest.raises(UnsafeUrlError, match="loopback"):
            await session.post("https://rebind.example.com/hook", data=b"{}")
    assert fake.calls == 1  # refused after resolving, before any connection


async def test_http_sink_refuses_ip_literal_every_time() -> None:
    sink = HttpSink("https://127.0.0.1/hook", timeout=1, allow_private=False)
    try:
        with pytest.raises(DeliveryError) as info:
            await sink.post(b"{}", {})
        assert info.value.retriable is False
    finally:
        await sink.close()
