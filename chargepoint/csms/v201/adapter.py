"""The OCPP 2.0.1 session: one class made of the functional blocks, registered in ``link.ADAPTERS`` under
``ocpp2.0.1``."""

from __future__ import annotations

from chargepoint.csms.v201.authorization import Authorization
from chargepoint.csms.v201.availability import Availability
from chargepoint.csms.v201.data_transfer import DataTransfer
from chargepoint.csms.v201.firmware import FirmwareAndLogs, check_get_log, check_update_firmware
from chargepoint.csms.v201.local_list import LocalList
from chargepoint.csms.v201.provisioning import Provisioning
from chargepoint.csms.v201.remote_control import RemoteControl
from chargepoint.csms.v201.reservation import Reservations, check_reserve_now
from chargepoint.csms.v201.security import Security
from chargepoint.csms.v201.smart_charging import SmartChargingHandlers
from chargepoint.csms.v201.transactions import Transactions


class V201Session(
    Provisioning,
    Authorization,
    LocalList,
    Transactions,
    RemoteControl,
    SmartChargingHandlers,
    Availability,
    Reservations,
    FirmwareAndLogs,
    DataTransfer,
    Security,
):
    """An OCPP 2.0.1 conversation with the central system over one connection."""

    __slots__ = ()

    PRECHECKS = {
        "ReserveNow": check_reserve_now,
        "UpdateFirmware": check_update_firmware,
        "GetLog": check_get_log,
    }
