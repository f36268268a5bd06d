"""The web pages wired: one aiohttp application carries OCPP (`/ocpp/{id}`, from `backend_stub.ocpp`), the REST
API (`/api/`, `api.py`), the QR pay pages (`/pay/`, `/qr/`, `pay.py`) and the operator dashboard (`/`,
`dashboard.py`), ``/healthz`` and ``/metrics`` (`ops.py`)."""

from __future__ import annotations

from aiohttp import web

from backend_stub.domain.central import Central
from backend_stub.web import api, apidocs, dashboard, ops, pay
from backend_stub.web.common import CSMS, STATIC_DIR, TOKEN_DIGEST


def setup(
    central: Central,
    app: web.Application,
    token_sha256: str,
    payment_provider: str = "none",
    metrics: ops.Metrics | None = None,
) -> web.Application:
    """Add the REST API, pay pages, dashboard, health, metrics and static files to the central system's app."""
    app[CSMS] = central
    app[TOKEN_DIGEST] = token_sha256
    api.setup(app)
    apidocs.setup(app)
    pay.setup(app, payment_provider)
    dashboard.setup(app)
    ops.setup(app, metrics or ops.Metrics(central.store))
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=True)
    return app
