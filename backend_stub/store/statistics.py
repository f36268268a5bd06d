"""Daily statistics, session summaries and CSV exports."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from backend_stub.store.payments import PaymentsStore
from backend_stub.store.records import (
    CHARGING,
    POWER_ACTIVE_IMPORT,
    DailyStats,
    InvalidInput,
    SessionSummary,
    UnknownCharger,
    UnknownUser,
    UserConsumption,
    _csv,
    _dt,
    _transaction,
    _ts,
)


class StatisticsStore(PaymentsStore):
    """Daily statistics, session summaries and CSV exports."""

    # -- statistics

    def operating_totals(self) -> tuple[int, int, int]:
        """(active sessions, energy in Wh of finished sessions, revenue in minor units of finished sessions)."""
        row = self._read(
            "SELECT COUNT(*) - COUNT(stopped_at) AS active,"
            " COALESCE(SUM(CASE WHEN stopped_at IS NOT NULL THEN MAX(meter_stop_wh - meter_start_wh, 0) END), 0)"
            " AS energy_wh,"
            " COALESCE(SUM(CASE WHEN stopped_at IS NOT NULL THEN cost_minor END), 0) AS revenue_minor"
            " FROM transactions"
        )[0]
        return int(row["active"]), int(row["energy_wh"]), int(row["revenue_minor"])

    def daily_stats(self, cp_id: str, from_date: date, to_date: date, tz: tzinfo) -> list[DailyStats]:
        """Per local day (inclusive range): Charging connector-time, and energy, sessions, fees of sessions
        that ended that day."""
        if to_date < from_date:
            raise InvalidInput(f"to_date {to_date} is before from_date {from_date}")
        if self.charger(cp_id) is None:
            raise UnknownCharger(f"unknown charger {cp_id!r}")
        days = [from_date + timedelta(days=n) for n in range((to_date - from_date).days + 1)]
        bounds = [
            datetime.combine(d, time(), tzinfo=tz).astimezone(UTC) for d in [*days, to_date + timedelta(1)]
        ]
        start, end = bounds[0], bounds[-1]
        charging = [0.0] * len(days)
        for a, b in self._charging_intervals(cp_id, start, min(end, self._clock().astimezone(UTC))):
            for i in range(len(days)):
                overlap = (min(b, bounds[i + 1]) - max(a, bounds[i])).total_seconds()
                if overlap > 0:
                    charging[i] += overlap
        energy = [0] * len(days)
        sessions = [0] * len(days)
        fees = [0] * len(days)
        index = {d: i for i, d in enumerate(days)}
        rows = self._read(
            "SELECT t.stopped_at, t.meter_start_wh, t.meter_stop_wh, "
            "(SELECT COALESCE(SUM(amount_minor), 0) FROM ledger l "
            " WHERE l.transaction_id = t.id AND l.kind IN ('charge', 'refund')) AS net "
            "FROM transactions t WHERE t.cp_id = ? AND t.stopped_at >= ? AND t.stopped_at < ?",
            (cp_id, _ts(start), _ts(end)),
        )
        for r in rows:
            i = index[_dt(r["stopped_at"]).astimezone(tz).date()]
            energy[i] += max(0, r["meter_stop_wh"] - r["meter_start_wh"])
            sessions[i] += 1
            fees[i] += -r["net"]
        return [DailyStats(d, charging[i], energy[i], sessions[i], fees[i]) for i, d in enumerate(days)]

    def _charging_intervals(
        self, cp_id: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime]]:
        """[a, b) spans within [start, end) during which a connector (> 0) was last reported Charging."""
        if end <= start:
            return []
        # SQLite returns the other columns of the row holding MAX() when it is the only aggregate.
        before = self._read(
            "SELECT connector_id, status, MAX(timestamp) AS timestamp FROM status_history "
            "WHERE cp_id = ? AND connector_id > 0 AND timestamp < ? GROUP BY connector_id",
            (cp_id, _ts(start)),
        )
        inside = self._read(
            "SELECT connector_id, status, timestamp FROM status_history "
            "WHERE cp_id = ? AND connector_id > 0 AND timestamp >= ? AND timestamp < ? "
            "ORDER BY connector_id, timestamp, id",
            (cp_id, _ts(start), _ts(end)),
        )
        timeline: dict[int, list[tuple[datetime, str]]] = {}
        for r in before:
            timeline.setdefault(r["connector_id"], []).append((start, r["status"]))
        for r in inside:
            timeline.setdefault(r["connector_id"], []).append((_dt(r["timestamp"]), r["status"]))
        spans = []
        for events in timeline.values():
            for (at, status), (nxt, _) in zip(events, [*events[1:], (end, "")], strict=True):
                if status == CHARGING and nxt > at:
                    spans.append((at, nxt))
        return spans

    def daily_stats_csv(self, cp_id: str, from_date: date, to_date: date, tz: tzinfo) -> str:
        """daily_stats as CSV text with a header row."""
        currency = self.currency()
        rows = [
            [
                s.day.isoformat(),
                f"{s.working_hours:.3f}",
                f"{s.energy_kwh:.3f}",
                s.sessions,
                s.fees_minor,
                currency,
            ]
            for s in self.daily_stats(cp_id, from_date, to_date, tz)
        ]
        return _csv(["date", "working_hours", "energy_kwh", "sessions", "fees_minor", "currency"], rows)

    def user_consumption(self, user_id: int) -> UserConsumption:
        """Finished sessions of all of a user's cards, oldest first, with totals."""
        if self.user(user_id) is None:
            raise UnknownUser(f"unknown user {user_id!r}")
        rows = self._read(
            "SELECT t.* FROM transactions t JOIN cards c ON t.id_tag = c.id_tag "
            "WHERE c.user_id = ? AND t.stopped_at IS NOT NULL ORDER BY t.started_at, t.id",
            (user_id,),
        )
        sessions = tuple(
            SessionSummary(
                transaction_id=tx.id,
                cp_id=tx.cp_id,
                connector_id=tx.connector_id,
                id_tag=tx.id_tag,
                started_at=tx.started_at,
                stopped_at=tx.stopped_at or tx.started_at,
                energy_wh=tx.energy_wh,
                cost_minor=tx.cost_minor or 0,
            )
            for tx in map(_transaction, rows)
        )
        return UserConsumption(
            user_id=user_id,
            sessions=sessions,
            energy_wh=sum(s.energy_wh for s in sessions),
            cost_minor=sum(s.cost_minor for s in sessions),
        )

    def user_consumption_csv(self, user_id: int) -> str:
        """user_consumption as CSV text: one row per session."""
        currency = self.currency()
        rows = [
            [
                s.transaction_id,
                s.cp_id,
                s.connector_id,
                s.id_tag,
                s.started_at.isoformat(),
                s.stopped_at.isoformat(),
                f"{s.energy_wh / 1000:.3f}",
                s.cost_minor,
                currency,
            ]
            for s in self.user_consumption(user_id).sessions
        ]
        header = ["transaction_id", "cp_id", "connector_id", "id_tag", "started_at", "stopped_at"]
        return _csv([*header, "energy_kwh", "cost_minor", "currency"], rows)

    def sessions_csv(
        self,
        *,
        cp_id: str | None = None,
        user_id: int | None = None,
        started_from: datetime | None = None,
        started_before: datetime | None = None,
        limit: int = 100_000,
    ) -> tuple[str, bool]:
        """The filtered sessions (as `recent_transactions`) as CSV text, newest first, at most ``limit`` rows;
        and whether more matched than were written."""
        txs = self.recent_transactions(
            cp_id=cp_id,
            user_id=user_id,
            started_from=started_from,
            started_before=started_before,
            limit=limit + 1,
        )
        owners = {
            r["id_tag"].casefold(): r["user_id"]
            for r in self._read("SELECT id_tag, user_id FROM cards WHERE user_id IS NOT NULL")
        }
        currency = self.currency()
        rows = [
            [
                tx.id,
                tx.cp_id,
                tx.connector_id,
                tx.id_tag,
                owners.get(tx.id_tag.casefold(), ""),
                tx.started_at.isoformat(),
                tx.stopped_at.isoformat() if tx.stopped_at else "",
                tx.energy_wh,
                "" if tx.cost_minor is None else tx.cost_minor,
                currency,
                tx.stop_reason or "",
            ]
            for tx in txs[:limit]
        ]
        header = ["transaction_id", "cp_id", "connector_id", "id_tag", "user_id", "started_at", "stopped_at"]
        return _csv([*header, "energy_wh", "cost_minor", "currency", "stop_reason"], rows), len(txs) > limit

    def users_csv(self) -> str:
        """Every user with card count and the balance over all their cards, as CSV text."""
        currency = self.currency()
        cards: dict[int, list[int]] = {}
        for card in self.cards():
            if card.user_id is not None:
                cards.setdefault(card.user_id, []).append(card.balance_minor)
        rows = [
            [
                u.id,
                u.name,
                u.phone or "",
                u.email or "",
                u.created_at.isoformat(),
                len(cards.get(u.id, [])),
                sum(cards.get(u.id, [])),
                currency,
            ]
            for u in self.users()
        ]
        header = ["user_id", "name", "phone", "email", "created_at", "cards", "balance_minor", "currency"]
        return _csv(header, rows)

    def cards_csv(self) -> str:
        """Every card with owner, mode, status, expiry and balance, as CSV text."""
        currency = self.currency()
        rows = [
            [
                c.id_tag,
                "" if c.user_id is None else c.user_id,
                str(c.mode),
                str(c.status),
                c.expiry.isoformat() if c.expiry else "",
                c.balance_minor,
                currency,
                c.created_at.isoformat(),
            ]
            for c in self.cards()
        ]
        header = ["id_tag", "user_id", "mode", "status", "expiry", "balance_minor", "currency", "created_at"]
        return _csv(header, rows)

    def latest_power_w(self, transaction_ids: Sequence[int]) -> dict[int, float]:
        """The latest total Power.Active.Import of each transaction, in W (transactions without one left out)."""
        out: dict[int, float] = {}
        for tx_id in transaction_ids:
            rows = self._read(
                "SELECT value, unit FROM meter_values WHERE transaction_id = ? AND measurand = ? AND phase = '' "
                "AND location IN ('', 'Outlet') ORDER BY timestamp DESC LIMIT 1",
                (tx_id, POWER_ACTIVE_IMPORT),
            )
            for r in rows:
                scale = 1000.0 if r["unit"] == "kW" else 1.0
                if math.isfinite(r["value"]):
                    out[tx_id] = r["value"] * scale
        return out

    def ended_between(self, start: datetime, end: datetime) -> tuple[int, int]:
        """(energy in Wh, revenue in minor units) of the sessions that ended in [start, end)."""
        rows = self._read(
            "SELECT COALESCE(SUM(MAX(0, meter_stop_wh - meter_start_wh)), 0) AS energy_wh, "
            "COALESCE(SUM(COALESCE(cost_minor, 0)), 0) AS revenue_minor FROM transactions "
            "WHERE stopped_at >= ? AND stopped_at < ?",
            (_ts(start, "start"), _ts(end, "end")),
        )
        return int(rows[0]["energy_wh"]), int(rows[0]["revenue_minor"])
