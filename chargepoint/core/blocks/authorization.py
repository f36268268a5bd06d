"""Authorization block (OCPP 1.6 §3.5, §5.10): the local list, the cache, and idTag info the CSMS sends in its
answers. The decision itself (local list, then cache, then online) is ``core/auth.py``'s ``Authorizer``."""

from __future__ import annotations

import logging

from chargepoint.core.auth import Authorizer
from chargepoint.core.blocks.context import FunctionalBlock, StationContext
from chargepoint.core.model import IdTagInfo, LocalListResult
from chargepoint.errors import StorageError

log = logging.getLogger(__name__)


class Authorization(FunctionalBlock):
    """Who may charge: the authorizer, and the local list and cache it reads."""

    __slots__ = ("authorizer", "ctx")

    def __init__(self, ctx: StationContext) -> None:
        self.ctx = ctx
        self.authorizer = Authorizer(ctx.store, ctx.settings, self, ctx.clock)

    # The online-authorizer view of the CSMS port, so the Authorizer sees the currently attached link.
    @property
    def online(self) -> bool:
        """True when the CSMS link can take a CALL."""
        return self.ctx.csms.online

    async def authorize(self, id_tag: str) -> IdTagInfo:
        """Online authorization through the attached link."""
        return await self.ctx.csms.authorize(id_tag)

    def clear_cache(self) -> bool:
        """Empty the authorization cache."""
        try:
            self.ctx.store.cache_clear()
        except StorageError:
            log.exception("cannot clear the authorization cache")
            return False
        return True

    def update_local_list(
        self, version: int, full: bool, entries: dict[str, IdTagInfo | None]
    ) -> LocalListResult:
        """Apply a local-list update (full or differential, versioned)."""
        settings, store = self.ctx.settings, self.ctx.store
        if not settings.get_bool("local_auth_list_enabled"):
            return LocalListResult.NOT_SUPPORTED
        if len(entries) > settings.get_int("send_local_list_max_length"):
            return LocalListResult.FAILED
        if not full and version <= store.local_list_version():
            return LocalListResult.VERSION_MISMATCH
        try:
            fits = store.local_list_update(
                version, full, entries, max_size=settings.get_int("local_auth_list_max_length")
            )
        except StorageError:
            log.exception("cannot store the local list")
            return LocalListResult.FAILED
        if not fits:
            log.warning("local list update refused: it would exceed LocalAuthListMaxLength")
            return LocalListResult.FAILED
        return LocalListResult.ACCEPTED

    def local_list_version(self) -> int:
        """The local list's version, -1 when the feature is off."""
        if not self.ctx.settings.get_bool("local_auth_list_enabled"):
            return -1
        # OCPP 1.6 §5.10: version 0 means the list is empty.
        return self.ctx.store.local_list_version() if self.ctx.store.local_list_size() else 0

    def id_tag_info(self, id_tag: str, info: IdTagInfo) -> None:
        """The CSMS told us about an idTag in a transaction answer: update the cache."""
        self.authorizer.remember(id_tag, info)
