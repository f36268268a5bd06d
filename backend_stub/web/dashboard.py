"""The operator dashboard: server-rendered pages (jinja2, autoescaped) over the store, with OCPP command buttons.

Every page but `/login` needs the admin session (`common.is_admin`): a GET without one is redirected to the
login page, a POST without one is refused. Every POST carries a CSRF token derived with HMAC from the session
value (so it is stateless too) and, when the browser sends an Origin header, that origin must be this host.
Results of POSTs travel to the next page as a signed, HttpOnly flash cookie (post/redirect/get).

Live status: `/dash/status.json` returns every charger's connectors, connection and heartbeat; the overview and
charger pages poll it with a few lines of vanilla JS (`static/dashboard.js`) and work without JS too.

The dashboard talks to the store and to `CentralSystem.call` directly, never through the REST API.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
from aiohttp import web
from multidict import MultiDictProxy

from backend_stub.domain.commands import ChargerCommands, CommandReply
from backend_stub.domain.pricing import InvalidTariff, check_tariff
from backend_stub.domain.tariffs import (
    Tariff,
    currency_exponent,
)
from backend_stub.errors import CommandFailed, FormError
from backend_stub.store import (
    MAX_ID_TAG_LENGTH,
    Card,
    CardMode,
    CardStatus,
    ChargerStatus,
    ConnectorStatus,
    CsmsStore,
    DailyStats,
    StoreError,
    Transaction,
    UnknownTransaction,
    User,
)
from backend_stub.web import common
from backend_stub.web.charts import Curve, session_curve
from backend_stub.web.formatting import (
    DIMENSION_UNITS,
    describe_component,
    describe_restrictions,
    format_duration,
    format_iso,
    format_kwh,
    format_money,
    format_time,
)
from backend_stub.web.operations import OPERATIONS, TRIGGER_MESSAGES, body_from_form

FLASH_COOKIE = "csms_flash"
CSRF_FIELD = "csrf_token"
DEFAULT_RANGE_DAYS = 14
MAX_RANGE_DAYS = 366
COMMAND_TIMEOUT_S = 15.0
MAX_DEVICE_MODEL_ROWS = 2000  # the charger page shows at most this many device-model values
RECENT_SESSIONS = 20
SESSIONS_PAGE = 200
MAX_SESSIONS_PAGE = 1000
MAX_SESSIONS_OFFSET = 10_000_000
MAX_CSV_SESSIONS = 100_000  # one export is built in memory: bounded

POLL_MS: web.AppKey[int] = web.AppKey("dashboard_poll_ms", int)
_ENV: web.AppKey[jinja2.Environment] = web.AppKey("dashboard_jinja", jinja2.Environment)

# Pages are private, framed by nobody, and load scripts and styles from this origin only (no inline code).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

RESET_TYPES = ("Soft", "Hard")
COMMANDS = (
    "RemoteStartTransaction",
    "RemoteStopTransaction",
    "Reset",
    "UnlockConnector",
    "GetDiagnostics",
)
_DIAGNOSTICS_SCHEMES = ("ftp", "ftps", "sftp", "http", "https")
_NONCE = re.compile(r"[0-9a-f]{16,64}")
_FILENAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

Handler = common.Handler


@dataclass(frozen=True)
class TariffView:
    """A stored tariff for display."""

    id: str
    tariff: Tariff | None
    error: str | None
    elements: list[tuple[list[str], list[str]]]  # (components in words, restrictions in words)
    chargers: list[str]
    is_default: bool


def tariff_view(store: CsmsStore, tariff_id: str, chargers: Iterable[str] = ()) -> TariffView:
    """Parse a stored tariff and describe it; a tariff that does not parse is shown with its error."""
    text = store.tariff_json(tariff_id) or "{}"
    default = store.default_tariff_id() == tariff_id
    try:
        tariff = Tariff.from_ocpi(json.loads(text))
    except (ValueError, TypeError) as exc:
        return TariffView(tariff_id, None, str(exc), [], list(chargers), default)
    elements = [
        (
            [describe_component(c, tariff.currency) for c in element.price_components],
            describe_restrictions(element.restrictions),
        )
        for element in tariff.elements
    ]
    return TariffView(tariff_id, tariff, None, elements, list(chargers), default)


# ---------------------------------------------------------------------------------------------- chart


@dataclass(frozen=True)
class Bar:
    """One bar of an SVG chart (user units) with its tooltip."""

    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class Panel:
    """One panel of the chart: a titled series of bars over a baseline."""

    title: str
    css: str
    top: float
    height: float
    max_label: str
    bars: list[Bar]

    @property
    def baseline(self) -> float:
        return self.top + self.height


@dataclass(frozen=True)
class Chart:
    """A daily energy and revenue bar chart, rendered as inline SVG by the template."""

    width: float
    height: float
    left: float
    right: float
    panels: list[Panel]
    labels: list[tuple[float, str]]


def daily_chart(stats: list[DailyStats], currency: str) -> Chart:
    """Lay out energy (kWh) and revenue bars per day; the template only draws what this computes."""
    left, right, panel_h, gap, top = 70.0, 12.0, 110.0, 46.0, 24.0
    slot = 34.0 if len(stats) <= 31 else max(6.0, 1000.0 / len(stats))
    width = left + right + slot * max(1, len(stats))
    bar_w = slot * 0.7
    panels: list[Panel] = []
    series: list[tuple[str, str, list[float], Callable[[float], str]]] = [
        ("Energy per day (kWh)", "energy", [s.energy_kwh for s in stats], lambda v: f"{v:,.3f} kWh"),
        (
            f"Revenue per day ({currency})",
            "revenue",
            [float(s.fees_minor) for s in stats],
            lambda v: format_money(round(v), currency),
        ),
    ]
    for i, (title, css, values, fmt) in enumerate(series):
        panel_top = top + i * (panel_h + gap)
        peak = max([v for v in values if v > 0], default=0.0)
        bars = []
        for n, (s, value) in enumerate(zip(stats, values, strict=True)):
            h = 0.0 if peak <= 0 else max(0.0, value) / peak * panel_h
            if 0 < h < 1:
                h = 1.0  # a tiny value stays visible
            x = left + n * slot + (slot - bar_w) / 2
            bars.append(Bar(x, panel_top + panel_h - h, bar_w, h, f"{s.day.isoformat()}: {fmt(value)}"))
        panels.append(Panel(title, css, panel_top, panel_h, fmt(peak), bars))
    every = max(1, math.ceil(len(stats) / 16))
    label_y = top + 2 * panel_h + gap + 16
    labels = [
        (left + n * slot + slot / 2, s.day.strftime("%m-%d")) for n, s in enumerate(stats) if n % every == 0
    ]
    return Chart(width, label_y + 8, left, right, panels, [(x, text) for x, text in labels])


# ---------------------------------------------------------------------------------------------- security


def csrf_token(app: web.Application) -> str:
    """The CSRF token of the admin session: an HMAC of the session value (stateless, like the session)."""
    key = bytes.fromhex(common.session_value(app[common.TOKEN_DIGEST]))
    return hmac.new(key, b"csms dashboard csrf v1", hashlib.sha256).hexdigest()


def _flash_key(app: web.Application) -> bytes:
    key = bytes.fromhex(common.session_value(app[common.TOKEN_DIGEST]))
    return hmac.new(key, b"csms dashboard flash v1", hashlib.sha256).digest()


def _same_origin(request: web.Request) -> bool:
    """A browser's Origin header, when sent, must name this host (defence in depth next to the token)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin != "null" and urlsplit(origin).netloc == request.host


def safe_path(value: str | None, default: str = "/") -> str:
    """A local absolute path to redirect to; anything else (other hosts, schemes, '//x') gives `default`."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(ch) < 32 for ch in value):
        return default
    return value


def redirect(location: str) -> web.Response:
    """A 303 See Other (returned, not raised, so cookies set on it are sent)."""
    return web.Response(status=303, headers={"Location": location})


def _secure(response: web.StreamResponse) -> web.StreamResponse:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def set_flash(response: web.StreamResponse, app: web.Application, kind: str, text: str) -> None:
    """Carry a one-time message to the next page in a signed, HttpOnly cookie."""
    payload = base64.urlsafe_b64encode(json.dumps([kind, text[:1500]]).encode()).decode()
    signature = hmac.new(_flash_key(app), payload.encode(), hashlib.sha256).hexdigest()
    response.set_cookie(
        FLASH_COOKIE, f"{payload}.{signature}", path="/", httponly=True, samesite="Strict", max_age=120
    )


def read_flash(request: web.Request) -> tuple[str, str] | None:
    """The flash message the previous POST left, if any and if its signature holds."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw or "." not in raw:
        return None
    payload, _, signature = raw.rpartition(".")
    expected = hmac.new(
        _flash_key(request.app), payload.encode(errors="surrogatepass"), hashlib.sha256
    ).hexdigest()
    if not common.same_text(signature, expected):
        return None
    try:
        kind, text = json.loads(base64.urlsafe_b64decode(payload.encode()))
    except (ValueError, TypeError, binascii.Error):
        return None
    return (str(kind), str(text))


# ---------------------------------------------------------------------------------------------- plumbing


def _store(request: web.Request) -> CsmsStore:
    return request.app[common.CSMS].store


def _site_tz(request: web.Request) -> tzinfo:
    return request.app[common.CSMS].site_tz


def static_url(request: web.Request, filename: str) -> str:
    """A versioned URL of a file under /static/ (cache-busting hash appended)."""
    try:
        return str(request.app.router["static"].url_for(filename=filename))
    except KeyError:
        return f"/static/{filename}"


def render(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    """Render a page with the common context (CSRF token, flash, formatters, currency)."""
    store = _store(request)
    currency = store.currency()
    flash = read_flash(request)
    tz = _site_tz(request)
    text = (
        request.app[_ENV]
        .get_template(template)
        .render(
            request_path=request.path,
            request_path_qs=request.path_qs,
            logged_in=common.is_admin(request),
            csrf=csrf_token(request.app),
            csrf_field=CSRF_FIELD,
            flash=flash,
            currency=currency,
            money=partial(format_money, currency=currency),
            fmt_time=format_time,
            kwh=format_kwh,
            duration=format_duration,
            static=partial(static_url, request),
            site_tz=str(tz),
            poll_ms=request.app[POLL_MS],
            status_url="/dash/status.json",
            nonce=lambda: secrets.token_hex(16),
            **context,
        )
    )
    response = web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
    if flash is not None:
        response.del_cookie(FLASH_COOKIE, path="/")
    _secure(response)
    return response


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    """An error page (404 unknown thing, 400 bad input, 403 refused)."""
    return render(request, "error.html", status=status, status_code=status, message=message)


def back(request: web.Request, default: str, kind: str, text: str, *, form: Any = None) -> web.Response:
    """Answer a POST: 303 to the page the form came from (its `back` field, if local) with a flash message."""
    target = safe_path(form.get("back") if form is not None else None, default)
    response = redirect(target)
    set_flash(response, request.app, kind, text)
    _secure(response)
    return response


def page(handler: Handler) -> Handler:
    """Require the admin session; for POSTs also the CSRF token and a same-origin request."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        if not common.is_admin(request):
            if request.method in ("GET", "HEAD"):
                query = urlencode({"next": request.path_qs})
                raise web.HTTPSeeOther(f"/login?{query}")
            return _secure(web.Response(status=403, text="login required"))
        if request.method == "POST":
            form = await request.post()
            token = form.get(CSRF_FIELD)
            if (
                not isinstance(token, str)
                or not common.same_text(token, csrf_token(request.app))
                or not _same_origin(request)
            ):
                return error_page(
                    request, 403, "The form's CSRF token is missing or wrong. Reload and retry."
                )
        response: web.StreamResponse = await handler(request)
        return _secure(response)

    return guarded


def api_json(handler: Handler) -> Handler:
    """Require the admin session for a JSON endpoint (401 otherwise, so scripts can send to the login)."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        if not common.is_admin(request):
            return _secure(common.json_error(401, "login required"))
        response: web.StreamResponse = await handler(request)
        return _secure(response)

    return guarded


def _text_field(form: MultiDictProxy[Any], name: str, *, required: bool = True, max_len: int = 255) -> str:
    value = form.get(name, "")
    if not isinstance(value, str):
        raise FormError(f"{name}: expected text")
    value = value.strip()
    if required and not value:
        raise FormError(f"{name} is required")
    if len(value) > max_len:
        raise FormError(f"{name}: at most {max_len} characters")
    return value


def _tariff_field(form: MultiDictProxy[Any], store: CsmsStore) -> str | None:
    """The form's optional ``tariff_id``: None for the default tariff, else an existing tariff."""
    tariff_id = _text_field(form, "tariff_id", required=False) or None
    if tariff_id is not None and tariff_id not in store.tariff_ids():
        raise FormError(f"unknown tariff {tariff_id!r}")
    return tariff_id


def _int_field(form: MultiDictProxy[Any], name: str, *, low: int, high: int) -> int:
    text = _text_field(form, name)
    if not re.fullmatch(r"[0-9]{1,12}", text):
        raise FormError(f"{name}: expected a whole number, got {text!r}")
    number = int(text)
    if not low <= number <= high:
        raise FormError(f"{name}: must be {low}..{high}, got {number}")
    return number


def parse_amount(text: str, currency: str) -> int:
    """'12.50' in the currency's major unit -> 1250 minor units; refuses more decimals than the currency has."""
    try:
        value = Decimal(text.strip().replace(",", "."))
    except InvalidOperation:
        raise FormError(f"amount: not a number: {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise FormError("amount: must be a positive number")
    minor = value.scaleb(currency_exponent(currency))
    if minor != minor.to_integral_value():
        raise FormError(f"amount: {currency} has {currency_exponent(currency)} decimal places")
    if minor > 10**12:
        raise FormError("amount: too large")
    return int(minor)


def _date_range(request: web.Request) -> tuple[date, date]:
    """The `from`/`to` query (YYYY-MM-DD, inclusive); default the last two weeks in the site time zone."""
    tz = _site_tz(request)
    today = datetime.now(UTC).astimezone(tz).date()
    try:
        to_date = date.fromisoformat(request.query["to"]) if request.query.get("to") else today
        from_date = (
            date.fromisoformat(request.query["from"])
            if request.query.get("from")
            else to_date - timedelta(days=DEFAULT_RANGE_DAYS - 1)
        )
    except ValueError:
        raise FormError("dates must look like YYYY-MM-DD") from None
    if to_date < from_date:
        raise FormError(f"'to' ({to_date}) is before 'from' ({from_date})")
    if (to_date - from_date).days >= MAX_RANGE_DAYS:
        raise FormError(f"a range may span at most {MAX_RANGE_DAYS} days")
    return from_date, to_date


def _csv_response(text: str, filename: str) -> web.Response:
    response = web.Response(text=text, content_type="text/csv", charset="utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{_FILENAME_UNSAFE.sub("_", filename)}"'
    return response


def _owners(store: CsmsStore) -> tuple[dict[int, User], dict[str, User]]:
    """Users by id, and the owner of each card by case-folded id_tag."""
    users = {u.id: u for u in store.users()}
    by_tag = {c.id_tag.casefold(): users[c.user_id] for c in store.cards() if c.user_id in users}
    return users, by_tag


# ---------------------------------------------------------------------------------------------- login


async def login_form(request: web.Request) -> web.StreamResponse:
    """GET /login: the token form (or straight on when already logged in)."""
    target = safe_path(request.query.get("next"))
    if common.is_admin(request):
        raise web.HTTPSeeOther(target)
    return render(request, "login.html", next=target, error=None)


async def login(request: web.Request) -> web.StreamResponse:
    """POST /login: check the admin token and set the HttpOnly, SameSite=Strict session cookie."""
    form = await request.post()
    next_field = form.get("next")
    target = safe_path(next_field if isinstance(next_field, str) else None)
    token = form.get("token")
    if not _same_origin(request):
        return error_page(request, 403, "Cross-site login refused.")
    if not isinstance(token, str) or not token.strip() or not common.token_ok(request.app, token.strip()):
        return render(request, "login.html", status=401, next=target, error="Wrong admin token.")
    response = redirect(target)
    response.set_cookie(
        common.SESSION_COOKIE,
        common.session_value(request.app[common.TOKEN_DIGEST]),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return _secure(response)


@page
async def logout(request: web.Request) -> web.StreamResponse:
    """POST /logout: drop the session cookie."""
    response = redirect("/login")
    response.del_cookie(common.SESSION_COOKIE, path="/")
    return response


# ---------------------------------------------------------------------------------------------- status


def _connector_label(connector_id: int) -> str:
    return "charger" if connector_id == 0 else f"#{connector_id}"


def status_snapshot(request: web.Request) -> dict[str, Any]:
    """Every charger's registration, connection, heartbeat and connector statuses (for the live poll)."""
    csms = request.app[common.CSMS]
    store = csms.store
    connected = csms.commands.connected()
    active: dict[str, int] = {}
    for tx in store.active_transactions():
        active[tx.cp_id] = active.get(tx.cp_id, 0) + 1
    by_charger: dict[str, list[ConnectorStatus]] = {}
    for status in store.all_connectors():
        by_charger.setdefault(status.cp_id, []).append(status)
    chargers = []
    for charger in store.chargers():
        chargers.append(
            {
                "id": charger.id,
                "registration": str(charger.status),
                "connected": charger.id in connected,
                "last_heartbeat": format_time(charger.last_heartbeat),
                "last_seen": format_time(csms.chargers.last_seen(charger.id, charger.last_heartbeat)),
                "active_transactions": active.get(charger.id, 0),
                "connectors": [
                    {
                        "id": c.connector_id,
                        "label": _connector_label(c.connector_id),
                        "status": c.status,
                        "error_code": c.error_code,
                        "info": c.info,
                        "since": format_time(c.timestamp),
                    }
                    for c in by_charger.get(charger.id, [])
                ],
            }
        )
    return {"now": format_time(datetime.now(UTC)), "chargers": chargers, "totals": site_totals(request)}


def site_totals(request: web.Request) -> dict[str, str]:
    """Power now (latest Power.Active.Import of each running session), and energy and revenue today: sessions
    that ended today (site time zone) plus the energy so far of the running ones (their revenue counts once
    they end, when they are priced)."""
    csms = request.app[common.CSMS]
    store = csms.store
    tz = _site_tz(request)
    today = csms.clock().astimezone(tz).date()
    start = datetime.combine(today, time(), tz)
    end = datetime.combine(today + timedelta(days=1), time(), tz)
    active = store.active_transactions()
    power_w = sum(store.latest_power_w([tx.id for tx in active]).values())
    ended_wh, revenue_minor = store.ended_between(start, end)
    energy_wh = ended_wh + sum(tx.energy_wh for tx in active)
    return {
        "power": f"{power_w / 1000:,.1f} kW",
        "energy": format_kwh(energy_wh),
        "revenue": format_money(revenue_minor, store.currency()),
    }


@api_json
async def status_json(request: web.Request) -> web.StreamResponse:
    """GET /dash/status.json."""
    return web.json_response(status_snapshot(request))


# ---------------------------------------------------------------------------------------------- pages


@page
async def overview(request: web.Request) -> web.StreamResponse:
    """GET /: chargers with live status."""
    store = _store(request)
    snapshot = status_snapshot(request)
    return render(
        request,
        "overview.html",
        chargers=snapshot["chargers"],
        totals=snapshot["totals"],
        tariff_ids=store.tariff_ids(),
        active=store.active_transactions(),
        security_events=store.security_events(limit=20),
    )


def _charger_or_404(request: web.Request) -> str:
    cp_id = request.match_info["cp_id"]
    if _store(request).charger(cp_id) is None:
        raise FormError(f"unknown charger {cp_id!r}")
    return cp_id


@page
async def charger_page(request: web.Request) -> web.StreamResponse:
    """GET /chargers/{cp_id}: connectors, firmware, diagnostics, tariff, sessions, chart, commands."""
    store = _store(request)
    cp_id = request.match_info["cp_id"]
    charger = store.charger(cp_id)
    if charger is None:
        return error_page(request, 404, f"No charger {cp_id!r}.")
    try:
        from_date, to_date = _date_range(request)
    except FormError as exc:
        return error_page(request, 400, str(exc))
    stats = store.daily_stats(cp_id, from_date, to_date, _site_tz(request))
    currency = store.currency()
    tariff_id = store.tariff_for(cp_id)
    _, owners = _owners(store)
    csms = request.app[common.CSMS]
    connected = csms.commands.is_connected(cp_id)
    return render(
        request,
        "charger.html",
        charger=charger,
        last_seen=csms.chargers.last_seen(cp_id, charger.last_heartbeat),
        curves=_curves(store, cp_id),
        connected=connected,
        lockout=request.app[common.CSMS].commands.auth_lockout(cp_id),
        client_certificate=request.app[common.CSMS].certificates.issued(cp_id),
        connectors=[c for c in store.connectors(cp_id)],
        command_connectors=[c.connector_id for c in store.connectors(cp_id) if c.connector_id > 0] or [1],
        tariff=tariff_view(store, tariff_id) if tariff_id else None,
        tariff_ids=store.tariff_ids(),
        active=store.active_transactions(cp_id),
        sessions=store.recent_transactions(cp_id=cp_id, limit=RECENT_SESSIONS),
        owners=owners,
        stats=stats,
        totals={
            "hours": sum(s.working_hours for s in stats),
            "energy_wh": sum(s.energy_wh for s in stats),
            "sessions": sum(s.sessions for s in stats),
            "fees": sum(s.fees_minor for s in stats),
        },
        chart=daily_chart(stats, currency),
        from_date=from_date.isoformat(),
        to_date=to_date.isoformat(),
        csv_url=f"/chargers/{cp_id}/stats.csv?" + urlencode({"from": from_date, "to": to_date}),
        reset_types=RESET_TYPES,
        device_model=store.device_model(cp_id)[:MAX_DEVICE_MODEL_ROWS],
        trigger_messages=TRIGGER_MESSAGES,
    )


def _curves(store: CsmsStore, cp_id: str) -> list[Curve]:
    """The power and energy curves of ``cp_id``'s running sessions."""
    return [session_curve(tx, store.meter_values(tx.id)) for tx in store.active_transactions(cp_id)]


@page
async def charger_live(request: web.Request) -> web.StreamResponse:
    """GET /chargers/{cp_id}/live: the running sessions' curves as an HTML fragment (for the live poll)."""
    store = _store(request)
    cp_id = request.match_info["cp_id"]
    if store.charger(cp_id) is None:
        return error_page(request, 404, f"No charger {cp_id!r}.")
    html = request.app[_ENV].get_template("curves.html").render(curves=_curves(store, cp_id))
    return web.Response(
        text=html, content_type="text/html", charset="utf-8", headers={"Cache-Control": "no-store"}
    )


@page
async def charger_stats_csv(request: web.Request) -> web.StreamResponse:
    """GET /chargers/{cp_id}/stats.csv?from=&to=: the daily statistics as CSV."""
    store = _store(request)
    cp_id = request.match_info["cp_id"]
    if store.charger(cp_id) is None:
        return error_page(request, 404, f"No charger {cp_id!r}.")
    try:
        from_date, to_date = _date_range(request)
    except FormError as exc:
        return error_page(request, 400, str(exc))
    text = store.daily_stats_csv(cp_id, from_date, to_date, _site_tz(request))
    return _csv_response(text, f"{cp_id}-daily-{from_date}-{to_date}.csv")


@dataclass(frozen=True)
class SessionFilter:
    """The sessions page's query: charger, user, local start dates (inclusive), paging."""

    cp_id: str | None
    user_id: int | None
    from_date: date | None
    to_date: date | None
    offset: int
    limit: int

    def window(self, tz: tzinfo) -> tuple[datetime | None, datetime | None]:
        """[start of from_date, start of the day after to_date) in the site's time zone, as aware datetimes."""
        start = None if self.from_date is None else datetime.combine(self.from_date, time(), tz)
        end = None if self.to_date is None else datetime.combine(self.to_date + timedelta(days=1), time(), tz)
        return start, end

    def query(self, **changes: Any) -> str:
        """This filter as a query string (empty fields left out), with ``changes`` applied."""
        fields = {
            "charger": self.cp_id,
            "user": self.user_id,
            "from": self.from_date,
            "to": self.to_date,
            "offset": self.offset or None,
            "limit": None if self.limit == SESSIONS_PAGE else self.limit,
        }
        fields.update(changes)
        return urlencode({k: v for k, v in fields.items() if v not in (None, "", 0)})


def _optional_date(request: web.Request, name: str) -> date | None:
    text = request.query.get(name, "")
    if not text:
        return None
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        raise FormError(f"{name}: dates must look like YYYY-MM-DD, got {text[:40]!r}")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise FormError(f"{name}: no such date {text!r}") from None


def _query_int(request: web.Request, name: str, default: int, *, low: int, high: int) -> int:
    text = request.query.get(name, "")
    if not text:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", text):
        raise FormError(f"{name}: expected a whole number, got {text[:40]!r}")
    number = int(text)
    if not low <= number <= high:
        raise FormError(f"{name}: must be {low}..{high}, got {number}")
    return number


def session_filter(request: web.Request) -> SessionFilter:
    """The validated filter of a sessions request; raises FormError naming the bad field."""
    user_text = request.query.get("user") or ""
    from_date = _optional_date(request, "from")
    to_date = _optional_date(request, "to")
    if from_date and to_date and to_date < from_date:
        raise FormError(f"'to' ({to_date}) is before 'from' ({from_date})")
    return SessionFilter(
        cp_id=request.query.get("charger") or None,
        # ASCII digits only: str.isdigit() also takes '²', which int() refuses.
        user_id=int(user_text) if re.fullmatch(r"[0-9]{1,11}", user_text) else None,
        from_date=from_date,
        to_date=to_date,
        offset=_query_int(request, "offset", 0, low=0, high=MAX_SESSIONS_OFFSET),
        limit=_query_int(request, "limit", SESSIONS_PAGE, low=1, high=MAX_SESSIONS_PAGE),
    )


@page
async def sessions_page(request: web.Request) -> web.StreamResponse:
    """GET /sessions?charger=&user=&from=&to=&offset=&limit=: sessions newest first, filtered, one page."""
    store = _store(request)
    try:
        f = session_filter(request)
    except FormError as exc:
        return error_page(request, 400, str(exc))
    users, owners = _owners(store)
    started_from, started_before = f.window(_site_tz(request))
    found = store.recent_transactions(
        cp_id=f.cp_id,
        user_id=f.user_id,
        started_from=started_from,
        started_before=started_before,
        offset=f.offset,
        limit=f.limit + 1,  # one more tells whether there is a next page
    )
    sessions = found[: f.limit]
    return render(
        request,
        "sessions.html",
        sessions=sessions,
        owners=owners,
        chargers=[c.id for c in store.chargers()],
        users=list(users.values()),
        cp_filter=f.cp_id,
        user_filter=f.user_id,
        from_date=f.from_date.isoformat() if f.from_date else "",
        to_date=f.to_date.isoformat() if f.to_date else "",
        first=f.offset + 1,
        last=f.offset + len(sessions),
        prev_url=f"/sessions?{f.query(offset=max(0, f.offset - f.limit))}" if f.offset else None,
        next_url=f"/sessions?{f.query(offset=f.offset + f.limit)}" if len(found) > f.limit else None,
        csv_url=f"/sessions.csv?{f.query(offset=None, limit=None)}",
    )


@page
async def sessions_csv(request: web.Request) -> web.StreamResponse:
    """GET /sessions.csv?charger=&user=&from=&to=: every filtered session as CSV (up to MAX_CSV_SESSIONS)."""
    store = _store(request)
    try:
        f = session_filter(request)
    except FormError as exc:
        return error_page(request, 400, str(exc))
    started_from, started_before = f.window(_site_tz(request))
    text, more = store.sessions_csv(
        cp_id=f.cp_id,
        user_id=f.user_id,
        started_from=started_from,
        started_before=started_before,
        limit=MAX_CSV_SESSIONS,
    )
    if more:
        return error_page(
            request, 413, f"More than {MAX_CSV_SESSIONS:,} sessions match; narrow the dates and export again."
        )
    dates = f"-{f.from_date or 'start'}-{f.to_date or 'now'}" if f.from_date or f.to_date else ""
    return _csv_response(text, f"sessions{dates}.csv")


@page
async def users_csv(request: web.Request) -> web.StreamResponse:
    """GET /users.csv: every user with card count and balance."""
    return _csv_response(_store(request).users_csv(), "users.csv")


@page
async def cards_csv(request: web.Request) -> web.StreamResponse:
    """GET /cards.csv: every card with owner, mode, status, expiry and balance."""
    return _csv_response(_store(request).cards_csv(), "cards.csv")


def _cdr_view(tx: Transaction) -> dict[str, Any] | None:
    """The stored CDR JSON, or None."""
    if not tx.cdr_json:
        return None
    try:
        cdr = json.loads(tx.cdr_json)
    except ValueError:
        return None
    return cdr if isinstance(cdr, dict) else None


@page
async def session_page(request: web.Request) -> web.StreamResponse:
    """GET /sessions/{tx_id}: one session with its CDR."""
    store = _store(request)
    try:
        tx = store.transaction(int(request.match_info["tx_id"]))
    except (UnknownTransaction, ValueError, StoreError):
        return error_page(request, 404, "No such session.")
    _, owners = _owners(store)
    samples = store.meter_values(tx.id)
    return render(
        request,
        "session.html",
        tx=tx,
        owner=owners.get(tx.id_tag.casefold()),
        cdr=_cdr_view(tx),
        samples=len(samples),
        charges=[e for e in store.entries(tx.id_tag) if e.transaction_id == tx.id]
        if store.card(tx.id_tag)
        else [],
    )


@page
async def users_page(request: web.Request) -> web.StreamResponse:
    """GET /users: users with card counts and balances."""
    store = _store(request)
    cards: dict[int, list[Card]] = {}
    for card in store.cards():
        if card.user_id is not None:
            cards.setdefault(card.user_id, []).append(card)
    return render(request, "users.html", users=store.users(), cards=cards)


@page
async def user_page(request: web.Request) -> web.StreamResponse:
    """GET /users/{user_id}: cards, balances, ledger and consumption."""
    store = _store(request)
    user_id = int(request.match_info["user_id"])
    user = store.user(user_id)
    if user is None:
        return error_page(request, 404, "No such user.")
    return render(
        request,
        "user.html",
        user=user,
        cards=store.cards(user_id),
        entries=store.user_entries(user_id),
        consumption=store.user_consumption(user_id),
        active=[
            tx
            for tx in store.active_transactions()
            if any(c.id_tag.casefold() == tx.id_tag.casefold() for c in store.cards(user_id))
        ],
    )


@page
async def user_consumption_csv(request: web.Request) -> web.StreamResponse:
    """GET /users/{user_id}/consumption.csv."""
    store = _store(request)
    user_id = int(request.match_info["user_id"])
    if store.user(user_id) is None:
        return error_page(request, 404, "No such user.")
    return _csv_response(store.user_consumption_csv(user_id), f"user-{user_id}-consumption.csv")


@page
async def cards_page(request: web.Request) -> web.StreamResponse:
    """GET /cards: every card with mode, status, balance; forms to add, top up, block."""
    store = _store(request)
    users = {u.id: u for u in store.users()}
    return render(
        request,
        "cards.html",
        cards=store.cards(),
        users=users,
        modes=[m.value for m in CardMode],
    )


@page
async def card_page(request: web.Request) -> web.StreamResponse:
    """GET /cards/{id_tag}: one card's ledger and sessions."""
    store = _store(request)
    card = store.card(request.match_info["id_tag"])
    if card is None:
        return error_page(request, 404, "No such card.")
    return render(
        request,
        "card.html",
        card=card,
        owner=store.user(card.user_id) if card.user_id is not None else None,
        balance=store.balance(card.id_tag),
        entries=list(reversed(store.entries(card.id_tag))),
        sessions=store.recent_transactions(id_tag=card.id_tag, limit=RECENT_SESSIONS),
    )


@page
async def tariffs_page(request: web.Request) -> web.StreamResponse:
    """GET /tariffs: every tariff in words, with the chargers that use it."""
    store = _store(request)
    default = store.default_tariff_id()
    users_of: dict[str, list[str]] = {}
    for charger in store.chargers():
        tariff_id = charger.tariff_id or default
        if tariff_id:
            users_of.setdefault(tariff_id, []).append(charger.id)
    views = [tariff_view(store, t, users_of.get(t, [])) for t in store.tariff_ids()]
    return render(
        request,
        "tariffs.html",
        tariffs=views,
        default=default,
        price_fields=TARIFF_FORM_PRICES,
        form_values={v.id: tariff_form_values(v.tariff) for v in views},
        empty_form=tariff_form_values(None),
    )


# The tariff form's price fields: (form field, OCPI dimension, label), all excl. VAT in the major unit.
TARIFF_FORM_PRICES = (
    ("energy_price", "ENERGY", "Energy, per kWh"),
    ("time_price", "TIME", "Charging time, per hour"),
    ("flat_fee", "FLAT", "Session fee, per session"),
    ("parking_price", "PARKING_TIME", "Parking, per hour"),
)


def _decimal_field(form: MultiDictProxy[Any], name: str, *, places: int, high: int) -> Decimal | None:
    """An optional non-negative decimal with at most ``places`` decimals (ASCII digits only), or None if empty."""
    text = _text_field(form, name, required=False, max_len=32).replace(",", ".")
    if not text:
        return None
    if not re.fullmatch(rf"[0-9]{{1,9}}(\.[0-9]{{1,{places}}})?", text):
        raise FormError(f"{name}: expected a number with at most {places} decimals, got {text!r}")
    value = Decimal(text)
    if value > high:
        raise FormError(f"{name}: must be at most {high}, got {text}")
    return value


def tariff_from_form(form: MultiDictProxy[Any], tariff_id: str, currency: str) -> dict[str, Any]:
    """The OCPI 2.2.1 tariff object the form describes (one element, step size 1); raises FormError."""
    vat = _decimal_field(form, "vat", places=2, high=100)
    components = []
    for name, dimension, _ in TARIFF_FORM_PRICES:
        price = _decimal_field(form, name, places=4, high=1_000_000)
        if price is not None:
            component: dict[str, Any] = {"type": dimension, "price": float(price), "step_size": 1}
            if vat is not None:
                component["vat"] = float(vat)
            components.append(component)
    if not components:
        raise FormError("enter at least one price (a free tariff is no tariff: remove it instead)")
    element: dict[str, Any] = {"price_components": components}
    start = _text_field(form, "start_time", required=False, max_len=8)
    end = _text_field(form, "end_time", required=False, max_len=8)
    if bool(start) != bool(end):
        raise FormError("a time-of-day restriction needs both a start and an end time")
    if start:
        element["restrictions"] = {"start_time": start, "end_time": end}
    return {"id": tariff_id, "currency": currency, "elements": [element]}


def _save_tariff(request: web.Request, body: dict[str, Any]) -> str:
    """Validate as the REST API does (`pricing.check_tariff`) and store through the domain; raises FormError."""
    store = _store(request)
    try:
        tariff_id, _ = check_tariff(body, store.currency())
    except InvalidTariff as exc:
        raise FormError(str(exc)) from None
    request.app[common.CSMS].pricing.put_tariff(
        tariff_id, json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    )
    return tariff_id


@page
async def add_tariff(request: web.Request) -> web.StreamResponse:
    """POST /tariffs: create a tariff from the form (an existing id is refused: edit it instead)."""
    store = _store(request)

    def act(form: MultiDictProxy[Any]) -> str:
        tariff_id = _text_field(form, "tariff_id")  # its length is check_tariff's rule, as in the API
        if store.tariff_json(tariff_id) is not None:
            raise FormError(f"tariff {tariff_id!r} exists; edit it below")
        return f"Tariff {_save_tariff(request, tariff_from_form(form, tariff_id, store.currency()))} added."

    return await _form_action(request, "/tariffs", act)


@page
async def edit_tariff(request: web.Request) -> web.StreamResponse:
    """POST /tariffs/{tariff_id}: replace a tariff with the form's prices."""
    store = _store(request)
    tariff_id = request.match_info["tariff_id"]
    if store.tariff_json(tariff_id) is None:
        return error_page(request, 404, f"No tariff {tariff_id[:64]!r}.")

    def act(form: MultiDictProxy[Any]) -> str:
        return f"Tariff {_save_tariff(request, tariff_from_form(form, tariff_id, store.currency()))} saved."

    return await _form_action(request, "/tariffs", act)


def tariff_form_values(tariff: Tariff | None) -> dict[str, str]:
    """The edit form's prefilled fields from a stored tariff's first element ('' where absent)."""
    values = {name: "" for name, _, _ in TARIFF_FORM_PRICES} | {"vat": "", "start_time": "", "end_time": ""}
    if tariff is None or not tariff.elements:
        return values
    element = tariff.elements[0]
    by_type = {name: dimension for name, dimension, _ in TARIFF_FORM_PRICES}
    for c in element.price_components:
        for name, dimension in by_type.items():
            if c.type.value == dimension and not values[name]:
                values[name] = f"{c.price.normalize():f}"
        if c.vat is not None and not values["vat"]:
            values["vat"] = f"{c.vat.normalize():f}"
    r = element.restrictions
    if r is not None:
        values["start_time"], values["end_time"] = r.start_time or "", r.end_time or ""
    return values


# ---------------------------------------------------------------------------------------------- actions


async def _form_action(
    request: web.Request, default: str, action: Callable[[MultiDictProxy[Any]], str]
) -> web.Response:
    """Run a form action; its message (or the form/store error) becomes the flash of the page it came from."""
    form = await request.post()
    try:
        message = action(form)
    except (FormError, StoreError) as exc:
        return back(request, default, "error", str(exc), form=form)
    return back(request, default, "ok", message, form=form)


@page
async def add_charger(request: web.Request) -> web.StreamResponse:
    """POST /chargers: register a charger with its password (and optionally its own tariff)."""
    store = _store(request)

    def act(form: MultiDictProxy[Any]) -> str:
        cp_id = _text_field(form, "cp_id")
        if not re.fullmatch(r"[A-Za-z0-9._:+-]{1,48}", cp_id):
            raise FormError("charger id: 1-48 letters, digits or . _ : + -")
        password = _text_field(form, "password", max_len=40)
        if len(password) < 8:
            raise FormError("password: at least 8 characters (OCPP 1.6 security profile 1: 8-40)")
        tariff_id = _tariff_field(form, store)
        store.add_charger(cp_id, password, tariff_id=tariff_id)
        return f"Charger {cp_id} added; it connects to /ocpp/{cp_id} with its password."

    return await _form_action(request, "/", act)


@page
async def set_registration(request: web.Request) -> web.StreamResponse:
    """POST /chargers/{cp_id}/registration: accept, keep pending or reject a charger."""
    store = _store(request)

    def act(form: MultiDictProxy[Any]) -> str:
        cp_id = _charger_or_404(request)
        status = _text_field(form, "status")
        if status not in {s.value for s in ChargerStatus}:
            raise FormError(f"unknown registration status {status!r}")
        store.set_charger_status(cp_id, status)
        return f"Charger {cp_id} is now {status}; it learns this at its next BootNotification."

    return await _form_action(request, "/", act)


@page
async def set_tariff(request: web.Request) -> web.StreamResponse:
    """POST /chargers/{cp_id}/tariff: give a charger its own tariff, or the default."""
    store = _store(request)

    def act(form: MultiDictProxy[Any]) -> str:
        cp_id = _charger_or_404(request)
        tariff_id = _tariff_field(form, store)
        store.set_charger_tariff(cp_id, tariff_id)
        return f"Charger {cp_id} now uses {'tariff ' + tariff_id if tariff_id else 'the default tariff'}."

    return await _form_action(request, f"/chargers/{request.match_info['cp_id']}", act)


@page
async def add_user(request: web.Request) -> web.StreamResponse:
    """POST /users: add a user."""
    store = _store(request)

    def act(form: MultiDictProxy[Any]) -> str:
        user = store.add_user(
            _text_field(form, "name"),
            phone=_text_field(form, "phone", required=False, max_len=32) or None,
            email=_text_field(form, "email", required=False, max_len=254) or None,
        )
        return f"User {user.name} added (id {user.id})."

    return await _form_action(request, "/users", act)


@page
async def add_card(request: web.Request) -> web.StreamResponse:
    """POST /cards: issue a card (personal or prepaid) to a user or to nobody."""
    store = _store(request)

    def act(form: MultiDictProxy[Any]) -> str:
        id_tag = _text_field(form, "id_tag", max_len=MAX_ID_TAG_LENGTH)
        owner = _text_field(form, "user_id", required=False)
        user_id = _int_field(form, "user_id", low=1, high=2**53) if owner else None
        mode = _text_field(form, "mode")
        if mode not in {m.value for m in CardMode}:
            raise FormError(f"mode must be personal or prepaid, got {mode!r}")
        expiry_text = _text_field(form, "expiry", required=False)
        expiry = None
        if expiry_text:
            try:
                last_day = date.fromisoformat(expiry_text)
            except ValueError:
                raise FormError("expiry: a date YYYY-MM-DD") from None
            # Valid through the given (UTC) day.
            expiry = datetime.combine(last_day + timedelta(days=1), time(), tzinfo=UTC)
        card = store.add_card(id_tag, user_id=user_id, mode=mode, expiry=expiry)
        return f"Card {card.id_tag} ({card.mode}) added."

    return await _form_action(request, "/cards", act)


@page
async def topup_card(request: web.Request) -> web.StreamResponse:
    """POST /cards/{id_tag}/topup: credit a prepaid card; the form's nonce makes a resubmission harmless."""
    store = _store(request)

    def act(form: MultiDictProxy[Any]) -> str:
        card = store.card(request.match_info["id_tag"])
        if card is None:
            raise FormError("unknown card")
        if card.mode is not CardMode.PREPAID:
            raise FormError(
                f"card {card.id_tag} is personal (billed afterwards); only prepaid cards take top-ups"
            )
        if store.payment_for_id_tag(card.id_tag) is not None:
            # Its whole remainder is refunded to the QR payer's provider, which refuses more than was paid.
            raise FormError(f"card {card.id_tag} is bound to a QR payment and takes no top-ups")
        nonce = _text_field(form, "nonce")
        if not _NONCE.fullmatch(nonce):
            raise FormError("the form is stale; reload the page")
        currency = store.currency()
        amount = parse_amount(_text_field(form, "amount", max_len=32), currency)
        entry = store.topup(card.id_tag, amount, f"dashboard:topup:{nonce}", note="dashboard top-up")
        balance = store.balance(card.id_tag)
        return (
            f"Card {card.id_tag} topped up by {format_money(entry.amount_minor, currency)}; "
            f"balance {format_money(balance, currency)}."
        )

    return await _form_action(request, "/cards", act)


@page
async def set_card_status(request: web.Request) -> web.StreamResponse:
    """POST /cards/{id_tag}/status: block or unblock a card."""
    store = _store(request)

    def act(form: MultiDictProxy[Any]) -> str:
        status = _text_field(form, "status")
        if status not in {s.value for s in CardStatus}:
            raise FormError(f"status must be active or blocked, got {status!r}")
        card = store.set_card_status(request.match_info["id_tag"], status)
        return f"Card {card.id_tag} is now {card.status}."

    return await _form_action(request, "/cards", act)


def command_call(
    commands: ChargerCommands, cp_id: str, action: str, form: MultiDictProxy[Any]
) -> Awaitable[CommandReply]:
    """The dashboard command named ``action`` (its form's path) as a call on the port (FormError if malformed)."""
    timeout_s = COMMAND_TIMEOUT_S
    if action == "RemoteStartTransaction":
        id_tag = _text_field(form, "idTag", max_len=MAX_ID_TAG_LENGTH)
        evse = (
            _int_field(form, "connectorId", low=1, high=10_000)
            if _text_field(form, "connectorId", required=False)
            else None
        )
        return commands.remote_start(cp_id, evse, id_tag, timeout_s=timeout_s)
    if action == "RemoteStopTransaction":
        tx_id = _int_field(form, "transactionId", low=0, high=2**31 - 1)
        return commands.remote_stop(cp_id, tx_id, timeout_s=timeout_s)
    if action == "Reset":
        kind = _text_field(form, "type")
        if kind not in RESET_TYPES:
            raise FormError(f"reset type must be Soft or Hard, got {kind!r}")
        return commands.reset(cp_id, "Soft" if kind == "Soft" else "Hard", timeout_s=timeout_s)
    if action == "UnlockConnector":
        evse = _int_field(form, "connectorId", low=1, high=10_000)
        return commands.unlock(cp_id, evse, timeout_s=timeout_s)
    if action == "GetDiagnostics":
        location = _text_field(form, "location", max_len=512)
        if urlsplit(location).scheme not in _DIAGNOSTICS_SCHEMES or not urlsplit(location).netloc:
            raise FormError("location: an upload URL like ftp://host/path or https://host/path")
        return commands.get_diagnostics(cp_id, location, timeout_s=timeout_s)
    raise FormError(f"unknown command {action!r}")


def describe_reply(reply: CommandReply) -> str:
    """A charger's answer in one line: its status first, then any other fields."""
    if not reply.status and not reply.fields:
        return "(empty reply)"
    parts = [reply.status] if reply.status else []
    parts += [f"{k}={json.dumps(v)}" for k, v in reply.fields.items()]
    return ", ".join(parts)


async def _operation_reply(result: Awaitable[dict[str, Any]]) -> CommandReply:
    """An operation's result shown like a command's reply."""
    fields = dict(await result)
    return CommandReply(str(fields.pop("status", "")), fields.pop("fields", fields))


@page
async def charger_command(request: web.Request) -> web.StreamResponse:
    """POST /chargers/{cp_id}/commands/{action}: send the OCPP call and show the charger's reply."""
    csms = request.app[common.CSMS]
    cp_id = request.match_info["cp_id"]
    action = request.match_info["action"]
    form = await request.post()
    default = f"/chargers/{cp_id}"
    if csms.store.charger(cp_id) is None:
        return error_page(request, 404, f"No charger {cp_id!r}.")
    operation = OPERATIONS.get(action)
    try:
        if operation is not None:
            body = body_from_form(operation, {k: v for k, v in form.items() if isinstance(v, str)})
            operation.check(body)
            pending: Awaitable[CommandReply] = _operation_reply(operation.run(csms, cp_id, body))
        else:
            pending = command_call(csms.commands, cp_id, action, form)
        reply = await pending
    except FormError as exc:
        return back(request, default, "error", f"{action}: {exc}", form=form)
    except CommandFailed as exc:
        if exc.code == CommandFailed.NOT_CONNECTED:
            text = f"{cp_id} is not connected; {action} not sent."
        elif exc.code == CommandFailed.TIMEOUT:
            text = f"{cp_id} did not answer {action} in time."
        elif exc.code == CommandFailed.DISCONNECTED:
            text = f"{cp_id} disconnected before answering {action}."
        elif exc.code == CommandFailed.NOT_IN_VERSION:
            text = f"{action} not sent: {exc.description}"
        else:
            text = f"{cp_id} answered {action} with a CallError: {exc.code}"
            text += f" ({exc.description})" if exc.description else ""
        return back(request, default, "error", text, form=form)
    status = reply.status
    kind = "error" if status in {"Rejected", "NotSupported", "UnlockFailed", "Failed"} else "ok"
    return back(request, default, kind, f"{cp_id} answered {action}: {describe_reply(reply)}", form=form)


# ---------------------------------------------------------------------------------------------- wiring


def add_nav(app: web.Application, href: str, label: str) -> None:
    """Add a page of another package (OCPI partners) to the dashboard's main menu."""
    entries = app[_ENV].globals["nav_extra"]
    assert isinstance(entries, list)
    entries.append((href, label))


def environment() -> jinja2.Environment:
    """The dashboard's jinja2 environment: every value HTML-escaped, undefined names are errors."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(common.TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["status_class"] = lambda s: "status-" + re.sub(r"[^a-z]", "", str(s).lower())
    env.filters["isotime"] = format_iso
    env.globals["connector_label"] = _connector_label
    env.globals["nav_extra"] = []  # pages other packages add to the main menu (add_nav)
    env.globals["dimension_units"] = DIMENSION_UNITS
    return env


def setup(app: web.Application, *, poll_ms: int = 1000) -> None:
    """Register the dashboard's routes on the central system's application."""
    app[_ENV] = environment()
    app[POLL_MS] = poll_ms
    r = app.router
    r.add_get("/login", login_form)
    r.add_post("/login", login)
    r.add_post("/logout", logout)
    r.add_get("/", overview)
    r.add_get("/dash/status.json", status_json)
    r.add_post("/chargers", add_charger)
    r.add_get("/chargers/{cp_id}", charger_page)
    r.add_get("/chargers/{cp_id}/stats.csv", charger_stats_csv)
    r.add_get("/chargers/{cp_id}/live", charger_live)
    r.add_post("/chargers/{cp_id}/registration", set_registration)
    r.add_post("/chargers/{cp_id}/tariff", set_tariff)
    r.add_post("/chargers/{cp_id}/commands/{action}", charger_command)
    r.add_get("/sessions", sessions_page)
    r.add_get("/sessions.csv", sessions_csv)
    r.add_get("/users.csv", users_csv)
    r.add_get("/cards.csv", cards_csv)
    r.add_get(r"/sessions/{tx_id:\d{1,12}}", session_page)
    r.add_get("/users", users_page)
    r.add_post("/users", add_user)
    r.add_get(r"/users/{user_id:\d{1,12}}", user_page)
    r.add_get(r"/users/{user_id:\d{1,12}}/consumption.csv", user_consumption_csv)
    r.add_get("/cards", cards_page)
    r.add_post("/cards", add_card)
    r.add_get("/cards/{id_tag}", card_page)
    r.add_post("/cards/{id_tag}/topup", topup_card)
    r.add_post("/cards/{id_tag}/status", set_card_status)
    r.add_get("/tariffs", tariffs_page)
    r.add_post("/tariffs", add_tariff)
    r.add_post("/tariffs/{tariff_id}", edit_tariff)
