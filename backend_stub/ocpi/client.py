"""Calls to a partner's OCPI endpoints: the token header, request ids, routing headers, the envelope checked."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from backend_stub.errors import CentralError
from backend_stub.ocpi.protocol import Status, parse_json, to_json, token_header
from backend_stub.ocpi.urls import PublicResolver, UnsafeUrl, check_url

MAX_ANSWER_BYTES: Final = 4 * 1024 * 1024  # a partner's answer is read up to this size, then refused
AUTH_OR_THROTTLE: Final = frozenset({401, 403, 408, 429})


class CallFailed(CentralError):
    """A call to a partner got no usable answer: unreachable, an HTTP error, not OCPI, or an OCPI error code."""

    def __init__(
        self,
        message: str,
        status_code: int | None = None,
        http_status: int | None = None,
        *,
        unsafe: bool = False,
    ) -> None:
        """Keep the OCPI status code and the HTTP status the partner answered with, if any; ``unsafe``: the URL
        itself is one we do not call (the outgoing-URL policy)."""
        super().__init__(message)
        self.status_code = status_code
        self.http_status = http_status
        self.unsafe = unsafe

    @property
    def refused(self) -> bool:
        """Whether the partner refused the request itself: an OCPI client error (2xxx, OCPI 2.2.1 §5.2) or an
        HTTP 4xx, but not about our credentials (401/403) nor a throttle (408/429), which retrying may cure.

        Unreachable, HTTP 5xx and OCPI 3xxx server errors are not refusals: the same request may succeed later.
        A URL our policy refuses counts as refused: retrying will not change it.
        """
        if self.unsafe:
            return True
        if self.http_status in AUTH_OR_THROTTLE:
            return False
        if self.status_code is not None and 2000 <= self.status_code < 3000:
            return True
        return self.http_status is not None and 400 <= self.http_status < 500


@dataclass(frozen=True)
class Answer:
    """A partner's successful answer: HTTP status, the envelope's data and the response headers."""

    http_status: int
    data: Any
    headers: dict[str, str]


class Client:
    """One aiohttp session for every call to every partner; each call names its own token and routing."""

    def __init__(
        self,
        timeout_s: float,
        request_ids: Callable[[], str] = lambda: str(uuid.uuid4()),
        *,
        allow_private: bool = False,
    ) -> None:
        """Calls time out after ``timeout_s``; ``request_ids`` gives each request its X-Request-ID;
        ``allow_private``: URLs may name private/loopback addresses (else refused, see `urls`)."""
        self.timeout_s = timeout_s
        self.request_ids = request_ids
        self.allow_private = allow_private
        self._session: aiohttp.ClientSession | None = None
        self._resolver: PublicResolver | None = None

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None

    def check(self, url: str) -> None:
        """CallFailed (unsafe) if the outgoing-URL policy refuses ``url``; no request is made."""
        try:
            check_url(url, allow_private=self.allow_private)
        except UnsafeUrl as exc:
            raise CallFailed(f"refused to call {url[:80]!r}: {exc}", unsafe=True) from None

    async def call(
        self,
        method: str,
        url: str,
        token: str,
        *,
        body: Any = None,
        routing: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> Answer:
        """Send one OCPI request; the answer if HTTP 2xx and status_code 1xxx, else CallFailed.

        ``timeout_s`` shortens the client's timeout for this call (a charger waits on a real-time answer).
        """
        self.check(url)
        if self._session is None:
            self._resolver = PublicResolver(lambda: self.allow_private)
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                connector=aiohttp.TCPConnector(resolver=self._resolver),
            )
        request_id = self.request_ids()
        headers = {
            "Authorization": token_header(token),
            "X-Request-ID": request_id,
            "X-Correlation-ID": request_id,
            **(routing or {}),
        }
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = to_json(body).encode()
        try:
            timeout = aiohttp.ClientTimeout(total=timeout_s) if timeout_s is not None else None
            async with self._session.request(
                method, url, data=data, headers=headers, allow_redirects=False, timeout=timeout
            ) as response:
                raw = await response.content.read(MAX_ANSWER_BYTES + 1)
                if len(raw) > MAX_ANSWER_BYTES:
                    raise CallFailed(f"{method} {url}: answer larger than {MAX_ANSWER_BYTES} bytes")
                http_status = response.status
                answer_headers = dict(response.headers)
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            raise CallFailed(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
        try:
            envelope = parse_json(raw)
        except CentralError:
            raise CallFailed(
                f"{method} {url}: HTTP {http_status}, answer is not JSON", None, http_status
            ) from None
        code = envelope.get("status_code") if isinstance(envelope, dict) else None
        if type(code) is not int:
            raise CallFailed(
                f"{method} {url}: HTTP {http_status}, answer is not an OCPI envelope", None, http_status
            )
        if not 200 <= http_status < 300 or not 1000 <= code < 2000:
            message = str(envelope.get("status_message", ""))[:200]
            raise CallFailed(
                f"{method} {url}: HTTP {http_status}, OCPI {code} {message}".rstrip(), code, http_status
            )
        return Answer(http_status, envelope.get("data"), answer_headers)


def needs(condition: bool, status: Status, message: str) -> None:
    """CallFailed with ``status`` unless ``condition`` (a partner's answer lacks what the protocol requires)."""
    if not condition:
        raise CallFailed(message, int(status))
