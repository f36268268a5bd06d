"""QR payment pages: a pay page per connector, QR codes, provider callbacks and status pages; the money flow
around a paid session and the provider interface are `backend_stub.domain.payments`.

The flow (issue 4, item 5):

1. ``GET /pay/{cp}/{connector}`` (the URL in ``/qr/{cp}/{connector}.svg``) shows the connector's live status and
   the tariff and asks for an amount; ``POST`` validates it, creates a payment (status ``created``) bound to a
   fresh unguessable idTag and redirects to the provider's checkout.
2. The provider calls back ``POST /pay/callback/{provider}`` (authenticity checked by the provider object; the
   built-in ``test`` provider signs with HMAC-SHA256). Store transitions are idempotent, so only the callback that
   actually moves the payment to ``captured`` triggers anything: a repeated one starts nothing and posts nothing.
3. On capture the paid amount is topped up to a prepaid card whose idTag is the payment's (the payment-bound
   account), then RemoteStartTransaction is sent with that idTag. The idTag authorizes only at that charger,
   starts only on that connector and only once (`PaymentFlow`). The card is prepaid, so the prepaid cut-off stops
   the session remotely when its running cost reaches the paid amount; the charge at StopTransaction is capped at the amount.
4. At StopTransaction (or when the charger is offline, rejects the start, or starts nothing within
   ``start_timeout_s``) the card's remaining balance is paid out once (ledger key ``payment:{id}:refund``),
   refunded through the provider with the same key, the payment goes to ``refunded`` and the idTag is blocked.
5. ``GET /pay/status/{token}`` (token = payment id + HMAC, so ids cannot be enumerated) shows where it stands
   and refreshes itself (meta refresh) until it is final. While charging it has a "Stop charging" button:
   ``POST /pay/status/{token}/stop`` (a second HMAC form field and a same-origin check against CSRF) sends
   RemoteStopTransaction through the command port for that payment's own transaction only.

Amounts are typed and shown in the currency's major unit ("5.00 EUR") and become integer minor units at the
form boundary (`formatting.parse_amount`); a session fee in the price table is rounded to minor units.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import aiohttp
import jinja2
import segno
from aiohttp import web

from backend_stub.domain import tariffs
from backend_stub.domain.central import Central
from backend_stub.domain.payments import (
    PAYMENT_TRANSITIONS,
    PROVIDER_CHOICES,
    CallbackRejected,
    Checkout,
    CheckoutRequest,
    PayConfig,
    PaymentFlow,
    PaymentProvider,
    ProviderEvent,
    refund_key,
)
from backend_stub.domain.tariffs import currency_exponent
from backend_stub.errors import CommandFailed
from backend_stub.store import (
    CardStatus,
    Conflict,
    NotFound,
    Payment,
    PaymentStatus,
    StoreError,
)
from backend_stub.web import common
from backend_stub.web.formatting import (
    describe_restrictions,
    format_amount_input,
    format_fee,
    format_money,
    format_price,
    parse_amount,
)

__all__ = [
    "PAYMENTS",
    "CallbackRejected",
    "Checkout",
    "CheckoutRequest",
    "PayConfig",
    "PaymentProvider",
    "PaymentService",
    "ProviderEvent",
    "TestProvider",
    "qr_svg",
    "service",
    "setup",
]

log = logging.getLogger(__name__)

ID_TAG_PREFIX = "QR"  # + 18 hex digits = 20 characters (OCPP 1.6 CiString20), 72 random bits
READY_STATUSES = frozenset({"Available", "Preparing"})  # connector states a paid start can begin from
STATUS_TOKEN_HEX = 24


# --------------------------------------------------------------------------------------------- configuration


# --------------------------------------------------------------------------------------------- providers


_EVENT_STATUS = {
    "payment.authorized": PaymentStatus.AUTHORIZED,
    "payment.captured": PaymentStatus.CAPTURED,
    "payment.failed": PaymentStatus.FAILED,
}
SIGNATURE_HEADER = "Test-Signature"
SIGNATURE_TOLERANCE_S = 300


@dataclass
class TestProvider:
    """A built-in provider that simulates authorization and capture (Stripe-like, signed webhooks).

    Its checkout page ``/pay/test-provider/{ref}`` lets the payer approve or decline; the provider then posts
    ``payment.authorized`` + ``payment.captured`` (or ``payment.failed``) to the callback URL over HTTP, signed
    ``t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``. Checkouts live in memory (it is a simulator).
    """

    __test__ = False  # not a pytest class

    secret: bytes
    clock: Callable[[], float]
    name: str = "test"
    checkouts: dict[str, CheckoutRequest] = field(default_factory=dict)
    refunds: dict[str, tuple[str, int]] = field(default_factory=dict)  # idempotency key -> (ref, amount)
    delivered: list[tuple[str, int]] = field(default_factory=list)  # (event type, HTTP status) sent

    async def create_checkout(self, request: CheckoutRequest) -> Checkout:
        """Remember the checkout; its page is served by this module under /pay/test-provider/."""
        ref = "tp_" + secrets.token_hex(12)
        self.checkouts[ref] = request
        base = request.success_url.split("/pay/", 1)[0]
        return Checkout(ref, f"{base}/pay/test-provider/{ref}")

    def sign(self, body: bytes, at: int | None = None) -> str:
        """The signature header value for a callback body."""
        t = int(self.clock()) if at is None else at
        mac = hmac.new(self.secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        return f"t={t},v1={mac}"

    def event_body(self, ref: str, event_type: str) -> bytes:
        """A callback body for one of this provider's checkouts."""
        checkout = self.checkouts[ref]
        return json.dumps(
            {
                "id": "evt_" + secrets.token_hex(8),
                "type": event_type,
                "data": {"ref": ref, "amount_minor": checkout.amount_minor, "currency": checkout.currency},
            }
        ).encode()

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderEvent:
        """Check the HMAC signature and its age, then parse the event."""
        parts = dict(p.split("=", 1) for p in headers.get(SIGNATURE_HEADER, "").split(",") if "=" in p)
        try:
            t = int(parts["t"])
            given = parts["v1"]
        except (KeyError, ValueError):
            raise CallbackRejected(401, f"missing or malformed {SIGNATURE_HEADER} header") from None
        expected = hmac.new(self.secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        if not common.same_text(expected, given):
            raise CallbackRejected(401, "bad signature")
        if abs(self.clock() - t) > SIGNATURE_TOLERANCE_S:
            raise CallbackRejected(401, "signature timestamp outside the tolerance")
        try:
            event = json.loads(body)
            data = event["data"]
            status = _EVENT_STATUS[event["type"]]
            ref, amount, event_id = data["ref"], data.get("amount_minor"), event["id"]
        except (ValueError, KeyError, TypeError):
            raise CallbackRejected(400, "malformed event") from None
        if not isinstance(ref, str) or not isinstance(event_id, str):
            raise CallbackRejected(400, "malformed event")
        if amount is not None and (type(amount) is not int or amount <= 0):
            raise CallbackRejected(400, "malformed amount")
        return ProviderEvent(event_id, ref, status, amount)

    async def complete(self, ref: str, approve: bool, callback_url: str) -> None:
        """The payer approved or declined: post the signed events, in order, to the callback URL."""
        kinds = ["payment.authorized", "payment.captured"] if approve else ["payment.failed"]
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            for kind in kinds:
                body = self.event_body(ref, kind)
                headers = {SIGNATURE_HEADER: self.sign(body), "Content-Type": "application/json"}
                async with session.post(callback_url, data=body, headers=headers) as response:
                    self.delivered.append((kind, response.status))
                    if response.status != 200:
                        log.warning("test provider: %s for %s answered %s", kind, ref, response.status)
                        return

    async def refund(self, provider_ref: str, amount_minor: int, idempotency_key: str) -> str:
        """Record the refund (once per key)."""
        if amount_minor <= 0:
            raise ValueError(f"refund amount must be positive, got {amount_minor}")
        known = self.checkouts.get(provider_ref)
        if known is not None and amount_minor > known.amount_minor:
            raise ValueError(f"refund of {amount_minor} exceeds the payment of {known.amount_minor}")
        self.refunds.setdefault(idempotency_key, (provider_ref, amount_minor))
        return "re_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]

    def refunded_minor(self, provider_ref: str) -> int:
        """Total refunded for one checkout."""
        return sum(amount for ref, amount in self.refunds.values() if ref == provider_ref)


# --------------------------------------------------------------------------------------------- formatting


_UNITS = {
    tariffs.DimensionType.ENERGY: "Energy, per kWh",
    tariffs.DimensionType.FLAT: "Session fee, per session",
    tariffs.DimensionType.TIME: "Charging time, per hour",
    tariffs.DimensionType.PARKING_TIME: "Parking, per hour plugged in but not charging",
}


def describe_tariff(tariff: tariffs.Tariff) -> list[dict[str, str]]:
    """Tariff rows for the pay page: what, when, price excl. VAT, VAT, price incl. VAT."""
    rows = []
    for element in tariff.elements:
        when = "; ".join(describe_restrictions(element.restrictions))
        for c in element.price_components:
            incl = c.price * (1 + (c.vat or Decimal(0)) / 100)
            step = ""
            if c.step_size > 1:
                step = (
                    f" (billed per {c.step_size} {'Wh' if c.type is tariffs.DimensionType.ENERGY else 's'})"
                )
            # A session fee is an amount the driver pays: shown in minor units like any amount; a unit price
            # (per kWh, per hour) keeps its sub-minor digits, since the total is rounded once (OCPI 2.2.1 §11.4.5).
            show = format_fee if c.type is tariffs.DimensionType.FLAT else format_price
            rows.append(
                {
                    "what": _UNITS[c.type] + step,
                    "when": when,
                    "excl": show(c.price, tariff.currency),
                    "vat": f"{c.vat.normalize():f} %" if c.vat is not None else "none",
                    "incl": show(incl, tariff.currency),
                }
            )
    for label, price in (
        ("minimum per session", tariff.min_price),
        ("maximum per session", tariff.max_price),
    ):
        if price is not None:
            incl_text = "" if price.incl_vat is None else format_fee(price.incl_vat, tariff.currency)
            rows.append(
                {
                    "what": label,
                    "when": "",
                    "excl": format_fee(price.excl_vat, tariff.currency),
                    "vat": "",
                    "incl": incl_text,
                }
            )
    return rows


def qr_svg(url: str) -> bytes:
    """The pay page URL as a QR code (SVG document, error correction M or better)."""
    qr = segno.make_qr(url, error="m")
    out = qr.svg_inline(scale=8, border=4, title=url)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        + out.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)
    ).encode()


# --------------------------------------------------------------------------------------------- the service


@dataclass(frozen=True)
class StatusView:
    """What the status page shows."""

    state: str  # waiting | starting | charging | finished | refunded | failed
    title: str
    message: str
    final: bool
    amount: str
    energy_kwh: str | None = None
    cost: str | None = None
    refund: str | None = None
    refund_pending: bool = False
    connector_status: str | None = None


PAYMENTS: web.AppKey[PaymentService] = web.AppKey("payments")


class PaymentService:
    """QR payments of one central system: pages, provider callbacks and the session hooks `Central` calls."""

    def __init__(self, csms: Central, config: PayConfig, providers: Mapping[str, PaymentProvider]) -> None:
        """Serve payments for ``csms`` through ``providers`` (by name); ``config`` may be replaced later."""
        self.csms = csms
        self.store = csms.store
        self.flow = PaymentFlow(csms.store, csms.commands, config, providers)
        self._status_key = self.store.secret("pay.status_token")
        self._checkout_urls: dict[int, str] = {}
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(common.TEMPLATE_DIR),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )

    @property
    def config(self) -> PayConfig:
        """The payment settings (shared with the money flow)."""
        return self.flow.config

    @config.setter
    def config(self, config: PayConfig) -> None:
        """Replace the payment settings."""
        self.flow.config = config

    @property
    def providers(self) -> dict[str, PaymentProvider]:
        """The payment providers by name."""
        return self.flow.providers

    # ---- helpers

    def status_token(self, payment_id: int) -> str:
        """The unguessable status-page token of a payment."""
        mac = hmac.new(self._status_key, f"status:{payment_id}".encode(), hashlib.sha256).hexdigest()
        return f"{payment_id}-{mac[:STATUS_TOKEN_HEX]}"

    def payment_for_token(self, token: str) -> Payment | None:
        """The payment a status token names, or None (unknown or forged)."""
        head, _, _mac = token.partition("-")
        if not re.fullmatch(r"[0-9]{1,18}", head) or not common.same_text(
            self.status_token(int(head)), token
        ):
            return None
        try:
            return self.store.payment(int(head))
        except NotFound:
            return None

    def base_url(self, request: web.Request) -> str:
        """Absolute base of the pay pages: the configured public URL, else the request's origin."""
        if self.config.public_base_url:
            return self.config.public_base_url.rstrip("/")
        return str(request.url.origin())

    def pay_url(self, base: str, cp_id: str, connector_id: int) -> str:
        """The absolute pay page URL of a connector."""
        return f"{base}/pay/{quote(cp_id, safe='')}/{connector_id}"

    def _render(self, template: str, status: int = 200, **context: Any) -> web.Response:
        html = self.templates.get_template(template).render(**context)
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")

    def _message(self, status: int, title: str, message: str) -> web.Response:
        return self._render("pay_message.html", status, title=title, message=message)

    def _connector(self, cp_id: str, connector_id: int) -> tuple[str | None, str | None]:
        """(charger-level status, connector status) from the latest StatusNotifications."""
        statuses = {c.connector_id: c for c in self.store.connectors(cp_id)}
        whole = statuses.get(0)
        conn = statuses.get(connector_id)
        return (whole.status if whole else None), (conn.status if conn else None)

    def _known(self, cp_id: str, connector_id: int) -> bool:
        """A charger in the registry with this connector (> 0) reported by StatusNotification."""
        if connector_id < 1 or self.store.charger(cp_id) is None:
            return False
        return any(c.connector_id == connector_id for c in self.store.connectors(cp_id))

    def _unavailable_reason(self, cp_id: str, connector_id: int) -> str | None:
        """Why a paid start cannot begin now, or None."""
        charger = self.store.charger(cp_id)
        if charger is None or str(charger.status) != "accepted":
            return "This charger is not in service."
        if not self.csms.commands.is_connected(cp_id):
            return "This charger is offline right now."
        whole, status = self._connector(cp_id, connector_id)
        if whole in ("Unavailable", "Faulted"):
            return f"This charger is {whole.lower()}."
        if status not in READY_STATUSES:
            return f"This connector is {(status or 'unknown').lower()} right now."
        for waiting in self.flow.starting():
            other = self.store.payment(waiting)
            if (other.cp_id, other.connector_id) == (cp_id, connector_id) and other.transaction_id is None:
                return "Another paid session is starting at this connector."
        return None

    def _parse_connector(self, request: web.Request) -> tuple[str, int] | None:
        text = request.match_info["connector"]
        if not re.fullmatch(
            r"[0-9]{1,5}", text
        ):  # ASCII only: str.isdigit() also takes '²', which int() refuses
            return None
        return request.match_info["cp_id"], int(text)

    # ---- pages

    async def pay_page(self, request: web.Request) -> web.Response:
        """GET /pay/{cp}/{connector}: status, tariff and the amount form."""
        target = self._parse_connector(request)
        if target is None or not self._known(*target):
            return self._message(404, "Unknown charger", "There is no such charger or connector here.")
        if not self.providers:
            return self._not_configured()
        return self._pay_form(request, *target)

    def _not_configured(self) -> web.Response:
        return self._message(
            503,
            "Card payment is not configured",
            "Card payment is not configured at this charger. Nothing was charged; use a charging card.",
        )

    def _pay_form(
        self,
        request: web.Request,
        cp_id: str,
        connector_id: int,
        *,
        error: str | None = None,
        status: int = 200,
    ) -> web.Response:
        currency = self.store.currency()
        whole, conn_status = self._connector(cp_id, connector_id)
        try:
            tariff = self.csms.pricing.tariff_for(cp_id)
        except (ValueError, StoreError):
            log.exception("cannot read the tariff of %s", cp_id)
            tariff = None
        cfg = self.config
        presets = [p for p in cfg.presets_minor if cfg.min_amount_minor <= p <= cfg.max_amount_minor]
        return self._render(
            "pay.html",
            status,
            cp_id=cp_id,
            connector_id=connector_id,
            online=self.csms.commands.is_connected(cp_id),
            charger_status=whole,
            connector_status=conn_status,
            unavailable=self._unavailable_reason(cp_id, connector_id),
            tariff_rows=describe_tariff(tariff) if tariff else [],
            currency=currency,
            presets=[(format_amount_input(p, currency), format_money(p, currency)) for p in presets],
            min_amount=format_money(cfg.min_amount_minor, currency),
            max_amount=format_money(cfg.max_amount_minor, currency),
            min_major=format_amount_input(cfg.min_amount_minor, currency),
            max_major=format_amount_input(cfg.max_amount_minor, currency),
            step="1" if currency_exponent(currency) == 0 else f"0.{'0' * (currency_exponent(currency) - 1)}1",
            error=error,
            form_key=secrets.token_urlsafe(16),
            action=f"/pay/{quote(cp_id, safe='')}/{connector_id}",
        )

    def _validate_amount(self, raw: str) -> int | str:
        """The amount in minor units, or the error message to show."""
        currency = self.store.currency()
        cfg = self.config
        limits = f"between {format_money(cfg.min_amount_minor, currency)} and {format_money(cfg.max_amount_minor, currency)}"
        try:
            amount = parse_amount(raw, currency)
        except ValueError as exc:
            return f"{exc} The amount must be {limits}."
        if not cfg.min_amount_minor <= amount <= cfg.max_amount_minor:
            return f"The amount must be {limits}; {format_money(amount, currency)} is not."
        return amount

    async def pay_submit(self, request: web.Request) -> web.Response:
        """POST /pay/{cp}/{connector}: validate the amount, create the payment, redirect to the checkout."""
        target = self._parse_connector(request)
        if target is None or not self._known(*target):
            return self._message(404, "Unknown charger", "There is no such charger or connector here.")
        if not self.providers:
            return self._not_configured()
        cp_id, connector_id = target
        form = await request.post()
        amount = self._validate_amount(str(form.get("amount", "")))
        if isinstance(amount, str):
            return self._pay_form(request, cp_id, connector_id, error=amount, status=400)
        provider_name = str(form.get("provider", "test"))
        provider = self.providers.get(provider_name)
        if provider is None:
            return self._pay_form(request, cp_id, connector_id, error="Unknown payment method.", status=400)
        reason = self._unavailable_reason(cp_id, connector_id)
        if reason is not None:
            return self._pay_form(
                request, cp_id, connector_id, error=f"{reason} Nothing was charged.", status=409
            )
        form_key = str(form.get("key", ""))
        key = f"payform:{form_key}" if re.fullmatch(r"[A-Za-z0-9_-]{16,64}", form_key) else None
        id_tag = ID_TAG_PREFIX + secrets.token_hex(9).upper()
        try:
            payment = self.store.create_payment(
                cp_id, connector_id, amount, provider.name, id_tag=id_tag, key=key
            )
        except Conflict:
            return self._pay_form(
                request, cp_id, connector_id, error="This form was already used.", status=409
            )
        base = self.base_url(request)
        status_url = f"{base}/pay/status/{self.status_token(payment.id)}"
        if payment.provider_ref is not None:  # the same form submitted twice: no second checkout
            raise web.HTTPSeeOther(self._checkout_urls.get(payment.id, status_url))
        checkout = await provider.create_checkout(
            CheckoutRequest(
                payment_id=payment.id,
                amount_minor=amount,
                currency=self.store.currency(),
                description=f"Charging at {cp_id} connector {connector_id}",
                success_url=status_url,
                callback_url=f"{base}/pay/callback/{provider.name}",
            )
        )
        self.store.set_payment_status(
            payment.id,
            PaymentStatus.CREATED,
            transitions=PAYMENT_TRANSITIONS,
            provider_ref=checkout.provider_ref,
        )
        self._checkout_urls[payment.id] = checkout.redirect_url
        raise web.HTTPSeeOther(checkout.redirect_url)

    async def qr(self, request: web.Request) -> web.Response:
        """GET /qr/{cp}/{connector}.svg: the pay page URL as a QR code."""
        target = self._parse_connector(request)
        if target is None or not self._known(*target):
            return self._message(404, "Unknown charger", "There is no such charger or connector here.")
        url = self.pay_url(self.base_url(request), *target)
        return web.Response(
            body=qr_svg(url), content_type="image/svg+xml", headers={"Cache-Control": "no-cache"}
        )

    async def test_provider_page(self, request: web.Request) -> web.Response:
        """GET /pay/test-provider/{ref}: the simulated provider's approve/decline page."""
        provider = self.providers.get("test")
        ref = request.match_info["ref"]
        if not isinstance(provider, TestProvider) or ref not in provider.checkouts:
            return self._message(404, "Unknown checkout", "This checkout does not exist or has expired.")
        checkout = provider.checkouts[ref]
        return self._render(
            "pay_test_provider.html",
            ref=ref,
            amount=format_money(checkout.amount_minor, checkout.currency),
            description=checkout.description,
        )

    async def test_provider_submit(self, request: web.Request) -> web.Response:
        """POST /pay/test-provider/{ref}: approve or decline, deliver the signed callbacks, back to the status page."""
        provider = self.providers.get("test")
        ref = request.match_info["ref"]
        if not isinstance(provider, TestProvider) or ref not in provider.checkouts:
            return self._message(404, "Unknown checkout", "This checkout does not exist or has expired.")
        form = await request.post()
        approve = form.get("action") == "approve"
        # The simulated provider lives in this process; it delivers to the server's own listening address.
        await provider.complete(ref, approve, f"{self.csms.http_url}/pay/callback/{provider.name}")
        raise web.HTTPSeeOther(provider.checkouts[ref].success_url)

    async def callback(self, request: web.Request) -> web.Response:
        """POST /pay/callback/{provider}: a provider event; authenticity is the provider's check."""
        provider = self.providers.get(request.match_info["provider"])
        if provider is None:
            return common.json_error(404, "unknown payment provider")
        body = await request.read()
        try:
            event = provider.parse_callback(request.headers, body)
        except CallbackRejected as exc:
            log.warning("rejected %s callback: %s", provider.name, exc)
            return common.json_error(exc.status, str(exc))
        try:
            payment, changed = self.flow.apply_event(provider.name, event)
        except CallbackRejected as exc:
            return common.json_error(exc.status, str(exc))
        return web.json_response({"payment": payment.id, "status": str(payment.status), "changed": changed})

    async def status_page(self, request: web.Request) -> web.Response:
        """GET /pay/status/{token}: where a payment stands; refreshes itself until final."""
        token = request.match_info["token"]
        payment = self.payment_for_token(token)
        if payment is None:
            return self._message(404, "Unknown payment", "There is no payment with this link.")
        return self._status(payment, token)

    def _status(
        self, payment: Payment, token: str, *, error: str | None = None, status: int = 200
    ) -> web.Response:
        view = self.view(payment)
        return self._render(
            "pay_status.html",
            status,
            view=view,
            payment=payment,
            # No self-refresh while an error is shown, so the driver can read it.
            refresh_s=None if view.final or error else self.config.status_refresh_s,
            pay_again=f"/pay/{quote(payment.cp_id, safe='')}/{payment.connector_id}",
            stop_action=f"/pay/status/{token}/stop",
            stop_csrf=self.stop_csrf(payment.id),
            error=error,
        )

    def stop_csrf(self, payment_id: int) -> str:
        """The form field that must accompany a stop request for this payment (HMAC, not the status token)."""
        return hmac.new(self._status_key, f"stop:{payment_id}".encode(), hashlib.sha256).hexdigest()[:32]

    def _same_origin(self, request: web.Request) -> bool:
        """False when the browser says the POST comes from another site (Origin, else Sec-Fetch-Site)."""
        origin = request.headers.get("Origin")
        if origin is not None and origin != "null":
            allowed = {str(request.url.origin()), self.base_url(request)}
            return origin.rstrip("/") in allowed
        return request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")

    async def stop_submit(self, request: web.Request) -> web.Response:
        """POST /pay/status/{token}/stop: stop this payment's own running session, nothing else."""
        token = request.match_info["token"]
        payment = self.payment_for_token(token)
        if payment is None:
            return self._message(404, "Unknown payment", "There is no payment with this link.")
        form = await request.post()
        if not self._same_origin(request) or not common.same_text(
            str(form.get("csrf", "")), self.stop_csrf(payment.id)
        ):
            return self._status(payment, token, error="This stop request was refused.", status=403)
        # The transaction is the one bound to this payment at StartTransaction, at the payment's own charger:
        # the token can stop nothing else.
        tx = self.store.transaction(payment.transaction_id) if payment.transaction_id is not None else None
        if tx is None or not tx.active or tx.cp_id != payment.cp_id:
            return self._status(payment, token, error="There is no running session to stop.", status=409)
        try:
            reply = await self.csms.commands.remote_stop(payment.cp_id, tx.id)
        except CommandFailed as exc:
            log.warning("driver stop of transaction %d at %s failed: %s", tx.id, payment.cp_id, exc)
            return self._status(
                payment, token, error="The charger did not answer. Unplug to stop charging.", status=502
            )
        if not reply.accepted:
            return self._status(
                payment, token, error="The charger refused to stop. Unplug to stop charging.", status=409
            )
        raise web.HTTPSeeOther(f"/pay/status/{token}")

    def view(self, payment: Payment) -> StatusView:
        """The status page's content for a payment."""
        currency = self.store.currency()

        def money(minor: int) -> str:
            return format_money(minor, currency)

        amount = money(payment.amount_minor)
        if payment.status in (PaymentStatus.CREATED, PaymentStatus.AUTHORIZED):
            return StatusView(
                "waiting", "Waiting for payment", "Waiting for the payment to be confirmed…", False, amount
            )
        if payment.status is PaymentStatus.FAILED:
            return StatusView(
                "failed",
                "Payment failed",
                "The payment was declined or cancelled. Nothing was charged.",
                True,
                amount,
            )
        refund = self.store.entry(refund_key(payment.id))
        refund_text = money(-refund.amount_minor) if refund else None
        pending = refund is not None and payment.status is not PaymentStatus.REFUNDED
        tx = self.store.transaction(payment.transaction_id) if payment.transaction_id is not None else None
        _, conn_status = self._connector(payment.cp_id, payment.connector_id)
        if tx is None:
            if refund is not None:
                return StatusView(
                    "refunded",
                    "Refunded",
                    f"Charging did not start: {refund.note}. Your payment of {amount} is refunded"
                    + (" (being processed)." if pending else "."),
                    not pending,
                    amount,
                    refund=refund_text,
                    refund_pending=pending,
                    connector_status=conn_status,
                )
            if self.flow.refunding(payment.id) or self._settled_without_refund(payment):
                return StatusView("refunded", "Refunded", "Charging did not start.", True, amount)
            return StatusView(
                "starting",
                "Starting",
                f"Payment of {amount} received. Plug in your vehicle at connector {payment.connector_id}; "
                "charging starts by itself.",
                False,
                amount,
                connector_status=conn_status,
            )
        energy = f"{tx.energy_wh / 1000:.3f}"
        if tx.active:
            try:
                running = min(self.csms.pricing.running_cost(tx), payment.amount_minor)
            except (ValueError, StoreError):
                running = 0
            return StatusView(
                "charging",
                "Charging",
                f"Charging stops by itself when {amount} is used up, or when you unplug.",
                False,
                amount,
                energy_kwh=energy,
                cost=money(running),
                connector_status=conn_status,
            )
        cost = tx.cost_minor or 0
        message = f"Charging finished. You paid {money(cost)} of {amount}"
        message += f"; {refund_text} is refunded" if refund_text else ""
        message += " (being processed)." if pending else "."
        return StatusView(
            "finished",
            "Finished",
            message,
            not pending,
            amount,
            energy_kwh=energy,
            cost=money(cost),
            refund=refund_text or money(0),
            refund_pending=pending,
            connector_status=conn_status,
        )

    def _settled_without_refund(self, payment: Payment) -> bool:
        card = self.store.card(payment.id_tag) if payment.id_tag else None
        return card is not None and card.status is CardStatus.BLOCKED


def service(app: web.Application) -> PaymentService:
    """The payment service of a central system's web application."""
    return app[PAYMENTS]


def providers_for(csms: Central, name: str) -> dict[str, PaymentProvider]:
    """The payment providers of ``serve --payment-provider NAME`` (one of `PROVIDER_CHOICES`), by name."""
    if name == "none":
        return {}
    if name == "test":
        test = TestProvider(csms.store.secret("pay.test_provider"), clock=lambda: csms.clock().timestamp())
        log.warning(
            "QR payments use the built-in 'test' provider (simulated money): anyone can pay with it and charge "
            "for free. Fine for development and demos; a public site needs a real PaymentProvider."
        )
        return {test.name: test}
    raise ValueError(f"payment provider must be one of {', '.join(PROVIDER_CHOICES)}, got {name!r}")


def setup(app: web.Application, provider: str = "none") -> None:
    """Register the pay pages, QR codes and provider callbacks, and hook payments into the OCPP handlers."""
    csms = app[common.CSMS]
    svc = PaymentService(csms, PayConfig.from_env(), providers_for(csms, provider))
    app[PAYMENTS] = svc
    csms.payment_hooks = svc.flow
    router = app.router
    # Fixed paths before /pay/{cp}/{connector}.
    router.add_get("/pay/status/{token}", svc.status_page)
    router.add_post("/pay/status/{token}/stop", svc.stop_submit)
    if "test" in svc.providers:  # the simulated checkout exists only when the test provider was chosen
        router.add_get("/pay/test-provider/{ref}", svc.test_provider_page)
        router.add_post("/pay/test-provider/{ref}", svc.test_provider_submit)
    router.add_post("/pay/callback/{provider}", svc.callback)
    router.add_get("/pay/{cp_id}/{connector}", svc.pay_page)
    router.add_post("/pay/{cp_id}/{connector}", svc.pay_submit)
    router.add_get(r"/qr/{cp_id}/{connector:[0-9]+}.svg", svc.qr)

    async def on_startup(_: web.Application) -> None:
        await svc.flow.reconcile()

    async def on_shutdown(_: web.Application) -> None:
        await svc.flow.close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    # Again after the chargers' connections are closed: a StopTransaction handled while they were closing may
    # have spawned a refund after on_shutdown ran (its ledger entry is kept; reconcile() retries it).
    app.on_cleanup.append(on_shutdown)
