"""What URLs we call (SSRF policy): partners hand us URLs (versions, endpoints, response_url) that we then fetch;
only http(s), no credentials in the URL, and, unless the operator allows it, no private, loopback, link-local or
otherwise non-public address, checked on the URL's literal address and again on every address a name resolves
to when the connection is made (a name cannot be switched to a private address after the check)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from backend_stub.errors import CentralError

SCHEMES: Final = frozenset({"http", "https"})


class UnsafeUrl(CentralError):
    """A URL we will not call; the message says why."""


def check_address(address: str) -> None:
    """UnsafeUrl unless ``address`` (an IP address) is a public unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if not ip.is_global or ip.is_multicast:
        raise UnsafeUrl(f"{address} is not a public address (private, loopback, link-local or reserved)")


def check_url(url: str, *, allow_private: bool) -> None:
    """UnsafeUrl unless ``url`` is an http(s) URL without credentials whose host, if an IP address, is public
    (any host if ``allow_private``). A host name is checked when it is resolved (`PublicResolver`)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise UnsafeUrl(f"not a URL: {url[:80]!r}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise UnsafeUrl(f"not an http(s) URL: {url[:80]!r}")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("a URL with credentials in it is not called")
    if not host:
        raise UnsafeUrl(f"no host in {url[:80]!r}")
    if allow_private:
        return
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        if host.rstrip(".").lower() == "localhost" or host.lower().endswith(".localhost"):
            raise UnsafeUrl(f"{host} is a loopback name") from None
        return  # a name: its addresses are checked when it is resolved
    check_address(host)


class PublicResolver(AbstractResolver):
    """Resolves names to their public addresses only (all, if ``allow_private()``); a name with none fails."""

    def __init__(self, allow_private: Callable[[], bool]) -> None:
        """Resolve with aiohttp's default resolver; ``allow_private`` is asked at each resolution."""
        self._inner = DefaultResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The public addresses of ``host``; OSError (a connection error for aiohttp) if it has none."""
        found = await self._inner.resolve(host, port, family)
        if self._allow_private():
            return found
        public = []
        for result in found:
            try:
                check_address(result["host"])
            except (UnsafeUrl, ValueError):
                continue
            public.append(result)
        if not public:
            raise OSError(f"{host} resolves to no public address")
        return public

    async def close(self) -> None:
        """Close the inner resolver."""
        await self._inner.close()
