"""What both OCPP versions' firmware and log requests share (1.6 SignedUpdateFirmware and GetLog of the Security
whitepaper ed. 2; 2.0.1 UpdateFirmware and GetLog carry the same fields): the blocks they go to, refused with
NotSupported when the agent has no FilePort, and the firmware object read as the core's FirmwareRequest."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ocpp.exceptions import NotSupportedError

from chargepoint.core.blocks.diagnostics import Diagnostics
from chargepoint.core.blocks.firmware import Firmware
from chargepoint.core.firmware import FirmwareRequest
from chargepoint.core.model import UpdateResult, UploadKind
from chargepoint.csms.times import parse_time


def firmware_block(block: Firmware | None) -> Firmware:
    """The firmware block, or NotSupported (OCPP-J §4.2.3) when the agent has none."""
    if block is None:
        raise NotSupportedError(details={"cause": "firmware management is not configured"})
    return block


def uploads_block(block: Diagnostics | None) -> Diagnostics:
    """The diagnostics block, or NotSupported when the agent has none."""
    if block is None:
        raise NotSupportedError(details={"cause": "diagnostics are not configured"})
    return block


def optional_time(text: str | None) -> datetime | None:
    """An optional OCPP timestamp (the handler's precheck made sure it parses)."""
    return parse_time(text) if text else None


def firmware_request(
    request_id: int, firmware: dict[str, Any], retries: int | None, retry_interval: int | None
) -> FirmwareRequest:
    """A FirmwareType (snake_case, as the ``ocpp`` package routes it) as the core's request; signed when it
    carries a signature."""
    return FirmwareRequest(
        location=firmware["location"],
        retrieve_at=optional_time(firmware["retrieve_date_time"]),
        retries=retries,
        retry_interval_s=retry_interval,
        request_id=request_id,
        install_at=optional_time(firmware.get("install_date_time")),
        signing_certificate=firmware.get("signing_certificate"),
        signature=firmware.get("signature"),
    )


def log_request(
    block: Diagnostics | None,
    kind: UploadKind,
    log: dict[str, Any],
    request_id: int,
    retries: int | None,
    retry_interval: int | None,
) -> tuple[UpdateResult, str]:
    """A GetLog's LogParametersType (snake_case) to the diagnostics block: the answer and the file's name
    (Rejected, no file, for a location the station cannot upload to)."""
    return uploads_block(block).request_log(
        kind,
        log["remote_location"],
        start=optional_time(log.get("oldest_timestamp")),
        stop=optional_time(log.get("latest_timestamp")),
        retries=retries,
        retry_interval_s=retry_interval,
        request_id=request_id,
    )
