"""The bundled central system: the OCPP-J server wired to the SQLite store and the OCPI tariff engine.

Chargers are admitted from the registry at the handshake (404 unknown, 401 wrong password), BootNotification
answers from the registry, cards authorize from the store (prepaid balance included), sessions are priced with
the charger's tariff and charged to the ledger exactly once, and a prepaid session whose running cost reaches the
card's balance is stopped remotely.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from backend_stub import tariffs, webapp
from backend_stub.ocpp_server import (
    Admission,
    CallErrorReply,
    CentralSystem,
    HandlerResult,
    SecurityProfile,
    utc_now_iso,
)
from backend_stub.store import (
    AuthStatus,
    CardMode,
    ChargerStatus,
    CsmsStore,
    MeterSample,
    StoreError,
    Transaction,
    UnknownTransaction,
)

log = logging.getLogger(__name__)

ENERGY = "Energy.Active.Import.Register"


def parse_time(text: str) -> datetime:
    """An OCPP timestamp as an aware UTC datetime."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def samples_from_meter_values(meter_values: list[dict[str, Any]]) -> list[MeterSample]:
    """OCPP 1.6 MeterValue objects as store samples (energy in Wh whatever unit the charger used)."""
    out: list[MeterSample] = []
    for mv in meter_values:
        at = parse_time(mv["timestamp"])
        for sv in mv.get("sampledValue", []):
            try:
                value = float(sv["value"])
            except ValueError:
                continue  # signed/encoded values (format SignedData) are kept out of billing
            out.append(
                MeterSample(
                    at,
                    value,
                    sv.get("measurand", ENERGY),
                    sv.get("unit", "Wh"),
                    sv.get("phase"),
                    sv.get("context"),
                )
            )
    return out


class PaymentHooks(Protocol):
    """Decisions the QR payment module (payments.py) makes for the idTags bound to payments."""

    def authorize(self, cp_id: str, id_tag: str) -> AuthStatus | None:
        """Authorize from ``cp_id``: the answer for a payment idTag, None for any other idTag."""

    def started(self, cp_id: str, connector_id: int, id_tag: str, transaction_id: int) -> AuthStatus | None:
        """StartTransaction recorded: the answer for a payment idTag (binds it once), None otherwise."""

    def cost_cap(self, tx: Transaction) -> int | None:
        """Most a stopped transaction may be charged (its payment's amount), None without a payment."""

    def stopped(self, tx: Transaction) -> None:
        """StopTransaction recorded (also for a repeat): settle the payment, refund its remainder once."""


class Csms:
    """The central system application: OCPP handlers over a CsmsStore."""

    def __init__(
        self,
        store: CsmsStore,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        admit_unknown: bool = False,
        heartbeat_interval_s: int = 300,
        site_tz: tzinfo = UTC,
        log_path: str | Path | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        admin_token: str | None = None,
        boot_timeout_s: float | None = 60.0,
        max_pending: int = 1000,
        pending_ttl_s: float = 86400.0,
    ) -> None:
        """Wire the OCPP handlers and the HTTP routes to ``store``; nothing listens until `start()`.

        ``admin_token`` sets the REST API token; without it, ``CSMS_ADMIN_TOKEN`` or the stored one is used,
        or one is generated and kept in `new_admin_token` for the caller to print once. With ``admit_unknown``,
        at most ``max_pending`` unknown chargers wait as pending; one that has not booted for ``pending_ttl_s``
        is deleted, and a new unknown charger is refused (404) while the table is full.
        """
        self.store = store
        self.admit_unknown = admit_unknown
        self.max_pending = max_pending
        self.pending_ttl_s = pending_ttl_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.site_tz = site_tz
        self.clock = clock
        self.server = CentralSystem(host, port, log_path=log_path, boot_timeout_s=boot_timeout_s)
        self.server.admission = self._admission
        self.server.booted_before = self._booted_before
        self.server.call_observers.append(self._on_call_answered)
        self._verified: dict[str, bytes] = {}  # cp_id -> sha256(password) of the last verified password
        self.server.handlers.update(
            {
                "BootNotification": self._boot,
                "Heartbeat": self._heartbeat,
                "StatusNotification": self._status,
                "Authorize": self._authorize,
                "StartTransaction": self._start,
                "MeterValues": self._meter_values,
                "StopTransaction": self._stop,
                "DiagnosticsStatusNotification": self._diagnostics_status,
                "FirmwareStatusNotification": self._firmware_status,
            }
        )
        self._stopping: set[int] = set()  # transactions a RemoteStop was sent for
        # Prepaid sessions: (time, Wh) of the last stored sample at their last exact pricing, and that price.
        self._priced: dict[int, tuple[tuple[datetime, int], int]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.payment_hooks: PaymentHooks | None = None  # set by payments.setup()
        if admin_token is not None:
            token_sha256, self.new_admin_token = webapp.resolve_admin_token(
                store, {webapp.TOKEN_ENV: admin_token}
            )
        else:
            token_sha256, self.new_admin_token = webapp.resolve_admin_token(store)
        webapp.setup(self, token_sha256)

    async def start(self) -> None:
        """Listen (127.0.0.1 by default)."""
        await self.server.start()

    async def stop(self) -> None:
        """Close every connection and the listener."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.server.stop()

    @property
    def url(self) -> str:
        """The OCPP base URL; chargers connect to ``{url}/{id}``."""
        return self.server.url

    @property
    def http_url(self) -> str:
        """The base URL of the dashboard; the REST API is under ``{http_url}/api/``."""
        return self.server.http_url

    # admission and registration
    async def _admission(self, cp_id: str, password: str | None, profile: SecurityProfile) -> Admission:
        charger = self.store.charger(cp_id)
        if charger is None:
            if not self.admit_unknown:
                log.warning("refused unknown charger %s", cp_id)
                return "unknown"
            expire_before = self.clock() - timedelta(seconds=self.pending_ttl_s)
            admitted = self.store.admit_unknown(
                cp_id, max_pending=self.max_pending, expire_before=expire_before
            )
            if admitted is None:
                log.warning(
                    "refused unknown charger %s: %d chargers are pending already", cp_id, self.max_pending
                )
                return "unknown"
            log.info("admitted unknown charger %s as pending", cp_id)
            return "ok"
        # Profile 3: the server checked a client certificate issued to cp_id; no Basic auth is used then
        # (OCPP 1.6 security whitepaper, security profile 3).
        if charger.has_password and profile < 3:
            if password is None:
                log.warning("refused charger %s: no password", cp_id)
                return "unauthorized"
            # scrypt costs ~30 ms of CPU: it runs in a worker thread (hashlib releases the GIL), so a boot
            # storm of first connections does not stall every other charger's messages. A reconnecting charger
            # repeats the password it proved before, which is checked against a fast digest.
            digest = hashlib.sha256(password.encode(errors="surrogateescape")).digest()
            known = self._verified.get(cp_id)
            if known is None or not hmac.compare_digest(known, digest):
                if not await asyncio.to_thread(self.store.verify_password, cp_id, password):
                    log.warning("refused charger %s: wrong password", cp_id)
                    return "unauthorized"
                self._verified[cp_id] = digest
        elif profile < 3:
            profile = 0  # a Basic header for a charger without a password proves nothing
        # OCPP 1.6 security whitepaper (security profiles): falling back to a lower profile is not allowed; a
        # charger that connects with less than it has used before is refused (a stolen password cannot stand in
        # for its certificate).
        if profile < charger.security_profile:
            log.warning(
                "refused charger %s: security profile %d, it has used %d",
                cp_id,
                profile,
                charger.security_profile,
            )
            return "unauthorized"
        if profile > charger.security_profile:
            self.store.raise_security_profile(cp_id, profile)
            log.info("charger %s now uses security profile %d", cp_id, profile)
        return "ok"

    def _booted_before(self, cp_id: str) -> bool:
        """An accepted charger with a recorded boot need not boot again on a new connection (OCPP 1.6 §4.2)."""
        charger = self.store.charger(cp_id)
        return (
            charger is not None and charger.status is ChargerStatus.ACCEPTED and charger.last_boot is not None
        )

    def set_password(self, cp_id: str, password: str | None) -> None:
        """Change a charger's password (always through here: it also drops the cached proof of the old one).

        Clearing it also lowers a recorded profile 1 or 2 to 0: the operator chose a charger without credentials,
        which would otherwise be refused as a downgrade.
        """
        self.store.set_password(cp_id, password)
        self._verified.pop(cp_id, None)
        charger = self.store.charger(cp_id)
        if password is None and charger is not None and charger.security_profile in (1, 2):
            self.store.set_security_profile(cp_id, 0)

    def _on_call_answered(
        self, cp_id: str, action: str, payload: dict[str, Any], answer: dict[str, Any]
    ) -> None:
        """After a charger accepted a new AuthorizationKey, its password is that key.

        OCPP 1.6 security whitepaper (profiles 1 and 2): the AuthorizationKey configuration key is the HTTP Basic
        password, used as the text the key was set to. RebootRequired is not taken: the charger keeps the old key
        until it reboots.
        """
        if (
            action == "ChangeConfiguration"
            and str(payload.get("key", "")).lower() == "authorizationkey"  # OCPP 1.6 keys are CiString50
            and answer.get("status") == "Accepted"
            and isinstance(payload.get("value"), str)
            and payload["value"]
        ):
            self.set_password(cp_id, payload["value"])
            log.info("charger %s accepted a new AuthorizationKey; it is now its password", cp_id)

    def _boot(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        charger = self.store.record_boot(
            cp_id,
            vendor=payload["chargePointVendor"],
            model=payload["chargePointModel"],
            firmware=payload.get("firmwareVersion"),
            serial_number=payload.get("chargePointSerialNumber"),
            timestamp=self.clock(),
        )
        status = {"accepted": "Accepted", "pending": "Pending", "rejected": "Rejected"}[str(charger.status)]
        return {"status": status, "currentTime": utc_now_iso(), "interval": self.heartbeat_interval_s}

    def _heartbeat(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        self.store.record_heartbeat(cp_id, self.clock())
        return {"currentTime": utc_now_iso()}

    def _status(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        at = parse_time(payload["timestamp"]) if payload.get("timestamp") else self.clock()
        self.store.record_status(
            cp_id,
            payload["connectorId"],
            payload["status"],
            at,
            error_code=payload["errorCode"],
            info=payload.get("info"),
        )
        return {}

    def _diagnostics_status(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        self.store.set_diagnostics_status(cp_id, payload["status"])
        return {}

    def _firmware_status(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        self.store.set_firmware_status(cp_id, payload["status"])
        return {}

    # cards and sessions
    def _id_tag_info(self, id_tag: str) -> dict[str, Any]:
        decision = self.store.authorize(id_tag, self.clock(), self.store.min_balance_minor())
        if decision.status is not AuthStatus.ACCEPTED:
            log.info("idTag %s: %s (%s)", id_tag, decision.status, decision.reason)
        return {"status": str(decision.status)}

    def _authorize(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        if self.payment_hooks is not None:
            status = self.payment_hooks.authorize(cp_id, payload["idTag"])
            if status is not None:
                return {"idTagInfo": {"status": str(status)}}
        return {"idTagInfo": self._id_tag_info(payload["idTag"])}

    def _start(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        info = self._id_tag_info(payload["idTag"])
        # Idempotent: a charger that resends the same StartTransaction after a crash gets the same id.
        tx_id = self.store.start_transaction(
            cp_id,
            payload["connectorId"],
            payload["idTag"],
            payload["meterStart"],
            parse_time(payload["timestamp"]),
        )
        if self.payment_hooks is not None:
            status = self.payment_hooks.started(cp_id, payload["connectorId"], payload["idTag"], tx_id)
            if status is not None:
                info = {"status": str(status)}
        return {"transactionId": tx_id, "idTagInfo": info}

    def _meter_values(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        tx_id = payload.get("transactionId")
        if tx_id is None:
            return {}
        try:
            self.store.add_meter_values(tx_id, samples_from_meter_values(payload["meterValue"]))
        except UnknownTransaction:
            log.warning("%s sent MeterValues for unknown transaction %s", cp_id, tx_id)
            return {}
        self._check_prepaid(cp_id, tx_id)
        return {}

    def _stop(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        tx_id = payload["transactionId"]
        try:
            result = self.store.stop_transaction(
                tx_id,
                payload["meterStop"],
                parse_time(payload["timestamp"]),
                payload.get("reason", "Local"),
                self._price,
                samples=samples_from_meter_values(payload.get("transactionData", [])),
            )
        except UnknownTransaction:
            raise CallErrorReply("PropertyConstraintViolation", f"unknown transactionId {tx_id}") from None
        if result.already_stopped:
            log.info("repeated StopTransaction for %s acknowledged; not charged again", tx_id)
        self._stopping.discard(tx_id)
        self._priced.pop(tx_id, None)
        if self.payment_hooks is not None:
            self.payment_hooks.stopped(result.transaction)
        return {"idTagInfo": self._id_tag_info(payload["idTag"])} if payload.get("idTag") else {}

    # pricing
    def tariff_for(self, cp_id: str) -> tariffs.Tariff | None:
        """The charger's tariff (or the default), parsed; None when there is none."""
        tariff_id = self.store.tariff_for(cp_id)
        text = self.store.tariff_json(tariff_id) if tariff_id else None
        return tariffs.Tariff.from_ocpi(json.loads(text)) if text else None

    def _cdr(self, tx: Transaction, until: datetime, energy_wh: int) -> tariffs.Cdr | None:
        return self._cdr_to(tx, until, energy_wh)[0]

    def _cdr_to(
        self, tx: Transaction, until: datetime, energy_wh: int
    ) -> tuple[tariffs.Cdr | None, tuple[datetime, int]]:
        """The CDR of ``tx`` up to ``until``, and its last stored sample (time, Wh) before that point."""
        points = [(tx.started_at, tx.meter_start_wh)]
        tariff = self.tariff_for(tx.cp_id)
        if tariff is None or until <= tx.started_at:
            return None, points[0]
        for s in self.store.meter_values(tx.id):
            if s.measurand == ENERGY and not s.phase and tx.started_at < s.timestamp < until:
                wh = s.value * 1000 if s.unit == "kWh" else s.value
                points.append((s.timestamp, max(points[-1][1], round(wh))))
        last_sample = points[-1]
        points.append((until, max(points[-1][1], energy_wh)))
        samples = [tariffs.MeterSample(at, Decimal(wh)) for at, wh in points]
        cdr = tariffs.calculate_cdr(tariff, tariffs.periods_from_samples(samples), self.site_tz)
        return cdr, last_sample

    def _price(self, tx: Transaction) -> tuple[int, str]:
        """Cost (minor units, incl. VAT) and CDR of a stopped transaction; free without a tariff."""
        assert tx.stopped_at is not None and tx.meter_stop_wh is not None
        cdr = self._cdr(tx, tx.stopped_at, tx.meter_stop_wh)
        if cdr is None:
            return 0, json.dumps({"tariff": None, "total_energy_wh": tx.meter_stop_wh - tx.meter_start_wh})
        cap = self.payment_hooks.cost_cap(tx) if self.payment_hooks is not None else None
        if cap is not None and cdr.total_cost_incl_vat > cap:
            # A paid session is never charged more than was paid (the stop lags the running-cost check).
            capped = json.loads(cdr.to_json())
            capped["charged_minor"] = cap
            capped["capped_by_payment"] = True
            return cap, json.dumps(capped)
        return cdr.total_cost_incl_vat, cdr.to_json()

    def running_cost(self, tx: Transaction) -> int:
        """Cost so far (minor units incl. VAT) of a running transaction at its last meter value."""
        cdr = self._cdr(tx, self.clock(), tx.last_meter_wh)
        return cdr.total_cost_incl_vat if cdr else 0

    def _check_prepaid(self, cp_id: str, tx_id: int) -> None:
        """Stop a prepaid session remotely once its running cost reaches the card's balance."""
        if tx_id in self._stopping:
            return
        tx = self.store.transaction(tx_id)
        card = self.store.card(tx.id_tag)
        if card is None or card.mode is not CardMode.PREPAID or tx.stopped_at is not None:
            self._priced.pop(tx_id, None)
            return
        now, balance = self.clock(), self.store.balance(tx.id_tag)
        # Pricing a session exactly costs time in proportion to its samples; doing it at every MeterValues of a
        # long session would be quadratic. While even the most the session can have cost since its last exact
        # price stays below the balance, the exact price is skipped.
        tariff, last = self.tariff_for(tx.cp_id), self._priced.get(tx_id)
        if tariff is not None and last is not None:
            (at, wh), cost = last
            growth = tariff.cost_growth_bound_minor(
                max(0, tx.last_meter_wh - wh), max(0.0, (now - at).total_seconds())
            )
            if cost + growth < balance:
                return
        try:
            cdr, stable = self._cdr_to(tx, now, tx.last_meter_wh)
        except (ValueError, StoreError):
            log.exception("cannot price running transaction %s", tx_id)
            return
        running = cdr.total_cost_incl_vat if cdr else 0
        self._priced[tx_id] = (stable, running)
        if running < balance:
            return
        log.info(
            "transaction %s: running cost %s reached the balance %s of %s; stopping it",
            tx_id,
            running,
            balance,
            tx.id_tag,
        )
        self._stopping.add(tx_id)
        task = asyncio.get_running_loop().create_task(self._remote_stop(cp_id, tx_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _remote_stop(self, cp_id: str, tx_id: int) -> None:
        try:
            answer = await self.server.call(cp_id, "RemoteStopTransaction", {"transactionId": tx_id})
        except (CallErrorReply, TimeoutError, KeyError, ConnectionError) as exc:
            log.warning("RemoteStopTransaction %s to %s failed: %s", tx_id, cp_id, exc)
            self._stopping.discard(tx_id)  # try again with the next MeterValues
            return
        if answer.get("status") != "Accepted":
            log.warning("%s rejected RemoteStopTransaction %s", cp_id, tx_id)
            self._stopping.discard(tx_id)
