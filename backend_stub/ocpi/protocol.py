"""OCPI 2.2.1 transport rules: the response envelope, status codes, the token header, times and request headers."""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, NoReturn

from backend_stub.errors import CentralError

VERSION: Final = "2.2.1"
MAX_TOKEN_LENGTH: Final = 64  # OCPI 2.2.1 §7.3.1 Credentials.token is string(64)
MAX_URL_LENGTH: Final = 255  # OCPI 2.2.1 §16.7 URL is string(255)
MAX_BODY_BYTES: Final = 64 * 1024  # what a partner may send us in one request
# Hub routing headers (OCPI 2.2.1 §4.1.3), accepted and echoed on the answer.
ROUTING_HEADERS: Final = (
    "OCPI-from-country-code",
    "OCPI-from-party-id",
    "OCPI-to-country-code",
    "OCPI-to-party-id",
)
ROLES: Final = frozenset({"CPO", "EMSP", "HUB", "NAP", "NSP", "OTHER", "SCSP"})  # OCPI 2.2.1 §16.3


class Status(enum.IntEnum):
    """OCPI 2.2.1 §5 status codes."""

    SUCCESS = 1000
    CLIENT_ERROR = 2000
    INVALID_PARAMETERS = 2001
    NOT_ENOUGH_INFORMATION = 2002
    UNKNOWN_LOCATION = 2003
    UNKNOWN_TOKEN = 2004
    SERVER_ERROR = 3000
    UNUSABLE_API = 3001
    UNSUPPORTED_VERSION = 3002
    NO_MATCHING_ENDPOINTS = 3003


class OcpiError(CentralError):
    """An OCPI answer that is not a success: the OCPI status code, the HTTP status and a message."""

    def __init__(self, status: Status, message: str, http_status: int = 200) -> None:
        """Keep the OCPI status, the message and the HTTP status it is sent with."""
        super().__init__(f"{int(status)}: {message}")
        self.status = status
        self.message = message
        self.http_status = http_status


def fail(status: Status, message: str, http_status: int = 200) -> NoReturn:
    """Raise an OcpiError."""
    raise OcpiError(status, message, http_status)


def envelope(
    data: Any, now: datetime, status: Status = Status.SUCCESS, message: str = "Success"
) -> dict[str, Any]:
    """The OCPI 2.2.1 §4.1.7 response body."""
    body: dict[str, Any] = {
        "status_code": int(status),
        "status_message": message,
        "timestamp": format_time(now),
    }
    if data is not None:
        body["data"] = data
    return body


def format_time(at: datetime) -> str:
    """OCPI 2.2.1 §16.5 DateTime: UTC, RFC 3339 with a Z (second precision)."""
    if at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, name: str) -> datetime:
    """An OCPI DateTime; 2001 if malformed. Without a designator it is UTC (OCPI 2.2.1 §16.5: "the absence of
    the timezone designator implies a UTC timestamp"); an offset is converted to UTC."""
    if not isinstance(text, str) or len(text) > 35:
        fail(Status.INVALID_PARAMETERS, f"{name} is not an OCPI DateTime")
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        fail(Status.INVALID_PARAMETERS, f"{name} is not an OCPI DateTime: {text[:40]!r}")
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def token_header(token: str) -> str:
    """The Authorization header value for ``token`` (OCPI 2.2.1 §4.1.2: base64 of the token)."""
    return "Token " + base64.b64encode(token.encode()).decode()


def token_from_header(headers: Mapping[str, str]) -> str | None:
    """The credentials token of an ``Authorization: Token <base64>`` header, None if absent or malformed.

    Only the base64 form of 2.2.1 is read: a 2.1.1-style plain token is refused (401), since a plain token made
    of base64 characters could not be told from an encoded one.
    """
    scheme, _, value = headers.get("Authorization", "").strip().partition(" ")
    if scheme != "Token" or not value or len(value) > 4 * MAX_TOKEN_LENGTH:
        return None
    try:
        token = base64.b64decode(value.strip(), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return token if 1 <= len(token) <= MAX_TOKEN_LENGTH and token.isprintable() else None


def token_digest(token: str) -> str:
    """SHA-256 hex of a credentials token: tokens partners call us with are stored only as this."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_json(raw: bytes) -> Any:
    """A request or answer body as JSON (no NaN/Infinity, decimals exact); 2001 (HTTP 400) if it is not JSON."""

    def constant(name: str) -> NoReturn:
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(raw, parse_float=Decimal, parse_constant=constant)
    except (ValueError, RecursionError):
        fail(Status.INVALID_PARAMETERS, "the body is not valid JSON", 400)


def money(minor: int, digits: int = 2) -> Decimal:
    """Integer minor units as the decimal OCPI sends (exact)."""
    return Decimal(minor).scaleb(-digits)


def to_json(value: Any) -> str:
    """JSON text with Decimals as exact numbers."""
    return json.dumps(value, default=_default, ensure_ascii=False, separators=(",", ":"))


def _default(value: object) -> object:
    if isinstance(value, Decimal):
        # A decimal of at most 15 significant digits survives the float that json writes exactly (IEEE 754
        # double: 15 digits round-trip); money here is below 10**12 minor units, so always within that.
        if len(value.as_tuple().digits) > 15:
            raise ValueError(f"{value} has more digits than a JSON number carries exactly")
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")
