"""L. Firmware management and N. Diagnostics: UpdateFirmware and GetLog (OCPP 2.0.1 Part 2 §L01-L02, N01), over
the core's firmware and diagnostics blocks (``core/blocks/firmware.py``, ``core/blocks/diagnostics.py``).

The statuses go out of the durable outbox as FirmwareStatusNotification and LogStatusNotification with the
request's requestId (``transactions.py``), so none is lost offline and Installed follows the BootNotification of
the reboot into the new firmware; the persisted job survives the restart. A signed update (firmware.signature
present) has its signing certificate checked at once (InvalidCertificate) and its signature once downloaded
(InvalidSignature); a location the station cannot fetch is reported DownloadFailed. Times that are no date-time
are a FormatViolation; the core bounds retries, intervals and how far ahead a retrieve or install may be.
"""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoint.core.model import FirmwareStatus, UpdateResult, UploadStatus
from chargepoint.csms.file_requests import firmware_block, firmware_request, log_request
from chargepoint.csms.session import StationCommands
from chargepoint.csms.times import check_times
from chargepoint.csms.v201 import mapping
from chargepoint.csms.v201.base import V201Base

MAX_FILE_NAME_CHARS = 255  # GetLogResponse.filename: string(255)


def check_update_firmware(payload: dict[str, Any]) -> None:
    """FormatViolation for a retrieve or install time that is no date-time."""
    check_times(payload, ("firmware", "retrieveDateTime"), ("firmware", "installDateTime"))


def check_get_log(payload: dict[str, Any]) -> None:
    """FormatViolation for a log interval bound that is no date-time."""
    check_times(payload, ("log", "oldestTimestamp"), ("log", "latestTimestamp"))


def firmware_status_now(station: StationCommands) -> dict[str, Any]:
    """A triggered FirmwareStatusNotification (F06): the update's status, Idle without requestId when none runs."""
    block = station.firmware
    status, request_id = block.status_now() if block is not None else (FirmwareStatus.IDLE, None)
    payload: dict[str, Any] = {"status": mapping.FIRMWARE_STATUS[status]}
    if request_id is not None and status is not FirmwareStatus.IDLE:
        payload["requestId"] = request_id
    return payload


def log_status_now(station: StationCommands) -> dict[str, Any]:
    """A triggered LogStatusNotification (F06): Uploading with its requestId while a log upload runs, else Idle."""
    block = station.diagnostics
    for kind in mapping.LOG_KIND:
        status, request_id = block.status_now(kind) if block is not None else (UploadStatus.IDLE, None)
        if status is not UploadStatus.IDLE:
            return {"status": mapping.UPLOAD_STATUS[status], "requestId": request_id}
    return {"status": mapping.UPLOAD_STATUS[UploadStatus.IDLE]}


class FirmwareAndLogs(V201Base):
    """Firmware updates and log uploads the CSMS asks for."""

    __slots__ = ()

    @on(Action.update_firmware)
    def on_update_firmware(
        self,
        request_id: int,
        firmware: dict[str, Any],
        retries: int | None = None,
        retry_interval: int | None = None,
        **_: Any,
    ) -> Any:
        """UpdateFirmware (L01 signed, L02 unsigned): Accepted, AcceptedCanceled (an update that had not begun
        installing was replaced), Rejected (an install is in progress) or InvalidCertificate."""
        request = firmware_request(request_id, firmware, retries, retry_interval)
        result = firmware_block(self.station.firmware).update(request)
        return call_result.UpdateFirmware(status=mapping.UPDATE_RESULT[result])

    @on(Action.get_log)
    def on_get_log(
        self,
        log: dict[str, Any],
        log_type: str,
        request_id: int,
        retries: int | None = None,
        retry_interval: int | None = None,
        **_: Any,
    ) -> Any:
        """GetLog (N01): Rejected for a location the station cannot upload to; AcceptedCanceled when an upload
        in progress was canceled for it; LogStatusNotifications (Uploading, Uploaded or UploadFailure) follow."""
        result, name = log_request(
            self.station.diagnostics, mapping.LOG_KIND_IN[log_type], log, request_id, retries, retry_interval
        )
        if result is UpdateResult.REJECTED:
            return call_result.GetLog(status="Rejected")
        return call_result.GetLog(status=mapping.UPDATE_RESULT[result], filename=name[:MAX_FILE_NAME_CHARS])
