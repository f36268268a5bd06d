"""Smart charging block (OCPP 1.6 §3.13, §7): installed profiles, the limit each connector may offer, and the
timer that re-applies the limits at the next period boundary. The rules themselves are ``core/smart_charging.py``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from datetime import datetime
from typing import Any

from chargepoint.core.blocks.context import FunctionalBlock, StationContext
from chargepoint.core.smart_charging import (
    MAX_SECONDS,
    ChargingProfile,
    ClearResult,
    CompositeSchedule,
    ConnectorLimits,
    ProfilePurpose,
    ProfileResult,
    ProfileRules,
    RateUnit,
    composite,
    limit_a,
    matches_clear,
    next_change,
    problem,
    replaced_by,
)
from chargepoint.errors import StorageError

log = logging.getLogger(__name__)

LIMIT_RECHECK_S = 300.0  # longest wait between two evaluations of the smart-charging limits


class SmartCharging(FunctionalBlock):
    """Charging profiles and the current each connector is offered under them."""

    __slots__ = ("ctx", "limit_timer", "profiles", "remote_profiles")

    def __init__(self, ctx: StationContext) -> None:
        self.ctx = ctx
        # Installed profiles, a TxProfile waiting for a remote start's transaction, and the timer that re-applies
        # the limits at the next period boundary (a TimerHandle, not a task: fleets hold thousands).
        try:
            self.profiles: list[ChargingProfile] = ctx.store.charging_profiles()
        except StorageError:
            log.exception("cannot read the installed charging profiles")
            self.profiles = []
        self.remote_profiles: dict[int, tuple[str, ChargingProfile]] = {}
        self.limit_timer: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        """A TxProfile lives as long as its transaction (OCPP 1.6 §3.13.1): drop those of ended ones."""
        self.drop_tx_profiles([c.id for c in self.ctx.connectors.values() if c.transaction is None])

    def halt(self) -> list[asyncio.Task[Any]]:
        """No more limit changes."""
        if self.limit_timer is not None:
            self.limit_timer.cancel()
        return []

    def rules(self) -> ProfileRules:
        """The installation limits set by the settings."""
        settings = self.ctx.settings
        return ProfileRules(
            max_stack_level=settings.get_int("charge_profile_max_stack_level"),
            max_periods=settings.get_int("charging_schedule_max_periods"),
            max_installed=settings.get_int("max_charging_profiles_installed"),
        )

    def _limits(self, cid: int) -> ConnectorLimits:
        if cid == 0:
            # The charge point as a whole (GetCompositeSchedule for connector 0): its maximum is the sum of the
            # connectors' power, expressed as amps at the first connector's voltage over the most phases any has,
            # so a mix of 1- and 3-phase connectors is not counted as all 3-phase.
            ports = list(self.ctx.ports.values())
            if not ports:
                return ConnectorLimits(0.0)
            voltage_v, phases = ports[0].voltage_v, max(p.phases for p in ports)
            total_w = sum(p.max_current_a * p.voltage_v * p.phases for p in ports)
            return ConnectorLimits(total_w / (voltage_v * phases), voltage_v, phases)
        p = self.ctx.ports[cid]
        return ConnectorLimits(p.max_current_a, p.voltage_v, p.phases)

    def _tx_start(self, cid: int) -> datetime | None:
        conn = self.ctx.connectors.get(cid)
        tx = conn.transaction if conn is not None else None
        return tx.started_at if tx is not None else None

    def current_limit_a(self, cid: int, at: datetime | None = None) -> float:
        """The current (A per phase) connector ``cid`` may offer now: its maximum under the profiles in force."""
        at = at or self.ctx.now()
        return limit_a(
            self.profiles,
            cid,
            at,
            self._limits(cid),
            tx_start=self._tx_start(cid),
            cp_share=self._cp_share(cid),
        )

    def _cp_share(self, cid: int) -> int:
        """How many connectors share the ChargePointMaxProfile with ``cid`` (OCPP 1.6 §3.13.1): ``cid`` and every
        other one in a transaction or with its relay closed (a stuck relay still draws)."""
        if cid == 0:
            return 1
        return 1 + sum(
            1
            for other, conn in self.ctx.connectors.items()
            if other != cid and (conn.transaction is not None or self.ctx.ports[other].relay.closed)
        )

    def set_charging_profile(self, cid: int, profile: ChargingProfile) -> ProfileResult:
        """Install a profile on connector ``cid`` (0: the charge point), replacing the ones it supersedes."""
        profile = on_connector(profile, cid)
        why = problem(profile, self.rules())
        if why is None and cid != 0 and cid not in self.ctx.connectors:
            why = f"no connector {cid}"
        if why is None and profile.purpose is ProfilePurpose.TX:
            tx = self.ctx.connectors[cid].transaction
            if tx is None:
                why = "a TxProfile needs a transaction on its connector"  # OCPP 1.6 §3.13.1
            elif profile.transaction_id is not None and profile.transaction_id != tx.transaction_id:
                why = f"transaction {profile.transaction_id} is not running on connector {cid}"
            else:
                profile = dataclasses.replace(profile, transaction_id=tx.transaction_id)
        if why is None:
            replaced = replaced_by(profile, self.profiles)
            if len(self.profiles) - len(replaced) >= self.rules().max_installed:
                why = "MaxChargingProfilesInstalled reached"
        if why is not None:
            log.info("charging profile %s rejected: %s", profile.id, why)
            return ProfileResult.REJECTED
        if not self.install(profile):
            return ProfileResult.REJECTED
        return ProfileResult.ACCEPTED

    def install(self, profile: ChargingProfile) -> bool:
        """Persist and apply a checked profile; False if the store refused it."""
        replaced = replaced_by(profile, self.profiles)
        try:
            self.ctx.store.install_charging_profile(profile, replaced)
        except StorageError:
            log.exception("cannot store charging profile %s", profile.id)
            return False
        self.profiles = [p for p in self.profiles if p.id not in replaced] + [profile]
        self.apply_limits()
        return True

    # a remote start's TxProfile (OCPP 1.6 §5.11), held until its transaction starts
    def hold_remote_profile(self, cid: int, id_tag: str, tx_profile: ChargingProfile | None) -> bool:
        """Keep a remote start's TxProfile for the transaction to come on ``cid``; False if it is not one."""
        if tx_profile is None:
            self.remote_profiles.pop(cid, None)
            return True
        tx_profile = on_connector(tx_profile, cid)
        if (
            tx_profile.purpose is not ProfilePurpose.TX
            or tx_profile.transaction_id is not None
            or problem(tx_profile, self.rules()) is not None
        ):
            return False  # OCPP 1.6 §5.11: purpose TxProfile, transactionId not set
        self.remote_profiles[cid] = (id_tag, tx_profile)
        return True

    def forget_remote_profile(self, cid: int) -> None:
        """The remote start on ``cid`` will not start a transaction: its TxProfile must not meet a later one."""
        self.remote_profiles.pop(cid, None)

    def transaction_started(self, cid: int, id_tag: str) -> None:
        """A transaction started on ``cid``: install the remote start's TxProfile if it was for it, re-apply."""
        remote = self.remote_profiles.pop(cid, None)
        tx = self.ctx.connectors[cid].transaction
        if remote is not None and remote[0] == id_tag:
            # RemoteStartTransaction's chargingProfile is this transaction's TxProfile (OCPP 1.6 §5.11, 2.0.1
            # K05): it names the transaction, as one set by SetChargingProfile does (GetChargingProfiles shows it).
            self.install(dataclasses.replace(remote[1], transaction_id=tx.transaction_id if tx else None))
        self.apply_limits()

    def clear_charging_profiles(
        self,
        profile_id: int | None = None,
        cid: int | None = None,
        purpose: ProfilePurpose | None = None,
        stack_level: int | None = None,
    ) -> ClearResult:
        """Remove the profiles the criteria select; UNKNOWN if none does."""
        ids = [p.id for p in self.profiles if matches_clear(p, profile_id, cid, purpose, stack_level)]
        if not ids:
            return ClearResult.UNKNOWN
        try:
            self.ctx.store.delete_charging_profiles(ids)
        except StorageError:
            log.exception("cannot remove charging profiles %s", ids)
            return ClearResult.UNKNOWN
        self.profiles = [p for p in self.profiles if p.id not in ids]
        self.apply_limits()
        return ClearResult.ACCEPTED

    def drop_tx_profiles(self, cids: list[int]) -> None:
        """Remove the TxProfiles of connectors whose transaction ended, and re-apply the limits."""
        ids = [p.id for p in self.profiles if p.purpose is ProfilePurpose.TX and p.connector_id in cids]
        if ids:
            with contextlib.suppress(StorageError):
                self.ctx.store.delete_charging_profiles(ids)
            self.profiles = [p for p in self.profiles if p.id not in ids]
        self.apply_limits()

    def composite_schedule(
        self, cid: int, duration_s: int, unit: RateUnit | None
    ) -> CompositeSchedule | None:
        """The limits of ``cid`` (0: the charge point) from now for ``duration_s``; None for an unknown one."""
        if (cid != 0 and cid not in self.ctx.connectors) or not 0 <= duration_s <= MAX_SECONDS:
            return None
        now = self.ctx.now()
        # Without a transaction, relative schedules are shown as if one started now.
        return composite(
            self.profiles,
            cid,
            now,
            duration_s,
            unit or RateUnit.AMPERE,
            self._limits(cid),
            tx_start=self._tx_start(cid) or now,
            cp_share=self._cp_share(cid),
        )

    def apply_limits(self) -> None:
        """Offer each closed connector its current limit now, and arm a timer for the next boundary of any
        profile; called again whenever profiles or transactions change (a timer, not a poll)."""
        if self.limit_timer is not None:
            self.limit_timer.cancel()
            self.limit_timer = None
        if self.ctx.stopping:
            return
        now = self.ctx.now()
        due: datetime | None = None
        for cid, conn in self.ctx.connectors.items():
            if self.ctx.ports[cid].relay.closed and conn.plugged:
                try:
                    self.ctx.ports[cid].plug.offer_current(self.current_limit_a(cid, now))
                except Exception:
                    log.exception("connector %s: changing the current offer failed", cid)
            edge = next_change(self.profiles, now, tx_start=self._tx_start(cid))
            if edge is not None and (due is None or edge < due):
                due = edge
        if due is not None:
            # The boundary is a wall-clock time and the timer runs on the monotonic clock: re-check at least every
            # LIMIT_RECHECK_S, so that a clock correction (NTP at boot, SetClock) moves a period change by no more.
            delay = min(LIMIT_RECHECK_S, max(0.0, (due - self.ctx.now()).total_seconds()))
            self.limit_timer = asyncio.get_running_loop().call_later(delay, self.apply_limits)


def on_connector(profile: ChargingProfile, cid: int) -> ChargingProfile:
    """The profile as installed on connector ``cid``."""
    return dataclasses.replace(profile, connector_id=cid)
