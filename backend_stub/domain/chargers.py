"""The charger registry: who may connect (admission, passwords, security profiles), boots, heartbeats, status."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal, TypeAlias

from backend_stub.domain.events import Observers
from backend_stub.domain.security import SecurityEvents
from backend_stub.store import Charger, ChargerStatus, CsmsStore, DeviceVariable, SecurityEventKind

log = logging.getLogger(__name__)

# The charger id is the last path segment (OCPP-J 1.6 §3.1.1). BootNotification's identities are at most 20-25
# characters (CiString20/25Type); 48 leaves room for site prefixes and matches the dashboard's registration form.
MAX_CHARGER_ID_LENGTH = 48
Admission: TypeAlias = Literal["ok", "unknown", "unauthorized"]
# Security profile a handshake offers (OCPP 1.6 security whitepaper, "Security Profiles"): 0 no credentials,
# 1 Basic auth over ws://, 2 Basic auth over wss://, 3 a client certificate for this charger id (checked by the
# transport before admission).
SecurityProfile: TypeAlias = int


class Chargers:
    """Admission and the registry's records of each charger."""

    def __init__(
        self,
        store: CsmsStore,
        clock: Callable[[], datetime],
        security: SecurityEvents,
        *,
        admit_unknown: bool = False,
        max_pending: int = 1000,
        pending_ttl_s: float = 86400.0,
        observers: Observers | None = None,
    ) -> None:
        """With ``admit_unknown``, at most ``max_pending`` unknown chargers wait as pending; one that has not
        booted for ``pending_ttl_s`` is deleted, and a new unknown charger is refused while the table is full."""
        self.store = store
        self.clock = clock
        self.security = security
        self.admit_unknown = admit_unknown
        self.max_pending = max_pending
        self.pending_ttl_s = pending_ttl_s
        self.observers = observers if observers is not None else Observers()
        self._verified: dict[str, bytes] = {}  # cp_id -> sha256(password) of the last verified password
        # cp_id -> time of its latest incoming message, in memory (no store write per frame). Only admitted
        # connections send frames, so the keys are registry ids: bounded by the registry (and max_pending).
        self._last_seen: dict[str, datetime] = {}

    async def admission(self, cp_id: str, password: str | None, profile: SecurityProfile) -> Admission:
        """Whether ``cp_id`` may connect with ``password`` (None: none sent) at security ``profile``."""
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
        # Profile 3: the transport checked a client certificate issued to cp_id; no Basic auth is used then
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

    def seen(self, cp_id: str) -> None:
        """Note that ``cp_id`` just sent a message of any kind."""
        self._last_seen[cp_id] = self.clock()

    def last_seen(self, cp_id: str, last_heartbeat: datetime | None = None) -> datetime | None:
        """When ``cp_id`` last sent anything: since this process started, else its stored last heartbeat."""
        seen = self._last_seen.get(cp_id)
        if seen is None or (last_heartbeat is not None and last_heartbeat > seen):
            return last_heartbeat
        return seen

    def booted_before(self, cp_id: str) -> bool:
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

    def refuse_unless_accepted(self, cp_id: str, what: str) -> bool:
        """Whether ``cp_id`` is Accepted; if not, a security event says that ``what`` was refused.

        Asked before every charger message: the store remembers statuses and forgets them on any change.
        """
        registered = self.store.charger_status(cp_id)
        if registered is ChargerStatus.ACCEPTED:
            return True
        status = "unknown" if registered is None else str(registered)
        self.security.record(
            cp_id,
            SecurityEventKind.NOT_ACCEPTED,
            f"{what} from a charger in status {status} refused",
            rate_limited=True,
        )
        return False

    def boot(
        self,
        cp_id: str,
        *,
        vendor: str,
        model: str,
        firmware: str | None,
        serial_number: str | None,
    ) -> Charger:
        """Record a boot; the charger with its registration status (accepted, pending, rejected)."""
        return self.store.record_boot(
            cp_id,
            vendor=vendor,
            model=model,
            firmware=firmware,
            serial_number=serial_number,
            timestamp=self.clock(),
        )

    def heartbeat(self, cp_id: str) -> None:
        """Record that ``cp_id`` is alive."""
        self.store.record_heartbeat(cp_id, self.clock())

    def connector_status(
        self, cp_id: str, evse: int, status: str, at: datetime | None, *, error_code: str, info: str | None
    ) -> None:
        """Record a connector's (or, for 0, the whole charger's) status at ``at`` (now if None)."""
        self.store.record_status(
            cp_id, evse, status, at if at is not None else self.clock(), error_code=error_code, info=info
        )
        self.observers.status_changed(cp_id, evse)

    def diagnostics_status(self, cp_id: str, status: str) -> None:
        """Record the progress of a diagnostics upload."""
        self.store.set_diagnostics_status(cp_id, status)

    def firmware_status(self, cp_id: str, status: str) -> None:
        """Record the progress of a firmware update."""
        self.store.set_firmware_status(cp_id, status)

    def device_model_report(self, cp_id: str, variables: list[DeviceVariable]) -> None:
        """Keep the device-model values a charger reported (bounded per charger by the store)."""
        kept = self.store.store_device_variables(cp_id, variables, self.clock())
        if kept < len(variables):
            log.warning("%s reported %d device-model values; %d kept (the cap)", cp_id, len(variables), kept)
