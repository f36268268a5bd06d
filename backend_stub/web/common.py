"""What every web module shares: the application keys, the admin token and session, JSON errors.

The admin token comes from ``CSMS_ADMIN_TOKEN``; without it one is generated at the first start, printed once,
and only its SHA-256 digest is kept in the store. API clients send ``Authorization: Bearer <token>``; the
dashboard logs in with the same token and then carries a session cookie derived from it (stateless, so it
survives restarts, and changing the token logs every browser out).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from backend_stub.domain.central import Central
    from backend_stub.store import CsmsStore

TOKEN_ENV = "CSMS_ADMIN_TOKEN"
SESSION_COOKIE = "csms_session"
STATIC_DIR = Path(__file__).with_name("static")
TEMPLATE_DIR = Path(__file__).with_name("templates")

CSMS: web.AppKey[Central] = web.AppKey("csms")
TOKEN_DIGEST: web.AppKey[str] = web.AppKey("admin_token_sha256", str)
# Paths other packages add to the REST API (the OCPI partners), merged into its OpenAPI description.
OPENAPI_EXTRA: web.AppKey[dict[str, Any]] = web.AppKey("openapi_extra")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def token_digest(token: str) -> str:
    """SHA-256 hex digest of a token."""
    return hashlib.sha256(token.encode(errors="surrogateescape")).hexdigest()


def resolve_admin_token(store: CsmsStore, environ: Mapping[str, str] = os.environ) -> tuple[str, str | None]:
    """The admin token's digest, and the token itself when it was generated now (to be printed once).

    ``CSMS_ADMIN_TOKEN`` wins and is remembered as the current token; otherwise the stored digest is used;
    otherwise a new random token is generated and its digest stored.
    """
    from_env = environ.get(TOKEN_ENV, "")
    if from_env:
        digest = token_digest(from_env)
        if store.admin_token_digest() != digest:
            store.set_admin_token_digest(digest)
        return digest, None
    stored = store.admin_token_digest()
    if stored is not None:
        return stored, None
    token = secrets.token_urlsafe(24)
    digest = token_digest(token)
    store.set_admin_token_digest(digest)
    return digest, token


def session_value(digest: str) -> str:
    """The dashboard's session cookie value for an admin token digest."""
    return hmac.new(bytes.fromhex(digest), b"csms dashboard session v1", hashlib.sha256).hexdigest()


def same_text(a: str, b: str) -> bool:
    """Constant-time equality of two strings; any text is fine (``hmac.compare_digest`` raises on non-ASCII str)."""
    return hmac.compare_digest(a.encode(errors="surrogatepass"), b.encode(errors="surrogatepass"))


def token_ok(app: web.Application, token: str) -> bool:
    """Whether ``token`` is the admin token (constant time)."""
    return hmac.compare_digest(token_digest(token), app[TOKEN_DIGEST])


def is_admin(request: web.Request) -> bool:
    """Whether the request carries the admin bearer token or a valid dashboard session cookie."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return token_ok(request.app, value.strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    return cookie is not None and same_text(cookie, session_value(request.app[TOKEN_DIGEST]))


def json_error(status: int, message: str, **extra: Any) -> web.Response:
    """A JSON error body ``{"error": message, ...}`` with the given HTTP status."""
    return web.json_response({"error": message, **extra}, status=status)


def unauthorized() -> web.Response:
    """401 for a missing or wrong admin token."""
    response = json_error(401, "missing or invalid admin token")
    response.headers["WWW-Authenticate"] = 'Bearer realm="csms"'
    return response
