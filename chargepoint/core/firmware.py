"""Firmware management's rules (OCPP 1.6 §4.5, §5.19 UpdateFirmware; Security whitepaper ed. 2 §4.4
SignedUpdateFirmware): the states and their table, the request and the persisted job; ``blocks/firmware.py`` runs
them.

One update at a time, persisted at every step so a restart resumes it or reports it consistently:

    download (retries, at retrieveDate) -> [verify the signature] -> wait until no transaction runs
    -> install (the FilePort's hook) -> reboot -> Installed after the BootNotification

Statuses are queued events (``FirmwareStatusChanged``), so none is lost offline and Installed follows the boot
into the new firmware. An install is recorded as started before the installer runs: a crash during it is reported
as InstallationFailed after the restart, never run twice.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chargepoint.core.file_jobs import RetryPolicy
from chargepoint.core.model import FirmwareStatus
from chargepoint.core.storage import KeyValueStorage
from chargepoint.errors import StorageError

log = logging.getLogger(__name__)

F = FirmwareStatus
KIND = "firmware"
VERSION_KEY = "firmware.version"
DOWNLOAD_NAME = "firmware.download"

# Every step an update may take; a state not listed as a source has none (it ends the job).
TRANSITIONS: dict[FirmwareStatus, frozenset[FirmwareStatus]] = {
    F.IDLE: frozenset({F.DOWNLOAD_SCHEDULED, F.DOWNLOADING}),
    F.DOWNLOAD_SCHEDULED: frozenset({F.DOWNLOADING}),
    F.DOWNLOADING: frozenset({F.DOWNLOADED, F.DOWNLOAD_FAILED}),
    # After a restart a downloaded file is fetched again (the work directory may not have survived).
    F.DOWNLOADED: frozenset(
        {F.SIGNATURE_VERIFIED, F.INVALID_SIGNATURE, F.INSTALL_SCHEDULED, F.INSTALLING, F.DOWNLOADING}
    ),
    F.SIGNATURE_VERIFIED: frozenset({F.INSTALL_SCHEDULED, F.INSTALLING, F.DOWNLOADING}),
    F.INSTALL_SCHEDULED: frozenset({F.INSTALLING, F.DOWNLOADING}),
    F.INSTALLING: frozenset({F.INSTALL_REBOOTING, F.INSTALLATION_FAILED}),
    F.INSTALL_REBOOTING: frozenset({F.INSTALLED}),
}
FINAL = frozenset({F.DOWNLOAD_FAILED, F.INVALID_SIGNATURE, F.INSTALLED, F.INSTALLATION_FAILED})
# A new request replaces a job in these states; an install in progress cannot be taken back.
CANCELABLE = frozenset(
    {F.IDLE, F.DOWNLOAD_SCHEDULED, F.DOWNLOADING, F.DOWNLOADED, F.SIGNATURE_VERIFIED, F.INSTALL_SCHEDULED}
)


@dataclass(frozen=True, slots=True)
class FirmwareRequest:
    """An UpdateFirmware (``signing_certificate``/``signature`` None) or SignedUpdateFirmware request."""

    location: str
    retrieve_at: datetime | None
    retries: int | None = None
    retry_interval_s: int | None = None
    request_id: int | None = None
    install_at: datetime | None = None
    signing_certificate: str | None = None
    signature: str | None = None

    @property
    def signed(self) -> bool:
        """A whitepaper SignedUpdateFirmware."""
        return self.signature is not None


@dataclass(frozen=True, slots=True)
class FirmwareJob:
    """An update in progress, as persisted."""

    request: FirmwareRequest
    retrieve_at: datetime
    policy: RetryPolicy
    state: FirmwareStatus = F.IDLE
    attempts: int = 0  # download attempts begun

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form for the store."""
        r = self.request
        return {
            "location": r.location,
            "retrieve_at": self.retrieve_at.isoformat(),
            "install_at": r.install_at.isoformat() if r.install_at else None,
            "retries": self.policy.retries,
            "retry_interval_s": self.policy.interval_s,
            "request_id": r.request_id,
            "signing_certificate": r.signing_certificate,
            "signature": r.signature,
            "state": self.state.value,
            "attempts": self.attempts,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FirmwareJob:
        """Inverse of ``to_json``; KeyError/ValueError/TypeError if it is not one."""
        retrieve_at = datetime.fromisoformat(data["retrieve_at"])
        install_at = data.get("install_at")
        request = FirmwareRequest(
            location=str(data["location"]),
            retrieve_at=retrieve_at,
            request_id=data.get("request_id"),
            install_at=datetime.fromisoformat(install_at) if install_at else None,
            signing_certificate=data.get("signing_certificate"),
            signature=data.get("signature"),
        )
        policy = RetryPolicy(int(data["retries"]), int(data["retry_interval_s"]))
        return cls(request, retrieve_at, policy, FirmwareStatus(data["state"]), int(data["attempts"]))


def running_version(configured: str, store: KeyValueStorage) -> str:
    """The firmware version to report in BootNotification: the one last installed, unless the configured
    version changed since (the charger was re-flashed another way and its config updated)."""
    try:
        text = store.get(VERSION_KEY)
        data = json.loads(text) if text else None
    except (StorageError, ValueError):
        log.exception("cannot read the installed firmware version")
        return configured
    if not isinstance(data, dict) or data.get("configured") != configured:
        return configured
    version = data.get("version")
    return version if isinstance(version, str) and version else configured
