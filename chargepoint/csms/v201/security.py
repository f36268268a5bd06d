"""A. Security, M. Certificate management and B09 SetNetworkProfile (OCPP 2.0.1 Part 2 §A01-A05, §B09, §M03-M05).

The rules are the ones the 1.6 Security whitepaper adapter uses, in the version-neutral core
(``core/security.py``, ``core/network_profiles.py``, ``chargepoint/certificates.py``); this module only maps them to
2.0.1 payloads. What differs in 2.0.1: the security profile is raised by a NetworkConnectionProfile (A05) and is
read-only to SetVariables; the Basic-auth password is SecurityCtrlr.BasicAuthPassword (A01), a passwordString of
16-40 characters; certificate types are named CSMSRootCertificate etc. (M03-M05).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from ocpp.routing import after, on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoint.core.device_model import Variable
from chargepoint.core.network_profiles import PRIORITY_SETTING, NetworkProfile
from chargepoint.core.security import Credentials, SecurityEventType, basic_auth_password_error
from chargepoint.csms.certificate_frames import DELETE_STATUS, INSTALL_STATUS, hash_data_json, hash_data_of
from chargepoint.csms.v201 import mapping
from chargepoint.csms.v201.base import V201Base
from chargepoint.errors import ChargePointError, CsmsRejected, CsmsUnavailable, StorageError

log = logging.getLogger(__name__)

STATION_CERTIFICATE = "ChargingStationCertificate"  # CertificateSigningUseEnumType of the station's own chain
REASON_CHARS = 20  # StatusInfoType.reasonCode: string[0..20]
ADDITIONAL_INFO_CHARS = 512  # StatusInfoType.additionalInfo: string[0..512]

_ATTRIBUTE_VALUE = re.compile(r'("attributeValue"\s*:\s*")(?:[^"\\]|\\.)*(")')


def redact_password(frame: str) -> str:
    """A frame for the log: the attributeValue of a SetVariables that names BasicAuthPassword hidden (a secret)."""
    return _ATTRIBUTE_VALUE.sub(r"\1***\2", frame) if "BasicAuthPassword" in frame else frame


def status_info(reason: str, info: str) -> dict[str, str]:
    """A StatusInfoType: a short reason code and the human-readable why."""
    return {"reason_code": reason[:REASON_CHARS], "additional_info": info[:ADDITIONAL_INFO_CHARS]}


class Security(V201Base):
    """Passwords, security profiles, network profiles and certificates."""

    __slots__ = ()

    def redact(self, frame: str) -> str:
        """A received frame for the frame log, with a BasicAuthPassword's value hidden."""
        return redact_password(frame)

    def credentials(self) -> Credentials:
        """What the station has for each security profile's prerequisites."""
        security = self.security
        return Credentials(
            has_password=security.password() is not None,
            has_csms_root=security.certificates.has_csms_root(),
            has_client_certificate=security.has_client_certificate(),
        )

    # A01 (password) and A05/B10 (NetworkConfigurationPriority): SetVariables that are more than a setting
    def write_variable(self, variable: Variable, text: str) -> dict[str, Any] | None:
        """SetVariables of SecurityCtrlr.BasicAuthPassword or OCPPCommCtrlr.NetworkConfigurationPriority."""
        if variable.setting == "authorization_key":
            return self._set_password(text)
        if variable.setting == PRIORITY_SETTING:
            return self._set_priority(text)
        return super().write_variable(variable, text)

    def _set_password(self, text: str) -> dict[str, Any]:
        # A01.FR.?: a password that is no passwordString of 16-40 characters is Rejected (never logged: a secret).
        error = basic_auth_password_error(text)
        if error is not None:
            log.info("BasicAuthPassword rejected: %s", error)
            return {
                "attribute_status": "Rejected",
                "attribute_status_info": status_info("InvalidValue", error),
            }
        try:
            self.settings.set_text("authorization_key", text)
        except (ValueError, ChargePointError, OSError) as exc:
            log.error("BasicAuthPassword could not be stored: %s", type(exc).__name__)
            return {"attribute_status": "Rejected", "attribute_status_info": {"reason_code": "InternalError"}}
        self.security.security_events.record(
            SecurityEventType.RECONFIGURATION_OF_SECURITY_PARAMETERS, "BasicAuthPassword changed"
        )
        # A01.FR.?: the station reconnects with the new password once the answer is out (after_set_variables).
        self.security.changed_security = True
        return {"attribute_status": "Accepted"}

    def _set_priority(self, text: str) -> dict[str, Any]:
        # A05.FR.03: a slot below the active security profile is Rejected; B10: slots that hold no profile too.
        error = self.security.network.priority_error(text)
        if error is not None:
            log.info("NetworkConfigurationPriority %.40r rejected: %s", text, error)
            return {
                "attribute_status": "Rejected",
                "attribute_status_info": status_info("InvalidValue", error),
            }
        try:
            self.settings.set_text(PRIORITY_SETTING, ",".join(p.strip() for p in text.split(",")))
        except ValueError as exc:
            return {
                "attribute_status": "Rejected",
                "attribute_status_info": status_info("InvalidValue", str(exc)),
            }
        # A05.FR.04: Accepted; the new order is used from the next connection (the CSMS then sends a Reset).
        return {"attribute_status": "Accepted"}

    @after(Action.set_variables)
    async def after_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> None:
        """A new BasicAuthPassword is used from the next connection: reconnect now (the answer is out and the
        change committed), as 1.6 does after a new AuthorizationKey."""
        if self.security.changed_security:
            self.security.changed_security = False
            await self.security.reconnect()

    # B09
    @on(Action.set_network_profile)
    async def on_set_network_profile(
        self, configuration_slot: int, connection_data: dict[str, Any], **_: Any
    ) -> Any:
        """SetNetworkProfile (B09): a valid profile is stored in its slot (Accepted), Rejected with the reason
        otherwise (B09.FR.01, B09.FR.04: below the active security profile), Failed if it could not be stored
        (B09.FR.03)."""
        profile, error = self._network_profile(connection_data)
        if profile is not None:
            error = self.security.network.set_error(configuration_slot, profile, self.credentials())
        if profile is None or error is not None:
            log.info("SetNetworkProfile slot %s rejected: %s", configuration_slot, error)
            return call_result.SetNetworkProfile(
                status="Rejected", status_info=status_info("InvalidValue", error or "")
            )
        assert profile is not None
        mark = self.store.mark()
        self.security.network.put(configuration_slot, profile)
        try:
            await self.store.flush(since=mark)
        except StorageError:
            return call_result.SetNetworkProfile(status="Failed")
        log.info(
            "network profile stored in slot %s: %s, security profile %s",
            configuration_slot,
            profile.url,
            profile.security_profile,
        )
        return call_result.SetNetworkProfile(status="Accepted")

    def _network_profile(self, data: dict[str, Any]) -> tuple[NetworkProfile | None, str | None]:
        """A NetworkConnectionProfileType as the core's profile, or why it cannot be one here."""
        version = mapping.OCPP_VERSION_IN.get(data["ocpp_version"])
        if version is None:
            return None, f"{data['ocpp_version']} is not spoken here"
        if data["ocpp_transport"] != "JSON":
            return None, "only the JSON transport (OCPP-J) is spoken"
        if data.get("vpn") is not None or data.get("apn") is not None:
            # Connecting without the VPN it asks for would be less secure than the CSMS meant; no modem for an APN.
            return None, "VPN and APN settings are not supported"
        return (
            NetworkProfile(
                url=data["ocpp_csms_url"],
                security_profile=data["security_profile"],
                message_timeout_s=data["message_timeout"],
                ocpp_version=version,
                interface=data["ocpp_interface"],
            ),
            None,
        )

    # M05, M03, M04
    @on(Action.install_certificate)
    async def on_install_certificate(self, certificate_type: str, certificate: str, **_: Any) -> Any:
        """InstallCertificate (M05): a valid CA certificate of that type, within CertificateEntries."""
        result = await self.security.certificates.install(mapping.ROOT_USE_IN[certificate_type], certificate)
        return call_result.InstallCertificate(status=INSTALL_STATUS[result])

    @on(Action.get_installed_certificate_ids)
    def on_get_installed_certificate_ids(self, certificate_type: list[str] | None = None, **_: Any) -> Any:
        """GetInstalledCertificateIds (M03): the hash data of the requested types (all without a type); NotFound
        when there are none."""
        wanted = certificate_type if certificate_type is not None else list(mapping.ROOT_USE.values())
        chains = []
        for name in dict.fromkeys(wanted):
            use = mapping.ROOT_USE_IN.get(name)  # V2GCertificateChain: the station has none
            if use is None:
                continue
            for found in self.security.certificates.installed(use):
                chains.append({"certificate_type": name, "certificate_hash_data": hash_data_json(found)})
        if not chains:
            return call_result.GetInstalledCertificateIds(status="NotFound")
        return call_result.GetInstalledCertificateIds(status="Accepted", certificate_hash_data_chain=chains)

    @on(Action.delete_certificate)
    async def on_delete_certificate(self, certificate_hash_data: dict[str, Any], **_: Any) -> Any:
        """DeleteCertificate (M04): NotFound for an unknown hash; Failed for the last CSMSRootCertificate a TLS
        connection relies on."""
        result = await self.security.certificates.delete(
            hash_data_of(certificate_hash_data), in_use_profile=self.security.connecting_profile()
        )
        return call_result.DeleteCertificate(status=DELETE_STATUS[result])

    # A02, A03
    @on(Action.certificate_signed)
    async def on_certificate_signed(
        self, certificate_chain: str, certificate_type: str = STATION_CERTIFICATE, **_: Any
    ) -> Any:
        """CertificateSigned (A02): the chain is installed only if it is for our pending key and our id, and used
        from the next connection; a V2GCertificate is Rejected (no ISO 15118 here)."""
        if certificate_type != STATION_CERTIFICATE:
            return call_result.CertificateSigned(
                status="Rejected",
                status_info=status_info("UnsupportedType", "no ISO 15118 certificates here"),
            )
        accepted = await self.security.certificates.accept_chain(certificate_chain)
        return call_result.CertificateSigned(status="Accepted" if accepted else "Rejected")

    async def sign_certificate(self) -> bool:
        """A new key and CSR (CN = station id, O = OrganizationName) sent as SignCertificate (A02 after
        TriggerMessage SignChargingStationCertificate); whether the CSMS Accepted it."""
        csr = await self.security.certificates.new_csr()
        answer = await self.request("SignCertificate", {"csr": csr, "certificateType": STATION_CERTIFICATE})
        accepted: bool = answer.get("status") == "Accepted"
        log.info("SignCertificate %s", "accepted; waiting for CertificateSigned" if accepted else "rejected")
        return accepted

    async def send_sign_certificate(self) -> None:
        """SignCertificate for a trigger, its failure logged."""
        try:
            await self.sign_certificate()
        except (CsmsRejected, CsmsUnavailable, OSError) as exc:
            log.warning("SignCertificate failed: %s", exc)
