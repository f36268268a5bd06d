"""The OCPI 2.2.1 HTTP side under ``/ocpi/``: versions, credentials and the Sender modules we offer.

Every answer is an OCPI envelope carrying the request's X-Request-ID / X-Correlation-ID and, for a request routed
through a hub, the routing headers with sender and receiver swapped (the answer goes back, OCPI 2.2.1 §4.1.3).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from backend_stub.ocpi import objects, tokens
from backend_stub.ocpi.commands import Commands
from backend_stub.ocpi.protocol import (
    MAX_BODY_BYTES,
    VERSION,
    OcpiError,
    Status,
    envelope,
    fail,
    parse_json,
    parse_time,
    to_json,
    token_digest,
    token_from_header,
)
from backend_stub.ocpi.service import Ocpi
from backend_stub.store import Conflict
from backend_stub.store.ocpi import Partner, PartyTaken

log = logging.getLogger(__name__)

PREFIX: Final = "/ocpi"
OCPI: web.AppKey[Ocpi] = web.AppKey("ocpi", Ocpi)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_OFFSET: Final = 10**9
# Who may pull a Sender module (OCPI 2.2.1 §16.3 Role): the modules a CPO offers to eMSPs and platforms.
READERS: Final = {
    "locations": ("EMSP", "HUB", "NSP", "SCSP", "NAP", "OTHER"),
    "tariffs": ("EMSP", "HUB", "NSP", "SCSP", "NAP", "OTHER"),
    "sessions": ("EMSP", "HUB"),
    "cdrs": ("EMSP", "HUB"),
}


def _answer(request: web.Request, body: dict[str, Any], http_status: int = 200) -> web.Response:
    response = web.Response(text=to_json(body), status=http_status, content_type="application/json")
    request_id = request.headers.get("X-Request-ID", "")[:100]
    correlation_id = request.headers.get("X-Correlation-ID", "")[:100]
    if request_id:
        response.headers["X-Request-ID"] = request_id
    if correlation_id:
        response.headers["X-Correlation-ID"] = correlation_id
    # The answer travels back: its "from" is the request's "to" and vice versa.
    for a, b in (("from", "to"), ("to", "from")):
        for field in ("country-code", "party-id"):
            value = request.headers.get(f"OCPI-{a}-{field}")
            if value is not None:
                response.headers[f"OCPI-{b}-{field}"] = value[:3]
    return response


def ok(request: web.Request, data: Any, http_status: int = 200) -> web.Response:
    """A success envelope."""
    return _answer(request, envelope(data, request.app[OCPI].clock()), http_status)


@web.middleware
async def ocpi_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """For ``/ocpi`` paths: every error becomes an OCPI envelope (never HTML, never a dropped link)."""
    if request.path != PREFIX and not request.path.startswith(PREFIX + "/"):
        return await handler(request)
    now = request.app[OCPI].clock()
    try:
        return await handler(request)
    except OcpiError as exc:
        return _answer(request, envelope(None, now, exc.status, exc.message), exc.http_status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = "unknown module or object" if exc.status == 404 else exc.reason
        return _answer(request, envelope(None, now, Status.CLIENT_ERROR, message), exc.status)
    except UnicodeError:
        return _answer(request, envelope(None, now, Status.INVALID_PARAMETERS, "text is not UTF-8"), 400)
    except Exception:
        log.exception("OCPI handler failed: %s %s", request.method, request.path)
        return _answer(request, envelope(None, now, Status.SERVER_ERROR, "internal error"), 500)


# ---------------------------------------------------------------------------------------------- auth


def authenticate(request: web.Request, *, registration: bool = False) -> tuple[Partner, bool, str]:
    """(partner, whether it used its token A, the token) of a request; 401 if the token is unknown.

    Token A opens only versions, version details and the credentials POST (OCPI 2.2.1 §7.2); a partner we are
    registering with may read our versions with the token we sent it before our POST is answered.
    """
    token = token_from_header(request.headers)
    found = request.app[OCPI].store.ocpi_partner_by_token(token_digest(token)) if token else None
    if token is None or found is None:
        fail(Status.CLIENT_ERROR, "missing or unknown credentials token", 401)
    partner, is_a = found
    if not registration and (is_a or partner.status != "registered"):
        fail(Status.CLIENT_ERROR, "this token may only be used to register (credentials)", 401)
    _check_routing(request, partner)
    return partner, is_a, token


def _check_routing(request: web.Request, partner: Partner) -> None:
    """Routing headers, if sent, must name us as receiver and one of the partner's parties as sender."""
    ocpi = request.app[OCPI]
    to = (request.headers.get("OCPI-to-country-code"), request.headers.get("OCPI-to-party-id"))
    if any(to) and (str(to[0]).upper(), str(to[1]).upper()) != (
        ocpi.config.country_code,
        ocpi.config.party_id,
    ):
        fail(Status.CLIENT_ERROR, "OCPI-to-* names a party that is not on this platform")
    sender = (request.headers.get("OCPI-from-country-code"), request.headers.get("OCPI-from-party-id"))
    if any(sender) and partner.roles and not partner.has_role("HUB"):
        parties = {(r.country_code, r.party_id) for r in partner.roles}
        if (str(sender[0]).upper(), str(sender[1]).upper()) not in parties:
            fail(Status.CLIENT_ERROR, "OCPI-from-* names a party this token does not belong to", 403)


def reader(request: web.Request, module: str) -> Partner:
    """The registered partner pulling ``module``; 403 if none of its roles may (a CPO reading our CDRs)."""
    partner = authenticate(request)[0]
    if not partner.has_role(*READERS[module]):
        fail(Status.CLIENT_ERROR, f"the partner's roles may not read {module}", 403)
    return partner


async def read_body(request: web.Request) -> Any:
    """The JSON body, bounded (HTTP 413 over MAX_BODY_BYTES, HTTP 400 + 2001 if not JSON)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        fail(Status.CLIENT_ERROR, f"body larger than {MAX_BODY_BYTES} bytes", 413)
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        fail(Status.CLIENT_ERROR, f"body larger than {MAX_BODY_BYTES} bytes", 413)
    return parse_json(raw)


# ---------------------------------------------------------------------------------------------- pagination


def _int_param(request: web.Request, name: str, default: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not text.isdigit() or len(text) > 10 or int(text) > MAX_OFFSET:
        fail(Status.INVALID_PARAMETERS, f"{name} must be a non-negative integer")
    return int(text)


def paginated(request: web.Request, items: Iterable[tuple[datetime, Any]]) -> web.Response:
    """A page of ``items`` (last_updated, object) by OCPI 2.2.1 §4.1.5: offset, limit (capped at our maximum),
    date_from (inclusive) and date_to (exclusive); X-Total-Count, X-Limit and a Link to the next page."""
    ocpi = request.app[OCPI]
    maximum = ocpi.config.page_limit_max
    offset = _int_param(request, "offset", 0)
    limit = min(_int_param(request, "limit", maximum), maximum)
    date_from = request.query.get("date_from")
    date_to = request.query.get("date_to")
    start = parse_time(date_from, "date_from") if date_from is not None else None
    end = parse_time(date_to, "date_to") if date_to is not None else None
    selected = [obj for at, obj in items if (start is None or at >= start) and (end is None or at < end)]
    response = ok(request, selected[offset : offset + limit])
    response.headers["X-Total-Count"] = str(len(selected))
    response.headers["X-Limit"] = str(maximum)
    if offset + limit < len(selected) and limit > 0:
        query = {k: v for k, v in request.query.items() if k not in ("offset", "limit")}
        query.update(offset=str(offset + limit), limit=str(limit))
        base = ocpi.versions_url.removesuffix("/ocpi/versions")
        response.headers["Link"] = f'<{base}{request.path}?{urlencode(query)}>; rel="next"'
    return response


# ---------------------------------------------------------------------------------------------- versions


async def versions(request: web.Request) -> web.Response:
    """GET /ocpi/versions (OCPI 2.2.1 §6.1)."""
    authenticate(request, registration=True)
    return ok(request, [{"version": VERSION, "url": request.app[OCPI].details_url}])


async def version_details(request: web.Request) -> web.Response:
    """GET /ocpi/2.2.1 (OCPI 2.2.1 §6.2)."""
    authenticate(request, registration=True)
    return ok(request, {"version": VERSION, "endpoints": request.app[OCPI].endpoints()})


# ---------------------------------------------------------------------------------------------- credentials


async def get_credentials(request: web.Request) -> web.Response:
    """GET credentials: ours, with the token the caller used (OCPI 2.2.1 §7.2.1)."""
    _, _, token = authenticate(request, registration=True)
    return ok(request, request.app[OCPI].our_credentials(token))


async def post_credentials(request: web.Request) -> web.Response:
    """POST credentials: a partner registers with its token A (OCPI 2.2.1 §7.2.2); 405 if registered."""
    partner, is_a, _ = authenticate(request, registration=True)
    if not is_a:
        fail(Status.CLIENT_ERROR, "already registered: use PUT to update or DELETE to unregister", 405)
    body = await read_body(request)
    return ok(request, await request.app[OCPI].accept_credentials(partner, body))


async def put_credentials(request: web.Request) -> web.Response:
    """PUT credentials: a registered partner rotates tokens and refreshes endpoints (OCPI 2.2.1 §7.2.3)."""
    partner, is_a, _ = authenticate(request, registration=True)
    if is_a or partner.status != "registered":
        fail(Status.CLIENT_ERROR, "not registered: POST credentials with token A first", 405)
    body = await read_body(request)
    return ok(request, await request.app[OCPI].accept_credentials(partner, body))


async def delete_credentials(request: web.Request) -> web.Response:
    """DELETE credentials: the partner unregisters; every token of it stops working (OCPI 2.2.1 §7.2.4)."""
    partner, is_a, _ = authenticate(request, registration=True)
    if is_a or partner.status != "registered":
        fail(Status.CLIENT_ERROR, "not registered", 405)
    ocpi = request.app[OCPI]
    ocpi.store.ocpi_unregister(partner.id, ocpi.clock())
    return ok(request, None)


# ---------------------------------------------------------------------------------------------- locations


def _locations(request: web.Request) -> list[tuple[datetime, dict[str, Any]]]:
    ocpi = request.app[OCPI]
    found = [
        (parse_time(location["last_updated"], "last_updated"), location)
        for location in objects.locations(ocpi.store, ocpi.config, ocpi.clock())
    ]
    return sorted(found, key=lambda item: (item[0], item[1]["id"]))


async def get_locations(request: web.Request) -> web.Response:
    """GET locations, paginated (OCPI 2.2.1 §8.2.1.1)."""
    reader(request, "locations")
    return paginated(request, _locations(request))


async def get_location(request: web.Request) -> web.Response:
    """GET one location, EVSE or connector (OCPI 2.2.1 §8.2.1.2); 2003 (HTTP 404) if unknown."""
    reader(request, "locations")
    ocpi = request.app[OCPI]
    info = request.match_info
    charger = ocpi.store.charger(info["location_id"])
    if charger is None or not objects.publishable(charger):
        fail(Status.UNKNOWN_LOCATION, "unknown location", 404)
    found: Any = objects.location(ocpi.store, ocpi.config, charger, ocpi.clock())
    if "evse_uid" in info:
        evses = [e for e in found["evses"] if e["uid"] == info["evse_uid"]]
        if not evses:
            fail(Status.UNKNOWN_LOCATION, "unknown EVSE", 404)
        found = evses[0]
        if "connector_id" in info:
            connectors = [c for c in found["connectors"] if c["id"] == info["connector_id"]]
            if not connectors:
                fail(Status.UNKNOWN_LOCATION, "unknown connector", 404)
            found = connectors[0]
    return ok(request, found)


# ---------------------------------------------------------------------------------------------- tariffs


async def get_tariffs(request: web.Request) -> web.Response:
    """GET tariffs, paginated (OCPI 2.2.1 §11.2.1.1)."""
    reader(request, "tariffs")
    ocpi = request.app[OCPI]
    items = [(at, objects.tariff(ocpi.config, tid, text, at)) for tid, text, at in ocpi.store.ocpi_tariffs()]
    return paginated(request, sorted(items, key=lambda item: (item[0], item[1]["id"])))


# ---------------------------------------------------------------------------------------------- sessions, cdrs


async def get_sessions(request: web.Request) -> web.Response:
    """GET sessions, paginated: only those on the partner's own tokens (OCPI 2.2.1 §9.2.1.1)."""
    partner = reader(request, "sessions")
    ocpi = request.app[OCPI]
    items = []
    for tx_id in ocpi.store.ocpi_partner_transactions(partner.id):
        tx = ocpi.store.transaction(tx_id)
        body = ocpi.session_object(tx)
        items.append((parse_time(body["last_updated"], "last_updated"), body))
    return paginated(request, sorted(items, key=lambda item: (item[0], int(item[1]["id"]))))


async def get_cdrs(request: web.Request) -> web.Response:
    """GET cdrs, paginated: only those on the partner's own tokens (OCPI 2.2.1 §10.2.1.1)."""
    partner = reader(request, "cdrs")
    ocpi = request.app[OCPI]
    items = []
    for tx_id in ocpi.store.ocpi_partner_transactions(partner.id, stopped_only=True):
        tx = ocpi.store.transaction(tx_id)
        body = objects.cdr(ocpi.config, ocpi.store, tx, ocpi.session_owner(tx.id_tag))
        items.append((parse_time(body["last_updated"], "last_updated"), body))
    return paginated(request, sorted(items, key=lambda item: (item[0], int(item[1]["id"]))))


# ---------------------------------------------------------------------------------------------- tokens


def _token_key(request: web.Request) -> tuple[str, str, str, str]:
    info = request.match_info
    token_type = request.query.get("type", "RFID")  # OCPI 2.2.1 §12.2.2: RFID when not given
    return info["country_code"].upper(), info["party_id"].upper(), info["uid"], token_type


async def token_get(request: web.Request) -> web.Response:
    """GET a token as we hold it (OCPI 2.2.1 §12.2.2)."""
    partner = authenticate(request)[0]
    return ok(request, tokens.get_token(request.app[OCPI].store, partner, _token_key(request)))


async def token_put(request: web.Request) -> web.Response:
    """PUT a token (OCPI 2.2.1 §12.2.2): stored or replaced."""
    partner = authenticate(request)[0]
    body = await read_body(request)
    try:
        tokens.put_token(request.app[OCPI].store, partner, _token_key(request), body)
    except PartyTaken as exc:
        fail(Status.CLIENT_ERROR, str(exc), 403)
    except Conflict as exc:
        fail(Status.CLIENT_ERROR, str(exc))
    return ok(request, None)


async def token_patch(request: web.Request) -> web.Response:
    """PATCH a token (OCPI 2.2.1 §12.2.2): fields updated, 2004 if unknown."""
    partner = authenticate(request)[0]
    body = await read_body(request)
    tokens.patch_token(request.app[OCPI].store, partner, _token_key(request), body)
    return ok(request, None)


# ---------------------------------------------------------------------------------------------- commands

COMMANDS: web.AppKey[Commands] = web.AppKey("ocpi_commands", Commands)


async def post_command(request: web.Request) -> web.Response:
    """POST commands/{command} (OCPI 2.2.1 §13.2.1): the immediate CommandResponse."""
    partner = authenticate(request)[0]
    if not partner.has_role("EMSP", "HUB"):
        fail(Status.CLIENT_ERROR, "only an eMSP sends commands", 403)
    body = await read_body(request)
    return ok(request, request.app[COMMANDS].handle(partner, request.match_info["command"], body))


ROUTES: Final[tuple[tuple[str, str, Handler], ...]] = (
    ("GET", "/ocpi/versions", versions),
    ("GET", f"/ocpi/{VERSION}", version_details),
    ("GET", f"/ocpi/{VERSION}/credentials", get_credentials),
    ("POST", f"/ocpi/{VERSION}/credentials", post_credentials),
    ("PUT", f"/ocpi/{VERSION}/credentials", put_credentials),
    ("DELETE", f"/ocpi/{VERSION}/credentials", delete_credentials),
    ("GET", f"/ocpi/{VERSION}/locations", get_locations),
    ("GET", f"/ocpi/{VERSION}/locations/{{location_id}}", get_location),
    ("GET", f"/ocpi/{VERSION}/locations/{{location_id}}/{{evse_uid}}", get_location),
    ("GET", f"/ocpi/{VERSION}/locations/{{location_id}}/{{evse_uid}}/{{connector_id}}", get_location),
    ("GET", f"/ocpi/{VERSION}/tariffs", get_tariffs),
    ("GET", f"/ocpi/{VERSION}/sessions", get_sessions),
    ("GET", f"/ocpi/{VERSION}/cdrs", get_cdrs),
    ("GET", f"/ocpi/{VERSION}/tokens/{{country_code}}/{{party_id}}/{{uid}}", token_get),
    ("PUT", f"/ocpi/{VERSION}/tokens/{{country_code}}/{{party_id}}/{{uid}}", token_put),
    ("PATCH", f"/ocpi/{VERSION}/tokens/{{country_code}}/{{party_id}}/{{uid}}", token_patch),
    ("POST", f"/ocpi/{VERSION}/commands/{{command}}", post_command),
)


def setup(app: web.Application, ocpi: Ocpi) -> None:
    """Serve OCPI under /ocpi/ on ``app``; any other /ocpi path is an unknown module (HTTP 404, OCPI 2000)."""
    app[OCPI] = ocpi
    app[COMMANDS] = Commands(ocpi)

    async def close_commands(app: web.Application) -> None:
        await app[COMMANDS].close()

    app.on_cleanup.append(close_commands)
    app.middlewares.insert(0, ocpi_middleware)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)

    async def unknown(request: web.Request) -> web.Response:
        fail(Status.CLIENT_ERROR, "unknown OCPI module or version", 404)

    app.router.add_route("*", "/ocpi/{tail:.*}", unknown)
    app.router.add_route("*", "/ocpi", unknown)
