"""C. Authorization: Authorize with IdTokenType and ClearCache (OCPP 2.0.1 Part 2 §C01, C11)."""

from __future__ import annotations

import logging
from typing import Any

from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoint.core.model import AuthStatus, IdTagInfo
from chargepoint.csms.v201.base import V201Base, id_token_info
from chargepoint.errors import CsmsRejected

log = logging.getLogger(__name__)


class Authorization(V201Base):
    """Online authorization and the authorization cache."""

    __slots__ = ()

    async def authorize(self, id_tag: str) -> IdTagInfo:
        """AuthorizeRequest (C01); a CallError is a refusal, never a reason to apply the offline rules."""
        try:
            answer = await self.request("Authorize", {"idToken": self.id_token(id_tag)})
        except CsmsRejected as exc:
            log.warning("Authorize of %s answered with %s; treating the id as Invalid", id_tag, exc)
            return IdTagInfo(AuthStatus.INVALID)
        return id_token_info(answer.get("idTokenInfo"))

    @on(Action.clear_cache)
    def on_clear_cache(self, **_: Any) -> Any:
        """ClearCache (C11): Rejected when the cache is disabled (C11.FR.04: AuthCacheCtrlr.Enabled false) or
        cannot be emptied."""
        if not self.settings.get_bool("authorization_cache_enabled"):
            return call_result.ClearCache(status="Rejected")
        return call_result.ClearCache(status="Accepted" if self.station.clear_cache() else "Rejected")
