"""P. DataTransfer (OCPP 2.0.1 Part 2 §P01): no vendor extension is known."""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoint.csms.v201.base import V201Base


class DataTransfer(V201Base):
    """Vendor-specific messages."""

    __slots__ = ()

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **_: Any) -> Any:
        """DataTransfer (P01.FR.?): UnknownVendorId for every vendor, since none is implemented."""
        return call_result.DataTransfer(status="UnknownVendorId")
