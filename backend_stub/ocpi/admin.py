"""The operator's side of OCPI in the REST API (``/api/ocpi/partners``), documented in the OpenAPI description.

Routes under /api get the REST API's admin authentication and JSON errors from its middleware.
"""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web

from backend_stub.errors import ApiError
from backend_stub.ocpi.protocol import MAX_TOKEN_LENGTH, MAX_URL_LENGTH, OcpiError
from backend_stub.ocpi.routes import OCPI
from backend_stub.store.ocpi import Partner
from backend_stub.web.common import OPENAPI_EXTRA

MAX_BODY_BYTES: Final = 16 * 1024


def partner_json(partner: Partner, queued: int) -> dict[str, Any]:
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
        "created_at": partner.created_at.isoformat(),
    }


async def _body(request: web.Request, fields: dict[str, int]) -> dict[str, str]:
    """A JSON object of exactly ``fields`` (name -> max length), each a non-empty string."""
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "the request body must be a JSON object") from None
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
    return web.json_response([partner_json(p, queued.get(p.id, 0)) for p in store.ocpi_partners()])


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


async def delete_partner(request: web.Request) -> web.Response:
    """DELETE /api/ocpi/partners/{partner_id}: unregister (tell the partner, revoke its tokens)."""
    text = request.match_info["partner_id"]
    if not text.isdigit() or len(text) > 18:
        raise ApiError(404, "unknown partner")
    await request.app[OCPI].unregister(int(text))
    return web.json_response({"id": int(text), "status": "unregistered"})


_PARTNER_SCHEMA: Final = {"type": "object", "description": "A roaming partner (no tokens)."}
OPENAPI_PATHS: Final[dict[str, Any]] = {
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
}


def setup(app: web.Application) -> None:
    """Add the partner routes to the REST API and their description to its OpenAPI document."""
    app.router.add_get("/api/ocpi/partners", list_partners)
    app.router.add_post("/api/ocpi/partners", create_partner)
    app.router.add_post("/api/ocpi/partners/register", register_with)
    app.router.add_delete("/api/ocpi/partners/{partner_id}", delete_partner)
    extra: dict[str, Any] = app.get(OPENAPI_EXTRA) or {}
    app[OPENAPI_EXTRA] = {**extra, **OPENAPI_PATHS}
