"""The central system's REST API under ``/api/``: users, cards and their ledgers, tariffs, chargers, sessions,
statistics (JSON and CSV) and OCPP commands to connected chargers.

Every endpoint except ``GET /api/openapi.json`` needs the admin token (``Authorization: Bearer <token>``; the
dashboard's session cookie also works, but a cookie-authenticated write must say ``Content-Type:
application/json``, which a cross-site form cannot). Authentication is checked before the body is read, so a
request without the token changes nothing. Bodies are JSON objects of at most `MAX_BODY_BYTES`; unknown fields
are refused, so a typo is an error and not a silently ignored field. Errors are ``{"error": "..."}`` (plus
``field`` when one field is at fault) with 400, 401, 403, 404, 405, 409, 413, 502 or 504; bad input never
gets a 500. Money is integer minor units of the installation's currency, energy is Wh, times are timezone-aware
ISO 8601 (UTC on output).
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import json
import logging
import re
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, NoReturn

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from backend_stub.domain.ca import certificate_expiry
from backend_stub.domain.chargers import MAX_CHARGER_ID_LENGTH
from backend_stub.domain.commands import CertificateHash, CertificateKind, ChargerCommands
from backend_stub.domain.pricing import InvalidTariff, check_tariff
from backend_stub.errors import ApiError, CommandFailed, FieldRefused, FormError, InvalidCommand
from backend_stub.store import (
    MAX_AMOUNT_MINOR,
    MAX_ID_TAG_LENGTH,
    Card,
    CardMode,
    CardStatus,
    Charger,
    ChargerStatus,
    Conflict,
    IdempotencyConflict,
    InvalidInput,
    LedgerEntry,
    NotFound,
    SecurityEvent,
    SecurityEventKind,
    StoreError,
    Transaction,
    User,
)
from backend_stub.web import apidocs, common
from backend_stub.web.operations import OPERATIONS, Operation

if TYPE_CHECKING:
    from backend_stub.domain.central import Central

log = logging.getLogger(__name__)

PREFIX: Final = "/api"
OPENAPI_PATH: Final = "/api/openapi.json"
MAX_BODY_BYTES: Final = 256 * 1024  # lower than the application's 1 MiB: no API body needs more
MAX_ID_LENGTH: Final = 255
MAX_PASSWORD_LENGTH: Final = 255
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 200
TOPUP_KEY_PREFIX: Final = "api-topup:"  # API keys get their own namespace in the ledger's key space
MAX_STATS_DAYS: Final = 366
MAX_COMMAND_TIMEOUT_S: Final = 120.0
MAX_SQLITE_INT: Final = 2**63 - 1


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ---------------------------------------------------------------------------------------------- errors


def _bad(message: str, field: str | None = None) -> NoReturn:
    if field is None:
        raise ApiError(400, message)
    raise ApiError(400, message, field=field)


def _store_error_response(exc: StoreError) -> web.Response:
    """Translate a store error: bad values 400, missing rows 404, clashes 409; anything else is ours (503)."""
    if isinstance(exc, InvalidInput):
        return common.json_error(400, str(exc))
    if isinstance(exc, NotFound):
        return common.json_error(404, str(exc))
    if isinstance(exc, IdempotencyConflict):
        return common.json_error(409, f"idempotency key reused with different parameters: {exc}")
    if isinstance(exc, Conflict):
        return common.json_error(409, str(exc))
    log.error("store failure answering an API request: %s", exc)
    return common.json_error(503, "the store is unavailable; try again")


def _http_error_response(exc: web.HTTPException, request: web.Request) -> web.Response:
    """A JSON body for aiohttp's own 4xx answers (no route, wrong method, body too large)."""
    if exc.status == 404:
        return common.json_error(404, f"no API endpoint at {request.path}")
    if exc.status == 405:
        allowed = sorted(getattr(exc, "allowed_methods", ()) or ())
        response = common.json_error(405, f"method {request.method} is not allowed here", allowed=allowed)
        response.headers["Allow"] = ", ".join(allowed)
        return response
    if exc.status == 413:
        return common.json_error(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
    return common.json_error(exc.status, exc.reason)


def _auth_problem(request: web.Request) -> web.Response | None:
    """401 without the admin token; 403 for a cookie-only write without a JSON content type (CSRF)."""
    public = request.path == OPENAPI_PATH or apidocs.is_docs_path(request.path)
    if public and request.method in ("GET", "HEAD"):
        return None
    if not common.is_admin(request):
        return common.unauthorized()
    scheme = request.headers.get("Authorization", "").partition(" ")[0].lower()
    if (
        scheme != "bearer"
        and request.method not in ("GET", "HEAD", "OPTIONS")
        and request.content_type != "application/json"
    ):
        return common.json_error(
            403, "a write authenticated by the session cookie must be sent as Content-Type: application/json"
        )
    return None


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """For ``/api`` paths: authenticate first, then turn every error into a JSON answer."""
    if request.path != PREFIX and not request.path.startswith(PREFIX + "/"):
        return await handler(request)
    problem = _auth_problem(request)
    if problem is not None:
        return problem
    try:
        return await handler(request)
    except ApiError as exc:
        return common.json_error(exc.status, exc.message, **exc.extra)
    except StoreError as exc:
        return _store_error_response(exc)
    except UnicodeError:  # a safety net: text from a header or path that is not valid Unicode
        return common.json_error(400, "the request holds text that is not valid UTF-8")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_error_response(exc, request)
    except Exception:
        log.exception("API handler failed: %s %s", request.method, request.path)
        return common.json_error(500, "internal error")


# ---------------------------------------------------------------------------------------------- input


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


async def _read_body(request: web.Request) -> bytes:
    """The raw body, refusing (413) anything over MAX_BODY_BYTES before reading more than that."""
    declared = request.content_length
    if declared is not None and declared > MAX_BODY_BYTES:
        raise ApiError(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise ApiError(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
    except RequestPayloadError:  # e.g. a Content-Encoding that does not decode
        raise ApiError(
            400, "the request body could not be read (does its Content-Encoding decode?)"
        ) from None
    return b"".join(chunks)


async def _json_body(request: web.Request, *, empty_ok: bool = False) -> dict[str, Any]:
    """The body as a JSON object; 400 for anything else (an empty body is {} when ``empty_ok``)."""
    raw = await _read_body(request)
    if not raw.strip():
        if empty_ok:
            return {}
        _bad("the request body must be a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        _bad(f"the request body is not UTF-8: {exc}")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        _bad("malformed JSON: nested too deeply")
    except ValueError as exc:
        _bad(f"malformed JSON: {exc}")
    if not isinstance(value, dict):
        _bad(f"the request body must be a JSON object, not {_json_type(value)}")
    _check_text(value)
    return value


def _is_unicode(text: str) -> bool:
    """False for text with lone surrogates (undecodable header bytes, \\ud800 escapes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_text(value: object) -> None:
    """400 if any string (key or value) holds a lone surrogate escape like \\ud800, which is not Unicode text."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
        elif isinstance(item, str) and not _is_unicode(item):
            _bad("the request body holds a string with a lone surrogate (\\ud800-\\udfff escape)")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _only(body: Mapping[str, Any], allowed: set[str], required: Collection[str] = ()) -> None:
    """400 for unknown or missing fields."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        _bad(f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}", unknown[0])
    for name in sorted(required):
        if name not in body:
            _bad(f"missing required field {name!r}", name)


def _str_field(
    body: Mapping[str, Any], name: str, *, max_len: int = 10_000, nullable: bool = False, empty: bool = False
) -> str | None:
    """A string field (None when absent, or null and ``nullable``)."""
    if name not in body:
        return None
    value = body[name]
    if value is None:
        if nullable:
            return None
        _bad(f"{name} must be a string, not null", name)
    if not isinstance(value, str):
        _bad(f"{name} must be a string, not {_json_type(value)}", name)
    if not value and not empty:
        _bad(f"{name} must not be empty", name)
    if len(value) > max_len:
        _bad(f"{name} must be at most {max_len} characters, got {len(value)}", name)
    if "\x00" in value:
        _bad(f"{name} must not contain NUL characters", name)
    return value


def _int_value(value: object, name: str, *, low: int, high: int) -> int:
    """A JSON integer in [low, high]: floats (even 5.0), strings and booleans are refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        _bad(f"{name} must be an integer, not {_json_type(value)}", name)
    if not low <= value <= high:
        _bad(f"{name} must be between {low} and {high}, got {value}", name)
    return value


def _enum_field(body: Mapping[str, Any], name: str, allowed: type[enum.StrEnum]) -> str | None:
    value = _str_field(body, name, max_len=64)
    if value is None:
        return None
    if value not in {m.value for m in allowed}:
        _bad(f"{name} must be one of {', '.join(m.value for m in allowed)}, got {value!r}", name)
    return value


def _parse_time(value: object, name: str) -> datetime:
    """A timezone-aware ISO 8601 time as an aware UTC datetime; naive times are refused."""
    if not isinstance(value, str):
        _bad(f"{name} must be an ISO 8601 string, not {_json_type(value)}", name)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        _bad(f"{name} is not an ISO 8601 date-time: {value[:64]!r}", name)
    if when.tzinfo is None or when.utcoffset() is None:
        _bad(f"{name} must carry a timezone (e.g. 2030-01-01T00:00:00Z), got {value[:64]!r}", name)
    try:
        return when.astimezone(UTC)
    except OverflowError:
        _bad(f"{name} is out of range: {value[:64]!r}", name)


def _query(request: web.Request, allowed: set[str]) -> dict[str, str]:
    """Query parameters, each at most once; unknown ones are refused."""
    out: dict[str, str] = {}
    for key, value in request.query.items():
        if key not in allowed:
            _bad(f"unknown query parameter {key!r}; allowed: {', '.join(sorted(allowed)) or 'none'}", key)
        if key in out:
            _bad(f"query parameter {key!r} is given more than once", key)
        out[key] = value
    return out


def _query_int(
    params: Mapping[str, str], name: str, *, low: int, high: int, default: int | None
) -> int | None:
    text = params.get(name)
    if text is None:
        return default
    if not re.fullmatch(r"-?\d{1,19}", text):
        _bad(f"query parameter {name} must be an integer, got {text[:64]!r}", name)
    return _int_value(int(text), name, low=low, high=high)


def _query_date(params: Mapping[str, str], name: str, default: date) -> date:
    text = params.get(name)
    if text is None:
        return default
    if not _DATE.fullmatch(text):
        _bad(f"query parameter {name} must be a date YYYY-MM-DD, got {text[:64]!r}", name)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        _bad(f"query parameter {name} is not a valid date: {text!r}", name)
    if not date(1970, 1, 1) <= day <= date(9998, 12, 31):
        _bad(f"query parameter {name} must be between 1970-01-01 and 9998-12-31", name)
    return day


def _format(params: Mapping[str, str]) -> str:
    fmt = params.get("format", "json")
    if fmt not in ("json", "csv"):
        _bad(f"format must be json or csv, got {fmt[:32]!r}", "format")
    return fmt


def _path_int(request: web.Request, name: str) -> int:
    text = request.match_info[name]
    if not re.fullmatch(r"\d{1,19}", text) or int(text) > MAX_SQLITE_INT:
        raise ApiError(404, f"no {name.removesuffix('_id')} {text[:64]!r}")
    return int(text)


# ---------------------------------------------------------------------------------------------- output


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda obj: json.dumps(obj, ensure_ascii=False))


def _csv_response(text: str, filename: str) -> web.Response:
    return web.Response(
        text=text,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "name": user.name,
        "phone": user.phone,
        "email": user.email,
        "created_at": _iso(user.created_at),
    }


def _card_json(card: Card, currency: str) -> dict[str, Any]:
    return {
        "idTag": card.id_tag,
        "user_id": card.user_id,
        "mode": card.mode.value,
        "status": card.status.value,
        "expiry": _iso(card.expiry),
        "balance_minor": card.balance_minor,
        "currency": currency,
        "created_at": _iso(card.created_at),
    }


def _entry_json(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "idTag": entry.id_tag,
        "kind": entry.kind.value,
        "amount_minor": entry.amount_minor,
        "transaction_id": entry.transaction_id,
        "payment_id": entry.payment_id,
        "idempotency_key": entry.idempotency_key,
        "note": entry.note,
        "created_at": _iso(entry.created_at),
    }


def _charger_json(csms: Central, charger: Charger) -> dict[str, Any]:
    return {
        "id": charger.id,
        "status": charger.status.value,
        "has_password": charger.has_password,
        "connected": csms.commands.is_connected(charger.id),
        "vendor": charger.vendor,
        "model": charger.model,
        "firmware": charger.firmware,
        "serial_number": charger.serial_number,
        "last_boot": _iso(charger.last_boot),
        "last_heartbeat": _iso(charger.last_heartbeat),
        "firmware_status": charger.firmware_status,
        "diagnostics_status": charger.diagnostics_status,
        "tariff_id": charger.tariff_id,
        "effective_tariff_id": charger.tariff_id or csms.store.default_tariff_id(),
        "created_at": _iso(charger.created_at),
        "security_profile": charger.security_profile,
        "auth_lockout": _lockout_json(csms, charger.id),
    }


def _lockout_json(csms: Central, cp_id: str) -> dict[str, Any] | None:
    """The charger id's failed handshake authentications and lock-out, or None when there are none."""
    lockout = csms.commands.auth_lockout(cp_id)
    if lockout is None:
        return None
    return {"failed_attempts": lockout.failed_attempts, "locked_until": _iso(lockout.locked_until)}


def _session_json(tx: Transaction, currency: str, user_id: int | None) -> dict[str, Any]:
    cdr: Any = None
    if tx.cdr_json is not None:
        try:
            cdr = json.loads(tx.cdr_json)
        except ValueError:
            cdr = None
    return {
        "id": tx.id,
        "charger": tx.cp_id,
        "connector_id": tx.connector_id,
        "idTag": tx.id_tag,
        "user_id": user_id,
        "active": tx.active,
        "started_at": _iso(tx.started_at),
        "stopped_at": _iso(tx.stopped_at),
        "stop_reason": tx.stop_reason,
        "meter_start_wh": tx.meter_start_wh,
        "meter_stop_wh": tx.meter_stop_wh,
        "energy_wh": tx.energy_wh,
        "cost_minor": tx.cost_minor,
        "currency": currency,
        "cdr": cdr,
    }


def _csms(request: web.Request) -> Central:
    return request.app[common.CSMS]


# ---------------------------------------------------------------------------------------------- users


async def list_users(request: web.Request) -> web.Response:
    """GET /api/users"""
    _query(request, set())
    return _ok({"users": [_user_json(u) for u in _csms(request).store.users()]})


async def create_user(request: web.Request) -> web.Response:
    """POST /api/users"""
    body = await _json_body(request)
    _only(body, {"name", "phone", "email"}, {"name"})
    name = _str_field(body, "name", max_len=255)
    phone = _str_field(body, "phone", max_len=32, nullable=True)
    email = _str_field(body, "email", max_len=254, nullable=True)
    assert name is not None
    user = _csms(request).store.add_user(name, phone=phone, email=email)
    return _ok(_user_json(user), 201)


def _user_or_404(csms: Central, user_id: int) -> User:
    user = csms.store.user(user_id)
    if user is None:
        raise ApiError(404, f"no user {user_id}")
    return user


async def get_user(request: web.Request) -> web.Response:
    """GET /api/users/{user_id}: the user with their cards."""
    _query(request, set())
    csms = _csms(request)
    user = _user_or_404(csms, _path_int(request, "user_id"))
    currency = csms.store.currency()
    cards = [_card_json(c, currency) for c in csms.store.cards(user.id)]
    return _ok({**_user_json(user), "cards": cards})


async def user_consumption(request: web.Request) -> web.Response:
    """GET /api/users/{user_id}/consumption[?format=csv]"""
    params = _query(request, {"format"})
    fmt = _format(params)
    csms = _csms(request)
    user = _user_or_404(csms, _path_int(request, "user_id"))
    if fmt == "csv":
        return _csv_response(csms.store.user_consumption_csv(user.id), f"user-{user.id}-consumption.csv")
    report = csms.store.user_consumption(user.id)
    return _ok(
        {
            "user_id": user.id,
            "currency": csms.store.currency(),
            "energy_wh": report.energy_wh,
            "cost_minor": report.cost_minor,
            "sessions": [
                {
                    "transaction_id": s.transaction_id,
                    "charger": s.cp_id,
                    "connector_id": s.connector_id,
                    "idTag": s.id_tag,
                    "started_at": _iso(s.started_at),
                    "stopped_at": _iso(s.stopped_at),
                    "energy_wh": s.energy_wh,
                    "cost_minor": s.cost_minor,
                }
                for s in report.sessions
            ],
        }
    )


# ---------------------------------------------------------------------------------------------- cards


def _card_or_404(csms: Central, id_tag: str) -> Card:
    card = csms.store.card(id_tag)
    if card is None:
        raise ApiError(404, f"no card {id_tag[:64]!r}")
    return card


async def list_cards(request: web.Request) -> web.Response:
    """GET /api/cards[?user=ID]"""
    params = _query(request, {"user"})
    user_id = _query_int(params, "user", low=0, high=MAX_SQLITE_INT, default=None)
    store = _csms(request).store
    currency = store.currency()
    return _ok({"cards": [_card_json(c, currency) for c in store.cards(user_id)]})


async def create_card(request: web.Request) -> web.Response:
    """POST /api/cards"""
    body = await _json_body(request)
    _only(body, {"idTag", "user_id", "mode", "status", "expiry"}, {"idTag"})
    id_tag = _str_field(body, "idTag", max_len=MAX_ID_TAG_LENGTH)
    assert id_tag is not None
    user_id = body.get("user_id")
    if user_id is not None:
        user_id = _int_value(user_id, "user_id", low=0, high=MAX_SQLITE_INT)
    mode = _enum_field(body, "mode", CardMode) or CardMode.PERSONAL.value
    status = _enum_field(body, "status", CardStatus) or CardStatus.ACTIVE.value
    expiry = None if body.get("expiry") is None else _parse_time(body["expiry"], "expiry")
    store = _csms(request).store
    if user_id is not None and store.user(user_id) is None:
        _bad(f"user_id {user_id} is no known user", "user_id")
    if store.card(id_tag) is not None:
        raise ApiError(409, f"card {id_tag!r} exists", field="idTag")
    card = store.add_card(id_tag, user_id=user_id, mode=mode, status=status, expiry=expiry)
    return _ok(_card_json(card, store.currency()), 201)


async def get_card(request: web.Request) -> web.Response:
    """GET /api/cards/{id_tag}"""
    _query(request, set())
    csms = _csms(request)
    return _ok(_card_json(_card_or_404(csms, request.match_info["id_tag"]), csms.store.currency()))


async def update_card(request: web.Request) -> web.Response:
    """PATCH /api/cards/{id_tag}: block/unblock (status) and set or clear (null) the expiry."""
    csms = _csms(request)
    card = _card_or_404(csms, request.match_info["id_tag"])
    body = await _json_body(request)
    _only(body, {"status", "expiry"})
    if not body:
        _bad("nothing to change: give status and/or expiry")
    status = _enum_field(body, "status", CardStatus)
    expiry = None if body.get("expiry") is None else _parse_time(body["expiry"], "expiry")
    if status is not None:
        card = csms.store.set_card_status(card.id_tag, status)
    if "expiry" in body:
        card = csms.store.set_card_expiry(card.id_tag, expiry)
    return _ok(_card_json(card, csms.store.currency()))


async def topup_card(request: web.Request) -> web.Response:
    """POST /api/cards/{id_tag}/topup: idempotent by key; a replay returns the first entry (200, not 201)."""
    csms = _csms(request)
    card = _card_or_404(csms, request.match_info["id_tag"])
    if csms.store.payment_for_id_tag(card.id_tag) is not None:
        # Its whole remainder is refunded to the QR payer's provider, which refuses more than was paid.
        raise ApiError(409, f"card {card.id_tag!r} is bound to a QR payment and takes no top-ups")
    body = await _json_body(request)
    _only(body, {"amount_minor", "key", "note"}, {"amount_minor"})
    amount = _int_value(body["amount_minor"], "amount_minor", low=1, high=MAX_AMOUNT_MINOR)
    note = _str_field(body, "note", max_len=1000, empty=True) or ""
    body_key = _str_field(body, "key", max_len=MAX_IDEMPOTENCY_KEY_LENGTH)
    header_key = request.headers.get("Idempotency-Key")
    if header_key is not None:
        if (
            not header_key
            or len(header_key) > MAX_IDEMPOTENCY_KEY_LENGTH
            or not header_key.isprintable()
            or not _is_unicode(header_key)
        ):
            _bad(
                f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY_LENGTH} printable UTF-8 characters",
                "Idempotency-Key",
            )
        if body_key is not None and body_key != header_key:
            _bad("the Idempotency-Key header and the body's key differ", "key")
    key = header_key if header_key is not None else body_key
    if key is None:
        _bad("an idempotency key is required: the Idempotency-Key header or the body field 'key'", "key")
    ledger_key = TOPUP_KEY_PREFIX + key
    replay = csms.store.entry(ledger_key) is not None
    entry = csms.store.topup(card.id_tag, amount, ledger_key, note=note)
    return _ok(
        {"entry": _entry_json(entry), "balance_minor": csms.store.balance(card.id_tag), "replayed": replay},
        200 if replay else 201,
    )


async def card_ledger(request: web.Request) -> web.Response:
    """GET /api/cards/{id_tag}/ledger: every entry, oldest first, and the balance summed from them."""
    _query(request, set())
    csms = _csms(request)
    card = _card_or_404(csms, request.match_info["id_tag"])
    entries = csms.store.entries(card.id_tag)
    return _ok(
        {
            "idTag": card.id_tag,
            "currency": csms.store.currency(),
            "balance_minor": csms.store.balance(card.id_tag),
            "entries": [_entry_json(e) for e in entries],
        }
    )


# ---------------------------------------------------------------------------------------------- tariffs


def _validated_tariff(csms: Central, body: dict[str, Any]) -> tuple[str, str]:
    """(id, JSON text) of an OCPI 2.2.1 tariff object, validated by `pricing.check_tariff`; 400 otherwise."""
    try:
        tariff_id, _ = check_tariff(body, csms.store.currency())
    except InvalidTariff as exc:
        _bad(str(exc), exc.field)
    return tariff_id, json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def _tariff_json(csms: Central, tariff_id: str) -> dict[str, Any]:
    text = csms.store.tariff_json(tariff_id)
    if text is None:
        raise ApiError(404, f"no tariff {tariff_id[:64]!r}")
    return {
        "id": tariff_id,
        "default": csms.store.default_tariff_id() == tariff_id,
        "tariff": json.loads(text),
    }


async def list_tariffs(request: web.Request) -> web.Response:
    """GET /api/tariffs"""
    _query(request, set())
    csms = _csms(request)
    return _ok({"tariffs": [_tariff_json(csms, t) for t in csms.store.tariff_ids()]})


async def create_tariff(request: web.Request) -> web.Response:
    """POST /api/tariffs: a new OCPI 2.2.1 tariff (409 if the id exists; PUT replaces)."""
    csms = _csms(request)
    tariff_id, text = _validated_tariff(csms, await _json_body(request))
    if csms.store.tariff_json(tariff_id) is not None:
        raise ApiError(409, f"tariff {tariff_id!r} exists; PUT /api/tariffs/{{id}} replaces it", field="id")
    csms.pricing.put_tariff(tariff_id, text)
    return _ok(_tariff_json(csms, tariff_id), 201)


async def get_tariff(request: web.Request) -> web.Response:
    """GET /api/tariffs/{tariff_id}"""
    _query(request, set())
    return _ok(_tariff_json(_csms(request), request.match_info["tariff_id"]))


async def put_tariff(request: web.Request) -> web.Response:
    """PUT /api/tariffs/{tariff_id}: create or replace (the body's id, if given, must match)."""
    csms = _csms(request)
    path_id = request.match_info["tariff_id"]
    body = await _json_body(request)
    if body.setdefault("id", path_id) != path_id:
        _bad(f"the body's id {body['id']!r} differs from the path's {path_id!r}", "id")
    existed = csms.store.tariff_json(path_id) is not None
    tariff_id, text = _validated_tariff(csms, body)
    csms.pricing.put_tariff(tariff_id, text)
    return _ok(_tariff_json(csms, tariff_id), 200 if existed else 201)


async def delete_tariff(request: web.Request) -> web.Response:
    """DELETE /api/tariffs/{tariff_id}: only a tariff no charger uses (409 otherwise); roaming partners are told."""
    csms = _csms(request)
    tariff_id = request.match_info["tariff_id"]
    csms.pricing.delete_tariff(tariff_id)
    return _ok({"id": tariff_id, "deleted": True})


# ---------------------------------------------------------------------------------------------- settings


def _settings_json(csms: Central) -> dict[str, Any]:
    return {
        "currency": csms.store.currency(),
        "min_balance_minor": csms.store.min_balance_minor(),
        "default_tariff_id": csms.store.default_tariff_id(),
    }


async def get_settings(request: web.Request) -> web.Response:
    """GET /api/settings"""
    _query(request, set())
    return _ok(_settings_json(_csms(request)))


async def update_settings(request: web.Request) -> web.Response:
    """PATCH /api/settings: currency (only while the ledger is empty), min_balance_minor, default_tariff_id."""
    csms = _csms(request)
    body = await _json_body(request)
    _only(body, {"currency", "min_balance_minor", "default_tariff_id"})
    currency = _str_field(body, "currency", max_len=3)
    minimum = body.get("min_balance_minor")
    if "min_balance_minor" in body:
        minimum = _int_value(minimum, "min_balance_minor", low=-MAX_AMOUNT_MINOR, high=MAX_AMOUNT_MINOR)
    tariff_id = _str_field(body, "default_tariff_id", max_len=36, nullable=True)
    if tariff_id is not None and csms.store.tariff_json(tariff_id) is None:
        _bad(f"default_tariff_id {tariff_id!r} is no known tariff", "default_tariff_id")
    if currency is not None:
        csms.store.set_currency(currency)
    if isinstance(minimum, int):
        csms.store.set_min_balance_minor(minimum)
    if "default_tariff_id" in body:
        csms.pricing.set_default_tariff(tariff_id)
    return _ok(_settings_json(csms))


# ---------------------------------------------------------------------------------------------- chargers


def _charger_or_404(csms: Central, cp_id: str) -> Charger:
    charger = csms.store.charger(cp_id)
    if charger is None:
        raise ApiError(404, f"no charger {cp_id[:64]!r}")
    return charger


def _tariff_ref(csms: Central, body: Mapping[str, Any]) -> str | None:
    tariff_id = _str_field(body, "tariff_id", max_len=36, nullable=True)
    if tariff_id is not None and csms.store.tariff_json(tariff_id) is None:
        _bad(f"tariff_id {tariff_id!r} is no known tariff", "tariff_id")
    return tariff_id


async def list_chargers(request: web.Request) -> web.Response:
    """GET /api/chargers"""
    _query(request, set())
    csms = _csms(request)
    return _ok({"chargers": [_charger_json(csms, c) for c in csms.store.chargers()]})


async def create_charger(request: web.Request) -> web.Response:
    """POST /api/chargers: register a charger with its password (Basic auth, security profile 1/2).

    A charger without a password (anyone may connect as it) needs ``"password": null`` and
    ``"allow_no_password": true``.
    """
    csms = _csms(request)
    body = await _json_body(request)
    _only(body, {"id", "password", "status", "tariff_id", "allow_no_password"}, {"id"})
    # A longer id could never connect: the OCPP endpoint answers 404 for it.
    cp_id = _str_field(body, "id", max_len=MAX_CHARGER_ID_LENGTH)
    assert cp_id is not None
    if not cp_id.isprintable() or "/" in cp_id:
        _bad("id must be printable and must not contain '/'", "id")
    password = _password_field(body)
    status = _enum_field(body, "status", ChargerStatus) or ChargerStatus.ACCEPTED.value
    tariff_id = _tariff_ref(csms, body)
    if csms.store.charger(cp_id) is not None:
        raise ApiError(409, f"charger {cp_id!r} exists", field="id")
    charger = csms.store.add_charger(cp_id, password, status=status, tariff_id=tariff_id)
    return _ok(_charger_json(csms, charger), 201)


def _password_field(body: Mapping[str, Any]) -> str | None:
    """The body's charger password: required, unless ``"password": null`` with ``"allow_no_password": true``."""
    allow = body.get("allow_no_password", False)
    if not isinstance(allow, bool):
        _bad("allow_no_password must be true or false", "allow_no_password")
    password = _str_field(body, "password", max_len=MAX_PASSWORD_LENGTH, nullable=True)
    if password is None:
        if not allow:
            _bad(
                'a charger without a password can be taken over by anyone: give a password, or "password": null '
                'with "allow_no_password": true',
                "password",
            )
        return None
    if allow:
        _bad('allow_no_password goes with "password": null only', "allow_no_password")
    return password


async def get_charger(request: web.Request) -> web.Response:
    """GET /api/chargers/{cp_id}: registry data, live connector status and running sessions."""
    _query(request, set())
    csms = _csms(request)
    charger = _charger_or_404(csms, request.match_info["cp_id"])
    currency = csms.store.currency()
    return _ok(
        {
            **_charger_json(csms, charger),
            "connectors": [
                {
                    "connector_id": c.connector_id,
                    "status": c.status,
                    "error_code": c.error_code,
                    "info": c.info,
                    "timestamp": _iso(c.timestamp),
                }
                for c in csms.store.connectors(charger.id)
            ],
            "active_sessions": [
                _session_json(tx, currency, None) for tx in csms.store.active_transactions(charger.id)
            ],
        }
    )


async def update_charger(request: web.Request) -> web.Response:
    """PATCH /api/chargers/{cp_id}: status (accept a pending one), password (null clears), tariff_id."""
    csms = _csms(request)
    charger = _charger_or_404(csms, request.match_info["cp_id"])
    body = await _json_body(request)
    _only(body, {"status", "password", "tariff_id", "allow_no_password", "security_profile"})
    if not body:
        _bad("nothing to change: give status, password, tariff_id and/or security_profile")
    status = _enum_field(body, "status", ChargerStatus)
    password = _password_field(body) if "password" in body or "allow_no_password" in body else None
    tariff_id = _tariff_ref(csms, body)
    profile = (
        _int_value(body["security_profile"], "security_profile", low=0, high=3)
        if "security_profile" in body
        else None
    )
    if status is not None:
        csms.store.set_charger_status(charger.id, status)
    if "password" in body:
        csms.chargers.set_password(charger.id, password)
    if profile is not None:
        # The operator may lower the recorded profile (e.g. a charger whose certificate is gone goes back to its
        # password); chargers themselves can only raise it.
        csms.store.set_security_profile(charger.id, profile)
    if "tariff_id" in body:
        csms.pricing.assign_tariff(charger.id, tariff_id)
    return _ok(_charger_json(csms, _charger_or_404(csms, charger.id)))


async def charger_stats(request: web.Request) -> web.Response:
    """GET /api/chargers/{cp_id}/stats?from=YYYY-MM-DD&to=YYYY-MM-DD[&format=csv] (site-local days)."""
    params = _query(request, {"from", "to", "format"})
    fmt = _format(params)
    csms = _csms(request)
    charger = _charger_or_404(csms, request.match_info["cp_id"])
    today = csms.clock().astimezone(csms.site_tz).date()
    to_day = _query_date(params, "to", today)
    from_day = _query_date(params, "from", to_day - timedelta(days=6))
    if to_day < from_day:
        _bad(f"to ({to_day}) is before from ({from_day})", "to")
    if (to_day - from_day).days >= MAX_STATS_DAYS:
        _bad(f"at most {MAX_STATS_DAYS} days per request", "from")
    if fmt == "csv":
        text = csms.store.daily_stats_csv(charger.id, from_day, to_day, csms.site_tz)
        return _csv_response(text, f"stats-{from_day}-{to_day}.csv")
    currency = csms.store.currency()
    days = csms.store.daily_stats(charger.id, from_day, to_day, csms.site_tz)
    return _ok(
        {
            "charger": charger.id,
            "from": from_day.isoformat(),
            "to": to_day.isoformat(),
            "currency": currency,
            "days": [
                {
                    "date": d.day.isoformat(),
                    "working_hours": round(d.working_hours, 6),
                    "charging_s": round(d.charging_s, 3),
                    "energy_wh": d.energy_wh,
                    "energy_kwh": d.energy_kwh,
                    "sessions": d.sessions,
                    "fees_minor": d.fees_minor,
                }
                for d in days
            ],
        }
    )


def _check_command(
    commands: ChargerCommands, cp_id: str, action: str, payload: dict[str, Any] | None
) -> None:
    """404 for an action the charger's protocol lacks, 400 for a payload off its schema."""
    try:
        commands.check_raw(cp_id, action, payload)
    except InvalidCommand as exc:
        if exc.unknown:
            raise ApiError(404, str(exc)) from None
        _bad(str(exc))


async def send_command(request: web.Request) -> web.Response:
    """POST /api/chargers/{cp_id}/commands/{action}: send an OCPP CALL and return the charger's answer."""
    params = _query(request, {"timeout_s"})
    csms = _csms(request)
    action = request.match_info["action"]
    commands = csms.commands
    _check_command(commands, request.match_info["cp_id"], action, None)
    timeout_s: float | None = None
    if "timeout_s" in params:
        try:
            timeout_s = float(params["timeout_s"])
        except ValueError:
            _bad("timeout_s must be a number of seconds", "timeout_s")
        if not 0 < timeout_s <= MAX_COMMAND_TIMEOUT_S:
            _bad(f"timeout_s must be in (0, {MAX_COMMAND_TIMEOUT_S:g}]", "timeout_s")
    cp_id = request.match_info["cp_id"]
    _charger_or_404(csms, cp_id)
    payload = await _json_body(request, empty_ok=True)
    _check_command(commands, cp_id, action, payload)
    if not commands.is_connected(cp_id):
        raise ApiError(409, f"charger {cp_id!r} is not connected")
    try:
        reply = await commands.send(cp_id, action, payload, timeout_s=timeout_s)
    except CommandFailed as exc:
        if exc.code == CommandFailed.NOT_CONNECTED:
            raise ApiError(409, f"charger {cp_id!r} is not connected") from None
        if exc.code == CommandFailed.TIMEOUT:
            raise ApiError(504, f"charger {cp_id!r} did not answer {action} in time") from None
        if exc.code == CommandFailed.DISCONNECTED:
            raise ApiError(502, f"charger {cp_id!r} disconnected before answering {action}") from None
        raise ApiError(
            502,
            f"charger answered {action} with CALLERROR {exc.code}",
            code=exc.code,
            description=exc.description,
            details=exc.details,
        ) from None
    return _ok({"charger": cp_id, "action": action, "reply": reply})


def _operation_handler(operation: Operation) -> Handler:
    """The handler of POST /api/chargers/{cp_id}/operations/{operation.name}."""

    async def run_operation(request: web.Request) -> web.Response:
        return await _run_operation(request, operation)

    run_operation.__doc__ = f"POST /api/chargers/{{cp_id}}/operations/{operation.name}: {operation.summary}"
    return run_operation


async def _run_operation(request: web.Request, operation: Operation) -> web.Response:
    """One operator command (see `operations.OPERATIONS`): schema-checked body, then the command port."""
    csms, cp_id = _csms(request), request.match_info["cp_id"]
    _charger_or_404(csms, cp_id)
    body = await _json_body(request, empty_ok=True)
    try:
        operation.check(body)
        if not csms.commands.is_connected(cp_id):
            raise ApiError(409, f"charger {cp_id!r} is not connected")
        result = await operation.run(csms, cp_id, body)
    except FieldRefused as exc:
        raise ApiError(422, str(exc), field=exc.field) from None
    except FormError as exc:
        _bad(str(exc))
    except CommandFailed as exc:
        if exc.code in (CommandFailed.NOT_IN_VERSION, CommandFailed.TOO_LARGE):
            raise ApiError(422, exc.description, code=exc.code) from None
        raise _command_error(exc, cp_id, operation.name) from None
    return _ok({"charger": cp_id, "operation": operation.name, **result})


# ---------------------------------------------------------------------------------------------- certificates

CERTIFICATE_KINDS: Final = ("csms_root", "manufacturer_root")
MAX_CERTIFICATE_CHARS: Final = 5500  # OCPP 1.6 security whitepaper InstallCertificate.req certificate
HASH_ALGORITHMS: Final = ("SHA256", "SHA384", "SHA512")
_HEX = re.compile(r"[0-9A-Fa-f]{1,128}")


def _command_error(exc: CommandFailed, cp_id: str, action: str) -> ApiError:
    """The HTTP error for a command without an answer: 409 not connected, 504 timeout, 502 otherwise."""
    if exc.code == CommandFailed.NOT_CONNECTED:
        return ApiError(409, f"charger {cp_id!r} is not connected")
    if exc.code == CommandFailed.TIMEOUT:
        return ApiError(504, f"charger {cp_id!r} did not answer {action} in time")
    if exc.code == CommandFailed.DISCONNECTED:
        return ApiError(502, f"charger {cp_id!r} disconnected before answering {action}")
    return ApiError(502, f"charger answered {action} with CALLERROR {exc.code}", code=exc.code)


def _connected_charger(request: web.Request) -> tuple[Central, str]:
    csms, cp_id = _csms(request), request.match_info["cp_id"]
    _charger_or_404(csms, cp_id)
    if not csms.commands.is_connected(cp_id):
        raise ApiError(409, f"charger {cp_id!r} is not connected")
    return csms, cp_id


def _certificate_kind(value: object) -> CertificateKind:
    if value not in CERTIFICATE_KINDS:
        _bad(f"kind must be one of {', '.join(CERTIFICATE_KINDS)}", "kind")
    return value  # narrowed to the Literal by the check above


async def list_certificates(request: web.Request) -> web.Response:
    """GET /api/chargers/{cp_id}/certificates?kind=: the installed ones (GetInstalledCertificateIds) and ours."""
    params = _query(request, {"kind"})
    kind = _certificate_kind(params.get("kind", "csms_root"))
    csms, cp_id = _connected_charger(request)
    try:
        reply, hashes = await csms.commands.installed_certificates(cp_id, kind)
    except CommandFailed as exc:
        raise _command_error(exc, cp_id, "GetInstalledCertificateIds") from None
    issued = csms.certificates.issued(cp_id)
    return _ok(
        {
            "charger": cp_id,
            "kind": kind,
            "status": reply.status,
            "certificates": [dataclasses.asdict(h) for h in hashes],
            "client_certificate": None
            if issued is None
            else {"serial_number": issued.serial_hex, "not_after": _iso(issued.not_after)},
        }
    )


async def install_certificate(request: web.Request) -> web.Response:
    """POST /api/chargers/{cp_id}/certificates {kind, pem}: InstallCertificate."""
    body = await _json_body(request)
    kind = _certificate_kind(body.get("kind"))
    pem = body.get("pem")
    if not isinstance(pem, str) or len(pem) > MAX_CERTIFICATE_CHARS:
        _bad(f"pem must be a PEM certificate of at most {MAX_CERTIFICATE_CHARS} characters", "pem")
    try:
        certificate_expiry(pem)
    except ValueError:
        _bad("pem is not a PEM X.509 certificate", "pem")
    csms, cp_id = _connected_charger(request)
    try:
        reply = await csms.commands.install_certificate(cp_id, kind, pem)
    except CommandFailed as exc:
        raise _command_error(exc, cp_id, "InstallCertificate") from None
    return _ok({"charger": cp_id, "status": reply.status})


async def delete_certificate(request: web.Request) -> web.Response:
    """POST /api/chargers/{cp_id}/certificates/delete {hash_algorithm, issuer_name_hash, ...}: DeleteCertificate."""
    body = await _json_body(request)
    if body.get("hash_algorithm") not in HASH_ALGORITHMS:
        _bad(f"hash_algorithm must be one of {', '.join(HASH_ALGORITHMS)}", "hash_algorithm")
    for name, longest in (("issuer_name_hash", 128), ("issuer_key_hash", 128), ("serial_number", 40)):
        value = body.get(name)
        if not isinstance(value, str) or len(value) > longest or not _HEX.fullmatch(value):
            _bad(f"{name} must be hex digits, at most {longest}", name)
    extra = set(body) - {"hash_algorithm", "issuer_name_hash", "issuer_key_hash", "serial_number"}
    if extra:
        _bad(f"unknown field {sorted(extra)[0][:64]!r}")
    certificate = CertificateHash(
        body["hash_algorithm"], body["issuer_name_hash"], body["issuer_key_hash"], body["serial_number"]
    )
    csms, cp_id = _connected_charger(request)
    try:
        reply = await csms.commands.delete_certificate(cp_id, certificate)
    except CommandFailed as exc:
        raise _command_error(exc, cp_id, "DeleteCertificate") from None
    return _ok({"charger": cp_id, "status": reply.status})


# ---------------------------------------------------------------------------------------------- sessions


async def list_sessions(request: web.Request) -> web.Response:
    """GET /api/sessions?charger=&user=&idTag=&limit= (newest first)."""
    params = _query(request, {"charger", "user", "idTag", "limit"})
    user_id = _query_int(params, "user", low=0, high=MAX_SQLITE_INT, default=None)
    limit = _query_int(params, "limit", low=1, high=1000, default=100)
    assert limit is not None
    store = _csms(request).store
    currency = store.currency()
    txs = store.recent_transactions(
        cp_id=params.get("charger"), user_id=user_id, id_tag=params.get("idTag"), limit=limit
    )
    owners: dict[str, int | None] = {}
    for tx in txs:
        if tx.id_tag.casefold() not in owners:
            card = store.card(tx.id_tag)
            owners[tx.id_tag.casefold()] = None if card is None else card.user_id
    return _ok({"sessions": [_session_json(tx, currency, owners[tx.id_tag.casefold()]) for tx in txs]})


async def get_session(request: web.Request) -> web.Response:
    """GET /api/sessions/{session_id}: the CDR-like record (periods, dimensions, total cost) when finished."""
    _query(request, set())
    store = _csms(request).store
    session_id = _path_int(request, "session_id")
    try:
        tx = store.transaction(session_id)
    except NotFound:
        raise ApiError(404, f"no session {session_id}") from None
    card = store.card(tx.id_tag)
    return _ok(_session_json(tx, store.currency(), None if card is None else card.user_id))


# ---------------------------------------------------------------------------------------------- security events


def _security_event_json(event: SecurityEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": _iso(event.at),
        "charger": event.cp_id,
        "kind": event.kind.value,
        "transaction_id": event.transaction_id,
        "detail": event.detail,
    }


async def list_security_events(request: web.Request) -> web.Response:
    """GET /api/security-events?charger=&kind=&limit= (newest first): what chargers did to data not their own."""
    params = _query(request, {"charger", "kind", "limit"})
    kind = params.get("kind")
    if kind is not None and kind not in {k.value for k in SecurityEventKind}:
        _bad(
            f"kind must be one of {', '.join(k.value for k in SecurityEventKind)}, got {kind[:64]!r}", "kind"
        )
    limit = _query_int(params, "limit", low=1, high=1000, default=100)
    assert limit is not None
    events = _csms(request).store.security_events(cp_id=params.get("charger"), kind=kind, limit=limit)
    return _ok({"security_events": [_security_event_json(e) for e in events]})


# ---------------------------------------------------------------------------------------------- OpenAPI


def _schema_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_ERROR_RESPONSE: Final = {
    "description": "error",
    "content": {"application/json": {"schema": _schema_ref("Error")}},
}


def _op(
    summary: str,
    ok: str | None,
    *,
    status: int = 200,
    params: list[dict[str, Any]] | None = None,
    body: str | dict[str, Any] | None = None,
    errors: tuple[int, ...] = (400, 401, 404),
    csv: bool = False,
) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": _schema_ref(ok) if ok else {"type": "object"}}}
    if csv:
        content["text/csv"] = {"schema": {"type": "string"}}
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {str(status): {"description": "success", "content": content}}
        | {str(code): _ERROR_RESPONSE for code in errors},
    }
    if params:
        op["parameters"] = params
    if body is not None:
        schema = _schema_ref(body) if isinstance(body, str) else body
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    return op


def _param(
    name: str, where: str = "path", schema: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema or {"type": "string"},
        **extra,
    }


_NULLABLE_STR: Final = {"type": ["string", "null"]}
_TIME: Final = {"type": ["string", "null"], "format": "date-time"}
_MONEY: Final = {"type": "integer", "description": "integer minor units of the installation's currency"}
_FORMAT_PARAM: Final = _param("format", "query", {"type": "string", "enum": ["json", "csv"]})
_USER_PARAM: Final = _param("user_id", schema={"type": "integer", "minimum": 0})
_CARD_PARAM: Final = _param("id_tag", description="the card's idTag (case-insensitive)")
_CHARGER_PARAM: Final = _param("cp_id", description="the charge point id")
_TARIFF_PARAM: Final = _param("tariff_id")


def _obj(
    properties: dict[str, Any], required: list[str] | None = None, *, closed: bool = True
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if closed:
        schema["additionalProperties"] = False
    return schema


OPENAPI: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {
        "title": "OpenCharge bundled central system",
        "version": "1",
        "description": (
            "Admin REST API. Every endpoint except this description needs `Authorization: Bearer <admin token>`."
            " Money is integer minor units, energy Wh, times timezone-aware ISO 8601 (UTC on output). Errors are"
            ' `{"error": "..."}`; bodies are JSON objects of at most 256 KiB with no unknown fields.'
        ),
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": _obj(
                {"error": {"type": "string"}, "field": {"type": "string"}}, ["error"], closed=False
            ),
            "User": _obj(
                {
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "phone": _NULLABLE_STR,
                    "email": _NULLABLE_STR,
                    "created_at": _TIME,
                    "cards": {"type": "array", "items": _schema_ref("Card")},
                },
                ["id", "name"],
            ),
            "UserCreate": _obj(
                {
                    "name": {"type": "string", "maxLength": 255},
                    "phone": _NULLABLE_STR,
                    "email": _NULLABLE_STR,
                },
                ["name"],
            ),
            "UserList": _obj({"users": {"type": "array", "items": _schema_ref("User")}}),
            "Consumption": _obj(
                {
                    "user_id": {"type": "integer"},
                    "currency": {"type": "string"},
                    "energy_wh": {"type": "integer"},
                    "cost_minor": _MONEY,
                    "sessions": {"type": "array", "items": {"type": "object"}},
                }
            ),
            "Card": _obj(
                {
                    "idTag": {"type": "string", "maxLength": MAX_ID_TAG_LENGTH},
                    "user_id": {"type": ["integer", "null"]},
                    "mode": {"enum": ["personal", "prepaid"]},
                    "status": {"enum": ["active", "blocked"]},
                    "expiry": _TIME,
                    "balance_minor": _MONEY,
                    "currency": {"type": "string"},
                    "created_at": _TIME,
                },
                ["idTag"],
            ),
            "CardCreate": _obj(
                {
                    "idTag": {"type": "string", "minLength": 1, "maxLength": MAX_ID_TAG_LENGTH},
                    "user_id": {"type": ["integer", "null"]},
                    "mode": {"enum": ["personal", "prepaid"]},
                    "status": {"enum": ["active", "blocked"]},
                    "expiry": _TIME,
                },
                ["idTag"],
            ),
            "CardUpdate": _obj({"status": {"enum": ["active", "blocked"]}, "expiry": _TIME}),
            "CardList": _obj({"cards": {"type": "array", "items": _schema_ref("Card")}}),
            "Topup": _obj(
                {
                    "amount_minor": {**_MONEY, "minimum": 1, "maximum": MAX_AMOUNT_MINOR},
                    "key": {
                        "type": "string",
                        "description": "idempotency key (or the Idempotency-Key header)",
                    },
                    "note": {"type": "string"},
                },
                ["amount_minor"],
            ),
            "LedgerEntry": _obj(
                {
                    "id": {"type": "integer"},
                    "idTag": {"type": "string"},
                    "kind": {"enum": ["topup", "charge", "refund", "adjustment"]},
                    "amount_minor": _MONEY,
                    "transaction_id": {"type": ["integer", "null"]},
                    "payment_id": {"type": ["integer", "null"]},
                    "idempotency_key": {"type": "string"},
                    "note": {"type": "string"},
                    "created_at": _TIME,
                }
            ),
            "TopupResult": _obj(
                {
                    "entry": _schema_ref("LedgerEntry"),
                    "balance_minor": _MONEY,
                    "replayed": {"type": "boolean"},
                }
            ),
            "Ledger": _obj(
                {
                    "idTag": {"type": "string"},
                    "currency": {"type": "string"},
                    "balance_minor": _MONEY,
                    "entries": {"type": "array", "items": _schema_ref("LedgerEntry")},
                }
            ),
            "OcpiTariff": {
                "type": "object",
                "description": "an OCPI 2.2.1 Tariff object (id, currency, elements, ...)",
                "required": ["id", "currency", "elements"],
            },
            "Tariff": _obj(
                {
                    "id": {"type": "string"},
                    "default": {"type": "boolean"},
                    "tariff": _schema_ref("OcpiTariff"),
                }
            ),
            "TariffList": _obj({"tariffs": {"type": "array", "items": _schema_ref("Tariff")}}),
            "Settings": _obj(
                {
                    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                    "min_balance_minor": _MONEY,
                    "default_tariff_id": _NULLABLE_STR,
                }
            ),
            "Charger": _obj(
                {
                    "id": {"type": "string"},
                    "status": {"enum": ["accepted", "pending", "rejected"]},
                    "has_password": {"type": "boolean"},
                    "connected": {"type": "boolean"},
                    "vendor": _NULLABLE_STR,
                    "model": _NULLABLE_STR,
                    "firmware": _NULLABLE_STR,
                    "serial_number": _NULLABLE_STR,
                    "last_boot": _TIME,
                    "last_heartbeat": _TIME,
                    "firmware_status": _NULLABLE_STR,
                    "diagnostics_status": _NULLABLE_STR,
                    "tariff_id": _NULLABLE_STR,
                    "effective_tariff_id": _NULLABLE_STR,
                    "created_at": _TIME,
                    "security_profile": {"type": "integer", "minimum": 0, "maximum": 3},
                    "auth_lockout": {
                        "anyOf": [
                            {"type": "null"},
                            _obj({"failed_attempts": {"type": "integer"}, "locked_until": _TIME}),
                        ]
                    },
                    "connectors": {"type": "array", "items": {"type": "object"}},
                    "active_sessions": {"type": "array", "items": _schema_ref("Session")},
                }
            ),
            "ChargerCreate": _obj(
                {
                    "id": {"type": "string", "maxLength": MAX_CHARGER_ID_LENGTH},
                    "password": _NULLABLE_STR,
                    "allow_no_password": {"type": "boolean"},
                    "status": {"enum": ["accepted", "pending", "rejected"]},
                    "tariff_id": _NULLABLE_STR,
                },
                ["id"],
            ),
            "ChargerUpdate": _obj(
                {
                    "password": _NULLABLE_STR,
                    "allow_no_password": {"type": "boolean"},
                    "security_profile": {"type": "integer", "minimum": 0, "maximum": 3},
                    "status": {"enum": ["accepted", "pending", "rejected"]},
                    "tariff_id": _NULLABLE_STR,
                }
            ),
            "ChargerList": _obj({"chargers": {"type": "array", "items": _schema_ref("Charger")}}),
            "Stats": _obj(
                {
                    "charger": {"type": "string"},
                    "from": {"type": "string", "format": "date"},
                    "to": {"type": "string", "format": "date"},
                    "currency": {"type": "string"},
                    "days": {"type": "array", "items": {"type": "object"}},
                }
            ),
            "Session": _obj(
                {
                    "id": {"type": "integer"},
                    "charger": {"type": "string"},
                    "connector_id": {"type": "integer"},
                    "idTag": {"type": "string"},
                    "user_id": {"type": ["integer", "null"]},
                    "active": {"type": "boolean"},
                    "started_at": _TIME,
                    "stopped_at": _TIME,
                    "stop_reason": _NULLABLE_STR,
                    "meter_start_wh": {"type": "integer"},
                    "meter_stop_wh": {"type": ["integer", "null"]},
                    "energy_wh": {"type": "integer"},
                    "cost_minor": {"type": ["integer", "null"]},
                    "currency": {"type": "string"},
                    "cdr": {"type": ["object", "null"], "description": "periods, dimensions, total cost"},
                }
            ),
            "SessionList": _obj({"sessions": {"type": "array", "items": _schema_ref("Session")}}),
            "SecurityEvent": _obj(
                {
                    "id": {"type": "integer"},
                    "at": _TIME,
                    "charger": {"type": "string"},
                    "kind": {"type": "string", "enum": [k.value for k in SecurityEventKind]},
                    "transaction_id": {"type": ["integer", "null"]},
                    "detail": {"type": "string"},
                }
            ),
            "SecurityEventList": _obj(
                {"security_events": {"type": "array", "items": _schema_ref("SecurityEvent")}}
            ),
            "CommandResult": _obj(
                {"charger": {"type": "string"}, "action": {"type": "string"}, "reply": {"type": "object"}}
            ),
        },
    },
    "paths": {
        "/api/openapi.json": {
            "get": {
                "summary": "This OpenAPI description (public)",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1 document"}},
            }
        },
        "/api/users": {
            "get": _op("List users", "UserList", errors=(401,)),
            "post": _op("Create a user", "User", status=201, body="UserCreate", errors=(400, 401, 413)),
        },
        "/api/users/{user_id}": {"get": _op("A user and their cards", "User", params=[_USER_PARAM])},
        "/api/users/{user_id}/consumption": {
            "get": _op(
                "A user's finished sessions with totals (format=csv for CSV)",
                "Consumption",
                params=[_USER_PARAM, _FORMAT_PARAM],
                csv=True,
            )
        },
        "/api/cards": {
            "get": _op(
                "List cards",
                "CardList",
                params=[_param("user", "query", {"type": "integer"})],
                errors=(400, 401),
            ),
            "post": _op("Issue a card", "Card", status=201, body="CardCreate", errors=(400, 401, 409, 413)),
        },
        "/api/cards/{id_tag}": {
            "get": _op("A card", "Card", params=[_CARD_PARAM]),
            "patch": _op(
                "Block/unblock a card or set its expiry", "Card", params=[_CARD_PARAM], body="CardUpdate"
            ),
        },
        "/api/cards/{id_tag}/topup": {
            "post": _op(
                "Top up a card, idempotent by key (a replay answers 200 with the first entry)",
                "TopupResult",
                status=201,
                params=[_CARD_PARAM, _param("Idempotency-Key", "header")],
                body="Topup",
                errors=(400, 401, 404, 409, 413),
            )
        },
        "/api/cards/{id_tag}/ledger": {
            "get": _op("A card's ledger entries and balance", "Ledger", params=[_CARD_PARAM])
        },
        "/api/tariffs": {
            "get": _op("List tariffs", "TariffList", errors=(401,)),
            "post": _op(
                "Add an OCPI 2.2.1 tariff",
                "Tariff",
                status=201,
                body="OcpiTariff",
                errors=(400, 401, 409, 413),
            ),
        },
        "/api/tariffs/{tariff_id}": {
            "get": _op("A tariff", "Tariff", params=[_TARIFF_PARAM]),
            "put": _op("Create or replace a tariff", "Tariff", params=[_TARIFF_PARAM], body="OcpiTariff"),
            "delete": _op(
                "Delete a tariff no charger uses (and not the default); roaming partners are told",
                None,
                params=[_TARIFF_PARAM],
                errors=(401, 404, 409),
            ),
        },
        "/api/settings": {
            "get": _op("Installation settings", "Settings", errors=(401,)),
            "patch": _op("Change settings", "Settings", body="Settings", errors=(400, 401, 409)),
        },
        "/api/chargers": {
            "get": _op("List chargers", "ChargerList", errors=(401,)),
            "post": _op(
                "Register a charger", "Charger", status=201, body="ChargerCreate", errors=(400, 401, 409, 413)
            ),
        },
        "/api/chargers/{cp_id}": {
            "get": _op("A charger with live connector status", "Charger", params=[_CHARGER_PARAM]),
            "patch": _op(
                "Accept/reject a charger, change its password or tariff",
                "Charger",
                params=[_CHARGER_PARAM],
                body="ChargerUpdate",
            ),
        },
        "/api/chargers/{cp_id}/stats": {
            "get": _op(
                "Daily statistics (working hours, energy, sessions, fees) per site-local day",
                "Stats",
                params=[
                    _CHARGER_PARAM,
                    _param("from", "query", {"type": "string", "format": "date"}),
                    _param("to", "query", {"type": "string", "format": "date"}),
                    _FORMAT_PARAM,
                ],
                csv=True,
            )
        },
        "/api/chargers/{cp_id}/commands/{action}": {
            "post": _op(
                "Send an OCPP 1.6 CALL to a connected charger and return its answer",
                "CommandResult",
                params=[
                    _CHARGER_PARAM,
                    _param("action", schema={"type": "string"}),  # enum filled in by openapi()
                    _param("timeout_s", "query", {"type": "number", "exclusiveMinimum": 0, "maximum": 120}),
                ],
                body={"type": "object", "description": "the OCPP 1.6 request payload"},
                errors=(400, 401, 404, 409, 413, 502, 504),
            )
        },
        "/api/chargers/{cp_id}/certificates": {
            "get": _op(
                "Certificates installed on a connected charger (GetInstalledCertificateIds), and the client "
                "certificate our CA signed for it (serial, expiry)",
                None,
                params=[
                    _CHARGER_PARAM,
                    _param("kind", "query", {"type": "string", "enum": ["csms_root", "manufacturer_root"]}),
                ],
                errors=(400, 401, 404, 409, 502, 504),
            ),
            "post": _op(
                "Install a root certificate on a connected charger (InstallCertificate)",
                None,
                params=[_CHARGER_PARAM],
                body=_obj(
                    {
                        "kind": {"type": "string", "enum": ["csms_root", "manufacturer_root"]},
                        "pem": {"type": "string", "maxLength": 5500},
                    },
                    ["kind", "pem"],
                ),
                errors=(400, 401, 404, 409, 413, 502, 504),
            ),
        },
        "/api/chargers/{cp_id}/certificates/delete": {
            "post": _op(
                "Delete a certificate from a connected charger (DeleteCertificate)",
                None,
                params=[_CHARGER_PARAM],
                body=_obj(
                    {
                        "hash_algorithm": {"type": "string", "enum": ["SHA256", "SHA384", "SHA512"]},
                        "issuer_name_hash": {"type": "string", "maxLength": 128},
                        "issuer_key_hash": {"type": "string", "maxLength": 128},
                        "serial_number": {"type": "string", "maxLength": 40},
                    },
                    ["hash_algorithm", "issuer_name_hash", "issuer_key_hash", "serial_number"],
                ),
                errors=(400, 401, 404, 409, 413, 502, 504),
            )
        },
        "/api/sessions": {
            "get": _op(
                "Sessions, newest first",
                "SessionList",
                params=[
                    _param("charger", "query"),
                    _param("user", "query", {"type": "integer"}),
                    _param("idTag", "query"),
                    _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}),
                ],
                errors=(400, 401),
            )
        },
        "/api/sessions/{session_id}": {
            "get": _op(
                "A session with its CDR", "Session", params=[_param("session_id", schema={"type": "integer"})]
            )
        },
        "/api/security-events": {
            "get": _op(
                "Security events newest first: chargers reporting on transactions not their own, unknown "
                "transactions, calls from chargers that are not Accepted, skipped meter samples",
                "SecurityEventList",
                params=[
                    _param("charger", "query"),
                    _param("kind", "query", {"type": "string", "enum": [k.value for k in SecurityEventKind]}),
                    _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}),
                ],
                errors=(400, 401),
            )
        },
    },
}


async def openapi(request: web.Request) -> web.Response:
    """GET /api/openapi.json (public); the raw command actions are those of the chargers' protocol."""
    doc = copy.deepcopy(OPENAPI)
    for operation in OPERATIONS.values():
        doc["paths"][f"/api/chargers/{{cp_id}}/operations/{operation.name}"] = {
            "post": _op(
                operation.summary,
                None,
                params=[_CHARGER_PARAM],
                body=operation.schema,
                errors=(400, 401, 404, 409, 413, 422, 502, 504),
            )
        }
    for param in doc["paths"]["/api/chargers/{cp_id}/commands/{action}"]["post"]["parameters"]:
        if param["name"] == "action":
            param["schema"] = {"enum": sorted(request.app[common.CSMS].commands.raw_actions())}
    if common.OPENAPI_EXTRA in request.app:
        doc["paths"].update(request.app[common.OPENAPI_EXTRA])
    return _ok(doc)


# ---------------------------------------------------------------------------------------------- wiring

ROUTES: Final[list[tuple[str, str, Handler]]] = [
    ("GET", "/api/openapi.json", openapi),
    ("GET", "/api/users", list_users),
    ("POST", "/api/users", create_user),
    ("GET", "/api/users/{user_id}", get_user),
    ("GET", "/api/users/{user_id}/consumption", user_consumption),
    ("GET", "/api/cards", list_cards),
    ("POST", "/api/cards", create_card),
    ("GET", "/api/cards/{id_tag}", get_card),
    ("PATCH", "/api/cards/{id_tag}", update_card),
    ("POST", "/api/cards/{id_tag}/topup", topup_card),
    ("GET", "/api/cards/{id_tag}/ledger", card_ledger),
    ("GET", "/api/tariffs", list_tariffs),
    ("POST", "/api/tariffs", create_tariff),
    ("GET", "/api/tariffs/{tariff_id}", get_tariff),
    ("PUT", "/api/tariffs/{tariff_id}", put_tariff),
    ("DELETE", "/api/tariffs/{tariff_id}", delete_tariff),
    ("GET", "/api/settings", get_settings),
    ("PATCH", "/api/settings", update_settings),
    ("GET", "/api/chargers", list_chargers),
    ("POST", "/api/chargers", create_charger),
    ("GET", "/api/chargers/{cp_id}", get_charger),
    ("PATCH", "/api/chargers/{cp_id}", update_charger),
    ("GET", "/api/chargers/{cp_id}/stats", charger_stats),
    ("POST", "/api/chargers/{cp_id}/commands/{action}", send_command),
    *(
        ("POST", f"/api/chargers/{{cp_id}}/operations/{op.name}", _operation_handler(op))
        for op in OPERATIONS.values()
    ),
    ("GET", "/api/chargers/{cp_id}/certificates", list_certificates),
    ("POST", "/api/chargers/{cp_id}/certificates", install_certificate),
    ("POST", "/api/chargers/{cp_id}/certificates/delete", delete_certificate),
    ("GET", "/api/sessions", list_sessions),
    ("GET", "/api/sessions/{session_id}", get_session),
    ("GET", "/api/security-events", list_security_events),
]


def setup(app: web.Application) -> None:
    """Register the REST API's routes and its middleware (auth + JSON errors for /api paths only)."""
    app.middlewares.insert(0, api_middleware)
    for method, path, handler in ROUTES:
        if method == "GET":
            app.router.add_get(path, handler)  # answers HEAD too
        else:
            app.router.add_route(method, path, handler)
