"""The operator's side of OCPI in the REST API (``/api/ocpi/partners``), documented in the OpenAPI description.

Routes under /api get the REST API's admin authentication and JSON errors from its middleware.
"""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web

from backend_stub.errors import ApiError
from backend_stub.ocpi import site
from backend_stub.ocpi.protocol import MAX_TOKEN_LENGTH, MAX_URL_LENGTH, OcpiError
from backend_stub.ocpi.routes import OCPI
from backend_stub.store.ocpi import Partner, Push
from backend_stub.web.common import OPENAPI_EXTRA

MAX_BODY_BYTES: Final = 16 * 1024


def push_json(push: Push) -> dict[str, Any]:
    """A parked push as the REST API shows it."""
    return {
        "id": push.id,
        "kind": push.kind,
        "object_id": push.object_id,
        "attempts": push.attempts,
        "last_error": push.last_error,
        "parked_at": push.parked_at.isoformat() if push.parked_at else None,
    }


def partner_json(partner: Partner, queued: int, parked: list[Push] | None = None) -> dict[str, Any]:
    """A partner as the REST API shows it (no tokens)."""
    return {
        "id": partner.id,
        "name": partner.name,
        "status": partner.status,
        "roles": [
            {"role": r.role, "country_code": r.country_code, "party_id": r.party_id, "name": r.business_name}
            for r in partner.roles
        ],
        "versions_url": partner.versions_url,
        "last_contact_at": partner.last_contact_at.isoformat() if partner.last_contact_at else None,
        "last_error": partner.last_error,
        "queued_pushes": queued,
        "parked_pushes": [push_json(p) for p in parked or ()],
        "created_at": partner.created_at.isoformat(),
    }


async def _json(request: web.Request) -> Any:
    """The JSON body, bounded (413 over MAX_BODY_BYTES, 400 if not JSON)."""
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except ValueError:
        raise ApiError(400, "the request body must be a JSON object") from None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


async def _body(request: web.Request, fields: dict[str, int]) -> dict[str, str]:
    """A JSON object of exactly ``fields`` (name -> max length), each a non-empty string."""
    body = await _json(request)
    if not isinstance(body, dict) or set(body) - set(fields):
        raise ApiError(400, f"the body must be a JSON object with the fields {sorted(fields)}")
    for name, max_len in fields.items():
        value = body.get(name)
        if not isinstance(value, str) or not 1 <= len(value) <= max_len:
            raise ApiError(400, f"{name} must be a string of 1-{max_len} characters", field=name)
    return body


async def list_partners(request: web.Request) -> web.Response:
    """GET /api/ocpi/partners: every partner with its status, last contact and queued pushes."""
    store = request.app[OCPI].store
    queued = store.ocpi_queued()
    parked = store.ocpi_parked()
    return web.json_response(
        [
            partner_json(p, queued.get(p.id, 0), [x for x in parked if x.partner_id == p.id])
            for p in store.ocpi_partners()
        ]
    )


async def create_partner(request: web.Request) -> web.Response:
    """POST /api/ocpi/partners: a pending partner and its token A (shown only in this answer)."""
    body = await _body(request, {"name": 100})
    ocpi = request.app[OCPI]
    partner_id, token_a = ocpi.create_token_a(body["name"])
    return web.json_response(
        {"id": partner_id, "token_a": token_a, "versions_url": ocpi.versions_url}, status=201
    )


async def register_with(request: web.Request) -> web.Response:
    """POST /api/ocpi/partners/register: we register with a partner (its versions URL and token A)."""
    body = await _body(request, {"name": 100, "versions_url": MAX_URL_LENGTH, "token": MAX_TOKEN_LENGTH})
    ocpi = request.app[OCPI]
    try:
        partner = await ocpi.register_with(body["name"], body["versions_url"], body["token"])
    except OcpiError as exc:
        raise ApiError(502, f"registration failed: {exc.message}", ocpi_status=int(exc.status)) from None
    return web.json_response(partner_json(partner, ocpi.store.ocpi_queued().get(partner.id, 0)), status=201)


def path_id(request: web.Request, name: str) -> int:
    """An integer id of the path; 404 if it is not one."""
    text = request.match_info[name]
    if not text.isdigit() or len(text) > 18:
        raise ApiError(404, f"unknown {name.removesuffix('_id')}")
    return int(text)


async def delete_partner(request: web.Request) -> web.Response:
    """DELETE /api/ocpi/partners/{partner_id}: unregister (tell the partner, revoke its tokens)."""
    partner_id = path_id(request, "partner_id")
    await request.app[OCPI].unregister(partner_id)
    return web.json_response({"id": partner_id, "status": "unregistered"})


async def retry_push(request: web.Request) -> web.Response:
    """POST /api/ocpi/partners/{partner_id}/pushes/{push_id}/retry: a parked push goes back in line."""
    partner_id, push_id = path_id(request, "partner_id"), path_id(request, "push_id")
    if not request.app[OCPI].retry_push(partner_id, push_id):
        raise ApiError(404, "the partner has no such parked push")
    return web.json_response({"id": push_id, "status": "queued"})


def _location_json(request: web.Request, cp_id: str) -> dict[str, Any]:
    ocpi = request.app[OCPI]
    own = ocpi.store.ocpi_location_details().get(cp_id)
    return {
        "cp_id": cp_id,
        "details": site.effective(ocpi.config, own[0] if own else None),
        "own": own[0] if own else {},
    }


def _charger_id(request: web.Request) -> str:
    cp_id = request.match_info["cp_id"]
    if request.app[OCPI].store.charger(cp_id) is None:
        raise ApiError(404, f"no charger {cp_id[:64]!r}")
    return cp_id


async def get_location(request: web.Request) -> web.Response:
    """GET /api/chargers/{cp_id}/location: where the charger stands as OCPI publishes it, and its own values."""
    return web.json_response(_location_json(request, _charger_id(request)))


async def patch_location(request: web.Request) -> web.Response:
    """PATCH /api/chargers/{cp_id}/location: set (or with null, reset to the default) location details; the
    location goes again to roaming partners."""
    cp_id = _charger_id(request)
    try:
        changes = site.check(await _json(request))
    except site.InvalidDetail as exc:
        raise ApiError(400, str(exc), field=exc.field) from None
    ocpi = request.app[OCPI]
    ocpi.store.ocpi_set_location_details(cp_id, changes, ocpi.clock())
    ocpi.location_changed(cp_id)
    return web.json_response(_location_json(request, cp_id))


_DETAIL_PROPERTIES: Final[dict[str, Any]] = {
    **{name: {"type": ["string", "null"], "maxLength": n} for name, n in site.TEXT_FIELDS.items()},
    **{
        name: {"type": ["string", "null"], "enum": [*sorted(v), None]}
        for name, v in site.CHOICE_FIELDS.items()
    },
    **{
        name: {"type": ["integer", "null"], "minimum": low, "maximum": high}
        for name, (low, high) in site.INT_FIELDS.items()
    },
    "latitude": {"type": ["number", "string", "null"], "description": "decimal degrees, -90 to 90"},
    "longitude": {"type": ["number", "string", "null"], "description": "decimal degrees, -180 to 180"},
    "country": {"type": ["string", "null"], "pattern": "^[A-Z]{3}$", "description": "ISO 3166-1 alpha-3"},
    "time_zone": {"type": ["string", "null"], "description": "IANA time zone"},
}
_CP_PARAM: Final = {"name": "cp_id", "in": "path", "required": True, "schema": {"type": "string"}}
_LOCATION_OK: Final = {
    "description": "the effective details (own values over the configured defaults) and the charger's own",
    "content": {"application/json": {"schema": {"type": "object"}}},
}

_PARTNER_SCHEMA: Final = {"type": "object", "description": "A roaming partner (no tokens)."}
OPENAPI_PATHS: Final[dict[str, Any]] = {
    "/api/chargers/{cp_id}/location": {
        "get": {
            "summary": "Where the charger stands and its connector kind, as its OCPI Location publishes them",
            "tags": ["ocpi"],
            "parameters": [_CP_PARAM],
            "responses": {"200": _LOCATION_OK, "404": {"description": "unknown charger"}},
        },
        "patch": {
            "summary": "Set location details of a charger (null: back to the configured default); "
            "partners get the location again",
            "tags": ["ocpi"],
            "parameters": [_CP_PARAM],
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "minProperties": 1,
                            "properties": _DETAIL_PROPERTIES,
                        }
                    }
                }
            },
            "responses": {
                "200": _LOCATION_OK,
                "400": {"description": "a detail is malformed or out of range (OCPI 2.2.1 §8.3.1 lengths)"},
                "404": {"description": "unknown charger"},
            },
        },
    },
    "/api/ocpi/partners": {
        "get": {
            "summary": "OCPI roaming partners: status, roles, last contact, last error and queued pushes",
            "tags": ["ocpi"],
            "responses": {
                "200": {
                    "description": "partners",
                    "content": {"application/json": {"schema": {"type": "array", "items": _PARTNER_SCHEMA}}},
                }
            },
        },
        "post": {
            "summary": "Create a partner and its token A, to hand the partner out of band (shown once)",
            "tags": ["ocpi"],
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {"name": {"type": "string"}},
                        }
                    }
                }
            },
            "responses": {"201": {"description": "the pending partner's id, token A and our versions URL"}},
        },
    },
    "/api/ocpi/partners/register": {
        "post": {
            "summary": "Register with a partner from its versions URL and the token A it gave us",
            "tags": ["ocpi"],
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["name", "versions_url", "token"],
                            "properties": {
                                "name": {"type": "string"},
                                "versions_url": {"type": "string"},
                                "token": {"type": "string"},
                            },
                        }
                    }
                }
            },
            "responses": {
                "201": {"description": "the registered partner"},
                "502": {"description": "the partner's API could not be used (ocpi_status 3001-3003)"},
            },
        },
    },
    "/api/ocpi/partners/{partner_id}": {
        "delete": {
            "summary": "Unregister a partner: its tokens stop working, its queued pushes are dropped",
            "tags": ["ocpi"],
            "parameters": [
                {"name": "partner_id", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "responses": {"200": {"description": "unregistered"}, "404": {"description": "unknown partner"}},
        },
    },
    "/api/ocpi/partners/{partner_id}/pushes/{push_id}/retry": {
        "post": {
            "summary": "Put a parked push (one the partner kept refusing, see parked_pushes) back in line",
            "tags": ["ocpi"],
            "parameters": [
                {"name": "partner_id", "in": "path", "required": True, "schema": {"type": "integer"}},
                {"name": "push_id", "in": "path", "required": True, "schema": {"type": "integer"}},
            ],
            "responses": {
                "200": {"description": "queued again, sent next"},
                "404": {"description": "the partner has no such parked push"},
            },
        },
    },
}


def setup(app: web.Application) -> None:
    """Add the partner routes to the REST API and their description to its OpenAPI document."""
    app.router.add_get("/api/ocpi/partners", list_partners)
    app.router.add_post("/api/ocpi/partners", create_partner)
    app.router.add_post("/api/ocpi/partners/register", register_with)
    app.router.add_delete("/api/ocpi/partners/{partner_id}", delete_partner)
    app.router.add_post("/api/ocpi/partners/{partner_id}/pushes/{push_id}/retry", retry_push)
    app.router.add_get("/api/chargers/{cp_id}/location", get_location)
    app.router.add_patch("/api/chargers/{cp_id}/location", patch_location)
    extra: dict[str, Any] = app.get(OPENAPI_EXTRA) or {}
    app[OPENAPI_EXTRA] = {**extra, **OPENAPI_PATHS}
