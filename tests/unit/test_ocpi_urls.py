"""The outgoing-URL policy of OCPI (SSRF): which partner-supplied URLs we call."""

from __future__ import annotations

import pytest

from backend_stub.ocpi.client import CallFailed, Client
from backend_stub.ocpi.urls import PublicResolver, UnsafeUrl, check_url

PRIVATE = (
    "http://127.0.0.1:8080/ocpi/versions",
    "http://10.1.2.3/r",
    "http://172.16.0.1/r",
    "http://192.168.1.10/r",
    "http://169.254.169.254/latest/meta-data",  # cloud metadata, link-local
    "http://100.64.0.1/r",  # carrier-grade NAT
    "http://0.0.0.0/r",
    "http://[::1]/r",
    "http://[fe80::1]/r",
    "http://[fd00::1]/r",
    "http://[::ffff:127.0.0.1]/r",  # IPv4-mapped loopback
    "http://224.0.0.1/r",
    "http://localhost/r",
    "http://api.localhost/r",
)


@pytest.mark.parametrize("url", PRIVATE)
def test_private_loopback_and_link_local_addresses_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        check_url(url, allow_private=False)
    check_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    (
        "ftp://93.184.216.34/r",
        "file:///etc/passwd",
        "gopher://example.com/",
        "http://user:secret@example.com/r",
        "http://user@example.com/r",
        "http:///no-host",
        "http://example.com:99999/r",
    ),
)
def test_other_schemes_credentials_and_malformed_urls_are_refused_even_when_private_is_allowed(
    url: str,
) -> None:
    for allow in (False, True):
        with pytest.raises(UnsafeUrl):
            check_url(url, allow_private=allow)


def test_public_addresses_and_names_pass_the_check() -> None:
    for url in ("http://93.184.216.34/r", "https://example.com/ocpi/versions", "https://[2606:4700::1111]/r"):
        check_url(url, allow_private=False)


def test_a_refused_url_is_a_refusal_that_no_retry_cures() -> None:
    client = Client(5.0)
    with pytest.raises(CallFailed) as failed:
        client.check("http://127.0.0.1/r")
    assert failed.value.unsafe and failed.value.refused


async def test_a_name_is_resolved_to_its_public_addresses_only() -> None:
    # "localhost" resolves (from /etc/hosts) to loopback only: refused when connecting, unless allowed.
    with pytest.raises(OSError):
        await PublicResolver(lambda: False).resolve("localhost", 80)
    allowed = await PublicResolver(lambda: True).resolve("localhost", 80)
    assert allowed and all(r["host"] in ("127.0.0.1", "::1") for r in allowed)
