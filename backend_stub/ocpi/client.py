"""Calls to a partner's OCPI endpoints: the token header, request ids, routing headers, the envelope checked."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from backend_stub.errors import CentralError
from backend_stub.ocpi.protocol import Status, parse_json, to_json, token_header

MAX_ANSWER_BYTES: Final = 4 * 1024 * 1024  # a partner's answer is read up to this size, then refused


class CallFailed(CentralError):
    """A call to a partner got no usable answer: unreachable, an HTTP error, not OCPI, or an OCPI error code."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        """Keep the OCPI status code the partner answered with, if any."""
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class Answer:
    """A partner's successful answer: HTTP status, the envelope's data and the response headers."""

    http_status: int
    data: Any
    headers: dict[str, str]


class Client:
    """One aiohttp session for every call to every partner; each call names its own token and routing."""

    def __init__(self, timeout_s: float, request_ids: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        """Calls time out after ``timeout_s``; ``request_ids`` gives each request its X-Request-ID."""
        self.timeout_s = timeout_s
        self.request_ids = request_ids
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

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
        if not url.startswith(("http://", "https://")):
            raise CallFailed(f"not an http(s) URL: {url[:80]!r}")
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
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
            raise CallFailed(f"{method} {url}: HTTP {http_status}, answer is not JSON") from None
        code = envelope.get("status_code") if isinstance(envelope, dict) else None
        if type(code) is not int:
            raise CallFailed(f"{method} {url}: HTTP {http_status}, answer is not an OCPI envelope")
        if not 200 <= http_status < 300 or not 1000 <= code < 2000:
            message = str(envelope.get("status_message", ""))[:200]
            raise CallFailed(f"{method} {url}: HTTP {http_status}, OCPI {code} {message}".rstrip(), code)
        return Answer(http_status, envelope.get("data"), answer_headers)


def needs(condition: bool, status: Status, message: str) -> None:
    """CallFailed with ``status`` unless ``condition`` (a partner's answer lacks what the protocol requires)."""
    if not condition:
        raise CallFailed(message, int(status))
