"""SSRF guard: outbound URLs must resolve to public addresses, checked at startup and connect time.

Two checks, one rule set:
- `check_url` / `resolve_checked` at startup, so a bad `LEADSTREAM_*_URL` fails the process early
  with a message that names the value;
- `SafeResolver`, installed in every sink's aiohttp connector, checks again on every new
  connection. The connector connects to exactly the addresses the resolver returned, so a
  DNS answer that changes between the two checks (DNS rebinding) is caught, not trusted.
  IP-literal hosts never reach a resolver in aiohttp, so `check_url` runs before every request too.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from stream.errors import UnsafeUrlError
from stream.redact import redact_url

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance-metadata endpoints: refused even when private URLs are allowed, because no
# local receiver lives there and their answers are credentials.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, DigitalOcean
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("fd00:ec2::254"),  # AWS IMDS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)
METADATA_HOSTNAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})


def address_problem(ip: IPAddress, *, allow_private: bool) -> str | None:
    """Why `ip` must not be contacted, or None when it may be.

    Always refused: metadata, unspecified, multicast and reserved addresses (never a receiver).
    Refused unless `allow_private`: loopback, private, link-local, shared (CGNAT) and every other
    non-global address.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        # ::ffff:127.0.0.1 and friends reach the embedded IPv4 address: judge that one.
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            return address_problem(embedded, allow_private=allow_private)
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_loopback:  # before is_reserved: ::1 lies inside the reserved ::/8
        return None if allow_private else "a loopback address"
    if ip.is_reserved:
        return "a reserved address"
    if allow_private:
        return None
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_private:
        return "a private address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "a site-local address"  # fec0::/10, deprecated but still routed inside sites
    if not ip.is_global:
        return "a non-public address"
    return None


def check_address(host: str, ip: IPAddress, *, allow_private: bool) -> None:
    """Raise UnsafeUrlError when `ip` (what `host` resolved to) must not be contacted."""
    problem = address_problem(ip, allow_private=allow_private)
    if problem:
        hint = "" if allow_private else " (LEADSTREAM_ALLOW_PRIVATE_URLS=true for local use)"
        raise UnsafeUrlError(f"{host!r} resolves to {ip}, {problem}: refused{hint}")


def check_url(url: str | URL, *, allow_private: bool) -> URL:
    """Check what can be checked without DNS: scheme, host name, IP literal. Returns the URL."""
    parsed = URL(url) if isinstance(url, str) else url
    allowed_schemes = {"https", "http"} if allow_private else {"https"}
    if parsed.scheme not in allowed_schemes:
        raise UnsafeUrlError(
            f"{redact_url(str(url))!r}: scheme {parsed.scheme!r} refused, want "
            + (
                "http or https"
                if allow_private
                else "https (http only with LEADSTREAM_ALLOW_PRIVATE_URLS=true)"
            )
        )
    host = (parsed.host or "").rstrip(".").lower()
    if not host:
        raise UnsafeUrlError(f"{redact_url(str(url))!r}: no host")
    if host in METADATA_HOSTNAMES:
        raise UnsafeUrlError(f"{redact_url(str(url))!r}: {host} is a cloud metadata host: refused")
    ip = _ip_literal(host)
    if ip is not None:
        check_address(host, ip, allow_private=allow_private)
    return parsed


async def resolve_checked(url: str | URL, *, allow_private: bool) -> list[IPAddress]:
    """Check `url` and every address its host resolves to (startup check); returns them."""
    parsed = check_url(url, allow_private=allow_private)
    host = parsed.host or ""
    resolver = SafeResolver(allow_private=allow_private)
    results = await resolver.resolve(host, parsed.port or 443, socket.AF_UNSPEC)
    return [ipaddress.ip_address(r["host"]) for r in results]


class SafeResolver(AbstractResolver):
    """aiohttp resolver that refuses a host when any of its addresses is unsafe.

    Refusing on *any* bad address (not filtering it out) keeps the rule simple: a name that
    mixes a public and a private address is misconfigured or hostile either way.
    """

    def __init__(self, *, allow_private: bool, inner: AbstractResolver | None = None) -> None:
        self._allow_private = allow_private
        self._inner = inner or aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        name = host.rstrip(".").lower()
        if name in METADATA_HOSTNAMES:
            raise UnsafeUrlError(f"{host!r} is a cloud metadata host: refused")
        results = await self._inner.resolve(host, port, family)
        if not results:
            raise UnsafeUrlError(f"{host!r} resolves to no address")
        for result in results:
            ip = ipaddress.ip_address(result["host"].split("%", 1)[0])
            check_address(host, ip, allow_private=self._allow_private)
        return results

    async def close(self) -> None:
        await self._inner.close()


def safe_session(
    *,
    allow_private: bool,
    timeout: float,
    limit: int = 0,
    resolver: AbstractResolver | None = None,
) -> aiohttp.ClientSession:
    """A client session whose every connection goes through `SafeResolver`.

    No proxies from the environment (a proxy would resolve names where we cannot check them),
    no DNS cache (each new connection is checked), and no connection limit by default: each lane
    bounds its own concurrency, so a stalled routine lane cannot hold connections a P1 needs.
    """
    connector = aiohttp.TCPConnector(
        resolver=SafeResolver(allow_private=allow_private, inner=resolver),
        use_dns_cache=False,
        limit=limit,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        trust_env=False,
    )


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def check_urls(urls: Iterable[str], *, allow_private: bool) -> None:
    """check_url on each non-empty URL; used by config validation."""
    for url in urls:
        if url:
            check_url(url, allow_private=allow_private)
