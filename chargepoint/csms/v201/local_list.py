"""D. Local authorization list: SendLocalList and GetLocalListVersion (OCPP 2.0.1 Part 2 §D01, D02), over the
core's local list (``core/blocks/authorization.py``: versions, Full/Differential, the size bounds).

LocalAuthListCtrlr (Part 2 Appendix): Enabled is the one writable variable; Entries and Storage report what the
list holds now, with the most it may hold as their maxLimit; ItemsPerMessage and BytesPerMessage bound one
SendLocalList. Entries bounds Storage too: an entry is an idToken (36 characters) and its stored info (a status, an
expiry, a group token), well under Storage's maxLimit per entry.
"""

from __future__ import annotations

import logging
from typing import Any

from ocpp.charge_point import snake_to_camel_case
from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoint.core.model import IdTagInfo
from chargepoint.csms.fitting import received_call_bytes
from chargepoint.csms.v201 import mapping
from chargepoint.csms.v201.base import V201Base, id_token_info
from chargepoint.errors import StorageError

log = logging.getLogger(__name__)


class LocalList(V201Base):
    """The local authorization list, as the CSMS sends it."""

    __slots__ = ()

    def live_value(self, setting: str) -> str | None:
        """LocalAuthListCtrlr.Entries and .Storage: what the list holds now (their setting is the maxLimit)."""
        if setting not in ("local_auth_list_max_length", "local_auth_list_max_bytes"):
            return super().live_value(setting)
        try:
            if setting == "local_auth_list_max_length":
                return str(self.store.local_list_size())
            return str(self.store.local_list_bytes())
        except StorageError:
            log.exception("the local list's size cannot be read")
            return "0"

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self, **_: Any) -> Any:
        """GetLocalListVersion (D02): 0 when there is no list (also while LocalAuthListCtrlr.Enabled is false:
        2.0.1 has no -1)."""
        return call_result.GetLocalListVersion(version_number=max(0, self.station.local_list_version()))

    @on(Action.send_local_list)
    def on_send_local_list(
        self,
        version_number: int,
        update_type: str,
        local_authorization_list: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> Any:
        """SendLocalList (D01): Full replaces the list, Differential adds, changes or (an entry without
        idTokenInfo) removes entries; VersionMismatch for a Differential update not newer than the list (D01.FR.?),
        Failed when the list is disabled, too long, too large, or cannot be stored."""
        items = local_authorization_list or []
        limit = self.settings.get_int("send_local_list_max_bytes")
        sent: dict[str, Any] = {"versionNumber": version_number, "updateType": update_type}
        if items:
            sent["localAuthorizationList"] = [snake_to_camel_case(item) for item in items]
        size = received_call_bytes("SendLocalList", sent)
        if size > limit:
            # LocalAuthListCtrlr.BytesPerMessage bounds one update: the whole message, as the CSMS measures it
            # when it cuts a long list into several (not only the list's JSON, which let larger ones in).
            return call_result.SendLocalList(
                status="Failed",
                status_info={"reason_code": "TooLarge", "additional_info": f"{size} bytes, over {limit}"},
            )
        entries: dict[str, IdTagInfo | None] = {}
        for item in items:
            info = item.get("id_token_info")
            entries[item["id_token"]["id_token"]] = id_token_info(snake_to_camel_case(info)) if info else None
        full = update_type == "Full"
        if full:
            entries = {k: v for k, v in entries.items() if v is not None}
        result = self.station.update_local_list(version_number, full, entries)
        return call_result.SendLocalList(status=mapping.LOCAL_LIST[result])
