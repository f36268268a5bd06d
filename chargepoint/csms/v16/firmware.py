"""OCPP 1.6 frames of firmware management, diagnostics and logs (§5.9, §5.19, §6.13, §6.17; Security whitepaper
ed. 2 §4.4 SignedUpdateFirmware, §4.5 GetLog): requests to the core's blocks, and the blocks' events to frames.

The adapter's ``@on`` handlers call these in one line; nothing here keeps state.
"""

from __future__ import annotations

import logging
from typing import Any

from ocpp.v16 import call_result

from chargepoint.core.blocks.diagnostics import Diagnostics
from chargepoint.core.blocks.firmware import Firmware
from chargepoint.core.events import FileEvent, FirmwareStatusChanged
from chargepoint.core.firmware import FirmwareRequest
from chargepoint.core.model import FirmwareStatus, UpdateResult, UploadKind, UploadStatus
from chargepoint.csms.file_requests import (
    firmware_block,
    firmware_request,
    log_request,
    optional_time,
    uploads_block,
)
from chargepoint.csms.v16 import mapping

log = logging.getLogger(__name__)

MAX_FILE_NAME_CHARS = 255  # GetDiagnostics.conf fileName: CiString255Type


def update_firmware(
    block: Firmware | None,
    location: str,
    retrieve_date: str,
    retries: int | None,
    retry_interval: int | None,
) -> Any:
    """UpdateFirmware (OCPP 1.6 §5.19): the answer is empty; the outcome follows as FirmwareStatusNotifications
    (an unsupported location as Downloading, DownloadFailed)."""
    result = firmware_block(block).update(
        FirmwareRequest(location, optional_time(retrieve_date), retries, retry_interval)
    )
    if result not in (UpdateResult.ACCEPTED, UpdateResult.ACCEPTED_CANCELED):
        log.warning("UpdateFirmware not taken (%s); 1.6 has no way to say so in the answer", result.value)
    return call_result.UpdateFirmware()


def signed_update_firmware(
    block: Firmware | None,
    request_id: int,
    firmware: dict[str, Any],
    retries: int | None,
    retry_interval: int | None,
) -> Any:
    """SignedUpdateFirmware (whitepaper ed. 2 §4.4): the signing certificate is checked now (InvalidCertificate),
    the signature over the file once it is downloaded (SignedFirmwareStatusNotification InvalidSignature)."""
    request = firmware_request(request_id, firmware, retries, retry_interval)
    result = firmware_block(block).update(request)
    return call_result.SignedUpdateFirmware(status=mapping.UPDATE_RESULT[result])


def get_diagnostics(
    block: Diagnostics | None,
    location: str,
    retries: int | None,
    retry_interval: int | None,
    start_time: str | None,
    stop_time: str | None,
) -> Any:
    """GetDiagnostics (OCPP 1.6 §5.9): the archive's file name; DiagnosticsStatusNotifications follow."""
    _, name = uploads_block(block).request(
        UploadKind.DIAGNOSTICS,
        location,
        start=optional_time(start_time),
        stop=optional_time(stop_time),
        retries=retries,
        retry_interval_s=retry_interval,
    )
    return call_result.GetDiagnostics(file_name=name[:MAX_FILE_NAME_CHARS])


def get_log(
    block: Diagnostics | None,
    log_type: str,
    request_id: int,
    log_parameters: dict[str, Any],
    retries: int | None,
    retry_interval: int | None,
) -> Any:
    """GetLog (whitepaper ed. 2 §4.5): Rejected for a location we cannot upload to; AcceptedCanceled when an
    upload in progress was canceled for it; LogStatusNotifications follow."""
    result, name = log_request(
        block, mapping.LOG_KIND_IN[log_type], log_parameters, request_id, retries, retry_interval
    )
    if result is UpdateResult.REJECTED:
        return call_result.GetLog(status="Rejected")
    return call_result.GetLog(status=mapping.UPDATE_RESULT[result], filename=name[:MAX_FILE_NAME_CHARS])


def notification(event: FileEvent) -> tuple[str, dict[str, Any]] | None:
    """The CALL that reports a queued firmware or upload status; None if 1.6 has no word for it."""
    if isinstance(event, FirmwareStatusChanged):
        if event.request_id is not None:
            return "SignedFirmwareStatusNotification", {
                "status": mapping.FIRMWARE_STATUS[event.status],
                "requestId": event.request_id,
            }
        if event.status not in mapping.PLAIN_FIRMWARE:
            return None
        return "FirmwareStatusNotification", {"status": mapping.FIRMWARE_STATUS[event.status]}
    if event.kind is UploadKind.DIAGNOSTICS:
        return "DiagnosticsStatusNotification", {"status": mapping.DIAGNOSTICS_STATUS[event.status]}
    payload: dict[str, Any] = {"status": mapping.LOG_STATUS[event.status]}
    if event.request_id is not None:
        payload["requestId"] = event.request_id
    return "LogStatusNotification", payload


def triggered(
    what: str, firmware: Firmware | None, uploads: Diagnostics | None
) -> tuple[str, dict[str, Any]]:
    """The notification a TriggerMessage (§5.17) or ExtendedTriggerMessage asks for: the current status, Idle
    when nothing is in progress (a plain one for a signed update in a state 1.6 cannot name is Idle too)."""
    if what in ("FirmwareStatusNotification", "SignedFirmwareStatusNotification"):
        state, request_id = firmware.status_now() if firmware is not None else (FirmwareStatus.IDLE, None)
        if what == "SignedFirmwareStatusNotification":
            payload: dict[str, Any] = {"status": mapping.FIRMWARE_STATUS[state]}
            if request_id is not None:
                payload["requestId"] = request_id
            return what, payload
        return what, {"status": mapping.PLAIN_FIRMWARE_NOW[state]}
    status, request_id = UploadStatus.IDLE, None
    if what == "DiagnosticsStatusNotification":
        if uploads is not None:
            status, request_id = uploads.status_now(UploadKind.DIAGNOSTICS)
        return what, {"status": mapping.DIAGNOSTICS_STATUS[status]}
    for kind in (UploadKind.DIAGNOSTICS_LOG, UploadKind.SECURITY_LOG):
        if uploads is not None and status is UploadStatus.IDLE:
            status, request_id = uploads.status_now(kind)
    payload = {"status": mapping.LOG_STATUS[status]}
    if request_id is not None:
        payload["requestId"] = request_id
    return what, payload
