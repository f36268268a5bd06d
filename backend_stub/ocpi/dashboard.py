"""The partners page of the dashboard (``/partners``): status, last contact and queued pushes of each partner,
creating a token A, and registering with a partner."""

from __future__ import annotations

from aiohttp import web

from backend_stub.errors import FormError
from backend_stub.ocpi.protocol import MAX_TOKEN_LENGTH, MAX_URL_LENGTH, OcpiError
from backend_stub.ocpi.routes import OCPI
from backend_stub.web import dashboard


def _page(request: web.Request, new_token: str | None = None, new_name: str | None = None) -> web.Response:
    ocpi = request.app[OCPI]
    return dashboard.render(
        request,
        "partners.html",
        partners=ocpi.store.ocpi_partners(),
        queued=ocpi.store.ocpi_queued(),
        party=f"{ocpi.config.country_code}/{ocpi.config.party_id}",
        versions_url=ocpi.versions_url,
        new_token=new_token,
        new_name=new_name,
    )


def _field(form: object, name: str, max_len: int) -> str:
    value = form.get(name) if hasattr(form, "get") else None
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= max_len:
        raise FormError(f"{name}: 1-{max_len} characters")
    return value.strip()


@dashboard.page
async def partners_page(request: web.Request) -> web.StreamResponse:
    """GET /partners."""
    return _page(request)


@dashboard.page
async def create_partner(request: web.Request) -> web.StreamResponse:
    """POST /partners: a pending partner; its token A is shown on this answer only (never stored in clear)."""
    form = await request.post()
    try:
        name = _field(form, "name", 100)
    except FormError as exc:
        return dashboard.back(request, "/partners", "error", str(exc), form=form)
    _, token = request.app[OCPI].create_token_a(name)
    return _page(request, new_token=token, new_name=name)


@dashboard.page
async def register_with(request: web.Request) -> web.StreamResponse:
    """POST /partners/register: we register with a partner from its versions URL and token A."""
    form = await request.post()
    try:
        name = _field(form, "name", 100)
        url = _field(form, "versions_url", MAX_URL_LENGTH)
        token = _field(form, "token", MAX_TOKEN_LENGTH)
        partner = await request.app[OCPI].register_with(name, url, token)
    except FormError as exc:
        return dashboard.back(request, "/partners", "error", str(exc), form=form)
    except OcpiError as exc:
        return dashboard.back(request, "/partners", "error", f"Registration failed: {exc.message}", form=form)
    return dashboard.back(request, "/partners", "ok", f"Registered with {partner.name}.", form=form)


def setup(app: web.Application) -> None:
    """Add the partners page and its menu entry."""
    app.router.add_get("/partners", partners_page)
    app.router.add_post("/partners", create_partner)
    app.router.add_post("/partners/register", register_with)
    dashboard.add_nav(app, "/partners", "Partners")
