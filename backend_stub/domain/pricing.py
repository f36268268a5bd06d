"""Pricing of sessions: the charger's OCPI tariff applied to the stored meter values (CDRs, running costs)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any, Final

from backend_stub.domain import tariffs
from backend_stub.domain.payments import Hooks
from backend_stub.store import MAX_AMOUNT_MINOR, AuthStatus, CsmsStore, Transaction

ENERGY = "Energy.Active.Import.Register"  # the measurand billed (same name in OCPP 1.6 and 2.0.1)
SHORTEST_SESSION = timedelta(seconds=1)  # what a session stopped at or before its start is priced as
MAX_TARIFF_PRICE: Final = 1_000_000  # major units per kWh / hour / session: a sanity cap, not a business rule


class InvalidTariff(ValueError):
    """A tariff document the central system will not store; ``field`` names the offending top-level key."""

    def __init__(self, message: str, field: str | None = None) -> None:
        """Keep the message and the field."""
        super().__init__(message)
        self.field = field


def check_tariff(body: dict[str, Any], currency: str) -> tuple[str, tariffs.Tariff]:
    """(id, parsed tariff) of an OCPI 2.2.1 tariff object in the installation's ``currency``; raises InvalidTariff.

    The one validation every way in (REST API, dashboard form) applies before a tariff is stored.
    """
    tariff_id = body.get("id")
    if not isinstance(tariff_id, str) or not 1 <= len(tariff_id) <= 36:
        raise InvalidTariff("id must be a string of 1-36 characters (OCPI CiString(36))", "id")
    try:
        tariff = tariffs.Tariff.from_ocpi(body)
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise InvalidTariff(f"not a valid OCPI 2.2.1 tariff: {exc}") from None
    if tariff.currency != currency:
        raise InvalidTariff(
            f"currency must be the installation's currency {currency}, got {tariff.currency}", "currency"
        )
    for i, element in enumerate(tariff.elements):
        for j, component in enumerate(element.price_components):
            if component.price > MAX_TARIFF_PRICE:
                raise InvalidTariff(
                    f"elements[{i}].price_components[{j}].price must be at most {MAX_TARIFF_PRICE}",
                    "elements",
                )
    for name, price in (("min_price", tariff.min_price), ("max_price", tariff.max_price)):
        if price is not None and max(price.excl_vat, price.incl_vat or 0) > MAX_AMOUNT_MINOR:
            raise InvalidTariff(f"{name} is out of range", name)
    return tariff_id, tariff


class Pricing:
    """Prices sessions with their charger's tariff (or the default one)."""

    def __init__(
        self, store: CsmsStore, clock: Callable[[], datetime], site_tz: tzinfo, hooks: Hooks
    ) -> None:
        """Price from ``store``; day boundaries and tariff restrictions in ``site_tz``."""
        self.store = store
        self.clock = clock
        self.site_tz = site_tz
        self.hooks = hooks

    def put_tariff(self, tariff_id: str, ocpi_json: str) -> None:
        """Store a tariff (validated by `check_tariff`) and tell the observers (OCPI pushes it to partners)."""
        self.store.put_tariff(tariff_id, ocpi_json)
        self.hooks.observers.tariffs_changed(tariff_id)

    def tariff_for(self, cp_id: str) -> tariffs.Tariff | None:
        """The charger's tariff (or the default), parsed; None when there is none."""
        tariff_id = self.store.tariff_for(cp_id)
        text = self.store.tariff_json(tariff_id) if tariff_id else None
        return tariffs.Tariff.from_ocpi(json.loads(text)) if text else None

    def cdr(self, tx: Transaction, until: datetime, energy_wh: int) -> tariffs.Cdr | None:
        """The CDR of ``tx`` up to ``until`` with ``energy_wh`` on its meter then; None without a tariff."""
        return self.cdr_to(tx, until, energy_wh)[0]

    def cdr_to(
        self, tx: Transaction, until: datetime, energy_wh: int
    ) -> tuple[tariffs.Cdr | None, tuple[datetime, int]]:
        """The CDR of ``tx`` up to ``until``, and its last stored sample (time, Wh) before that point."""
        points = [(tx.started_at, tx.meter_start_wh)]
        tariff = self.tariff_for(tx.cp_id)
        if tariff is None or until <= tx.started_at:
            return None, points[0]
        for s in self.store.meter_values(tx.id):
            if (
                s.measurand == ENERGY
                and not s.phase
                and s.location in (None, "Outlet")  # the charger's own meter (OCPP 1.6 §7.45), not the EV's
                and s.unit in ("Wh", "kWh")
                and tx.started_at < s.timestamp < until
            ):
                wh = s.value * 1000 if s.unit == "kWh" else s.value
                points.append((s.timestamp, max(points[-1][1], round(wh))))
        last_sample = points[-1]
        points.append((until, max(points[-1][1], energy_wh)))
        samples = [tariffs.MeterSample(at, Decimal(wh)) for at, wh in points]
        cdr = tariffs.calculate_cdr(tariff, tariffs.periods_from_samples(samples), self.site_tz)
        return cdr, last_sample

    def price(self, tx: Transaction) -> tuple[int, str]:
        """Cost (minor units, incl. VAT) and CDR of a stopped transaction; free without a tariff."""
        assert tx.stopped_at is not None and tx.meter_stop_wh is not None
        # A stop stamped at or before the start would price no time and no energy (an empty CDR): a charger could
        # make its own sessions free that way. Such a session is priced as lasting one second, energy in full.
        stopped_at = max(tx.stopped_at, tx.started_at + SHORTEST_SESSION)
        cdr = self.cdr(tx, stopped_at, tx.meter_stop_wh)
        if cdr is None:
            return 0, json.dumps({"tariff": None, "total_energy_wh": tx.meter_stop_wh - tx.meter_start_wh})
        if tx.energy_wh == 0 and tx.id_tag_status not in (None, str(AuthStatus.ACCEPTED)):
            # A session whose idTag was refused and that delivered nothing is no service: its flat session fee
            # (and any time or parking cost while the charger waited) is not charged.
            free = json.loads(cdr.to_json())
            free["charged_minor"] = 0
            free["not_charged"] = f"idTag {tx.id_tag_status}, no energy delivered"
            return 0, json.dumps(free)
        cap = self.hooks.payment.cost_cap(tx) if self.hooks.payment is not None else None
        if cap is not None and cdr.total_cost_incl_vat > cap:
            # A paid session is never charged more than was paid (the stop lags the running-cost check).
            capped = json.loads(cdr.to_json())
            capped["charged_minor"] = cap
            capped["capped_by_payment"] = True
            return cap, json.dumps(capped)
        return cdr.total_cost_incl_vat, cdr.to_json()

    def running_cost(self, tx: Transaction) -> int:
        """Cost so far (minor units incl. VAT) of a running transaction at its last meter value."""
        cdr = self.cdr(tx, self.clock(), tx.last_meter_wh)
        return cdr.total_cost_incl_vat if cdr else 0
