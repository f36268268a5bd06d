"""OCPP 1.6 Security whitepaper (ed. 2) frames: the handlers the 1.6 session mixes in.

InstallCertificate (use case M05), DeleteCertificate (M04), GetInstalledCertificateIds (M03), SignCertificate /
CertificateSigned (A02, A03), ExtendedTriggerMessage, and the security configuration keys SecurityProfile (§2,
migration between profiles) and AuthorizationKey (A01). The rules are version-neutral
(``core/security.py``, ``chargepoint/certificates.py``); this module only maps them to 1.6 payloads.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from ocpp.routing import after, on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from chargepoint.core.security import Credentials, ProfileChange, SecurityEventType, authorization_key_error
from chargepoint.core.storage import CertificateUse
from chargepoint.csms.certificate_frames import DELETE_STATUS, INSTALL_STATUS, hash_data_json, hash_data_of
from chargepoint.csms.outbox import OrphanedTransaction
from chargepoint.errors import CsmsRejected, CsmsUnavailable

if TYPE_CHECKING:
    from chargepoint.core.settings import Settings
    from chargepoint.csms.session import SecurityControls, StationCommands

log = logging.getLogger(__name__)

CERTIFICATE_USE_IN: dict[str, CertificateUse] = {
    "CentralSystemRootCertificate": CertificateUse.CENTRAL_SYSTEM_ROOT,
    "ManufacturerRootCertificate": CertificateUse.MANUFACTURER_ROOT,
}
# ExtendedTriggerMessage's MessageTriggerEnumType: every value is served.
EXTENDED_TRIGGERS = frozenset(
    {
        "BootNotification",
        "LogStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "SignChargePointCertificate",
        "StatusNotification",
    }
)
SECURITY_KEYS = frozenset({"SecurityProfile", "AuthorizationKey"})  # handled by ``change_security_key``


_VALUE = re.compile(r'("value"\s*:\s*")(?:[^"\\]|\\.)*(")')


def redact_secrets(frame: str) -> str:
    """A frame for the log: the value of a ChangeConfiguration AuthorizationKey replaced (it is a password)."""
    return _VALUE.sub(r"\1***\2", frame) if "AuthorizationKey" in frame else frame


def trigger_status(
    connectors: Collection[int], requested: str, connector_id: int | None, served: frozenset[str]
) -> str:
    """The answer to TriggerMessage or ExtendedTriggerMessage: Rejected for a connector that does not exist,
    NotImplemented for a message not ``served``, else Accepted (and the message follows)."""
    if connector_id is not None and connector_id != 0 and connector_id not in connectors:
        return "Rejected"
    return "Accepted" if requested in served else "NotImplemented"


class SecurityHandlers:
    """The whitepaper's CALLs from the central system, and SignCertificate towards it (mixed into V16Session)."""

    __slots__ = ()

    security: SecurityControls
    station: StationCommands
    settings: Settings

    if TYPE_CHECKING:  # provided by V16Session

        async def request(
            self, action: str, payload: dict[str, Any], *, timeout_s: float | None = None
        ) -> dict[str, Any]: ...

        def can_follow_up(self) -> bool: ...

        def follow_up(self, coro: Any, name: str) -> None: ...

        async def _triggered(self, what: str, connector_id: int | None) -> None: ...

    @on(Action.install_certificate)
    async def on_install_certificate(self, certificate_type: str, certificate: str, **_: Any) -> Any:
        """InstallCertificate (whitepaper M05): a valid CA certificate, used from the next TLS connection."""
        result = await self.security.certificates.install(CERTIFICATE_USE_IN[certificate_type], certificate)
        return call_result.InstallCertificate(status=INSTALL_STATUS[result])

    @on(Action.get_installed_certificate_ids)
    def on_get_installed_certificate_ids(self, certificate_type: str, **_: Any) -> Any:
        """GetInstalledCertificateIds (whitepaper M03): NotFound when none of that type is installed."""
        found = self.security.certificates.installed(CERTIFICATE_USE_IN[certificate_type])
        if not found:
            return call_result.GetInstalledCertificateIds(status="NotFound")
        return call_result.GetInstalledCertificateIds(
            status="Accepted", certificate_hash_data=[hash_data_json(h) for h in found]
        )

    @on(Action.delete_certificate)
    async def on_delete_certificate(self, certificate_hash_data: dict[str, Any], **_: Any) -> Any:
        """DeleteCertificate (whitepaper M04): Failed for the last CentralSystemRootCertificate in use."""
        result = await self.security.certificates.delete(
            hash_data_of(certificate_hash_data), in_use_profile=self.security.connecting_profile()
        )
        return call_result.DeleteCertificate(status=DELETE_STATUS[result])

    @on(Action.certificate_signed)
    async def on_certificate_signed(self, certificate_chain: str, **_: Any) -> Any:
        """CertificateSigned (whitepaper A02): installed only if valid for our key and id."""
        accepted = await self.security.certificates.accept_chain(certificate_chain)
        return call_result.CertificateSigned(status="Accepted" if accepted else "Rejected")

    @on(Action.extended_trigger_message)
    def on_extended_trigger_message(
        self, requested_message: str, connector_id: int | None = None, **_: Any
    ) -> Any:
        """ExtendedTriggerMessage (whitepaper): Rejected for an unknown connector; the message follows."""
        status = trigger_status(self.station.connectors, requested_message, connector_id, EXTENDED_TRIGGERS)
        if status == "Accepted" and not self.can_follow_up():
            status = "Rejected"  # still sending what was asked for before
        return call_result.ExtendedTriggerMessage(status=status)

    @after(Action.extended_trigger_message)
    def after_extended_trigger_message(
        self, requested_message: str, connector_id: int | None = None, **_: Any
    ) -> None:
        """Send what was asked for, after the answer, in a task kept by reference."""
        if (
            trigger_status(self.station.connectors, requested_message, connector_id, EXTENDED_TRIGGERS)
            == "Accepted"
            and self.can_follow_up()
        ):
            self.follow_up(
                self._send_extended(requested_message, connector_id), f"trigger-{requested_message}"
            )

    async def _send_extended(self, what: str, connector_id: int | None) -> None:
        try:
            if what == "SignChargePointCertificate":
                await self.sign_certificate()
            elif what == "LogStatusNotification":
                await self.request("LogStatusNotification", {"status": "Idle"})
            else:
                await self._triggered(what, connector_id)
        except (CsmsRejected, CsmsUnavailable, OrphanedTransaction, OSError) as exc:
            log.warning("triggered %s failed: %s", what, exc)

    async def sign_certificate(self) -> bool:
        """A new key and CSR (CN = charge point id, O = CpoName) sent as SignCertificate; whether Accepted."""
        csr = await self.security.certificates.new_csr()
        answer = await self.request("SignCertificate", {"csr": csr})
        accepted: bool = answer.get("status") == "Accepted"
        log.info("SignCertificate %s", "accepted; waiting for CertificateSigned" if accepted else "rejected")
        return accepted

    def change_security_key(self, key: str, value: str) -> str:
        """ChangeConfiguration of SecurityProfile or AuthorizationKey: the status; a change applies from the next
        connection, which follows at once (``after_change_configuration``)."""
        security = self.security
        if key == "SecurityProfile":
            have = Credentials(
                has_password=security.password() is not None,
                has_csms_root=security.certificates.has_csms_root(),
                has_client_certificate=security.has_client_certificate(),
            )
            result = security.profiles.request(value, have)
            if result is ProfileChange.REJECTED:
                log.info("SecurityProfile %.10r rejected (active: %s)", value, security.profiles.active)
                return "Rejected"
            security.changed_security = True
            return "Accepted"
        try:
            error = authorization_key_error(value.strip())
            if error is not None:
                raise ValueError(error)
            self.settings.set_text("authorization_key", value)
        except ValueError as exc:
            log.info("AuthorizationKey rejected: %s", exc)  # never the value: it is a secret
            return "Rejected"
        security.security_events.record(
            SecurityEventType.RECONFIGURATION_OF_SECURITY_PARAMETERS, "AuthorizationKey changed"
        )
        security.changed_security = True
        return "Accepted"

    @after(Action.change_configuration)
    async def after_change_configuration(self, key: str, value: str, **_: Any) -> None:
        """A new SecurityProfile or AuthorizationKey is used from the next connection: reconnect now (once the
        answer is out and the change committed)."""
        if key in SECURITY_KEYS and self.security.changed_security:
            self.security.changed_security = False
            await self.security.reconnect()
