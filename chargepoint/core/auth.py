"""Authorization of idTags: local list, then authorization cache, then the CSMS (OCPP 1.6 §3.5)."""

from __future__ import annotations

import logging
from typing import Protocol

from chargepoint.core.model import AuthStatus, IdTagInfo
from chargepoint.core.settings import Settings
from chargepoint.core.storage import AuthStorage
from chargepoint.errors import CsmsUnavailable, StorageError
from chargepoint.ports import Clock

log = logging.getLogger(__name__)


class OnlineAuthorizer(Protocol):
    """The part of the CSMS link that authorizes online."""

    @property
    def online(self) -> bool:
        """True when a CALL can be sent right now."""
        ...

    async def authorize(self, id_tag: str) -> IdTagInfo:
        """Ask the CSMS; raises CsmsUnavailable when it cannot be asked or does not answer."""
        ...


class Authorizer:
    """Decides whether an idTag may charge, with the precedence and settings of OCPP 1.6."""

    def __init__(self, store: AuthStorage, settings: Settings, csms: OnlineAuthorizer, clock: Clock) -> None:
        self.store = store
        self.settings = settings
        self.csms = csms
        self.clock = clock

    def local(self, id_tag: str) -> tuple[IdTagInfo | None, bool]:
        """The locally known info for ``id_tag`` and whether it came from the local list."""
        now = self.clock.now()
        if self.settings.get_bool("local_auth_list_enabled"):
            entry = self.store.local_get(id_tag)
            if entry is not None:
                return entry.effective(now), True
        if self.settings.get_bool("authorization_cache_enabled"):
            cached = self.store.cache_get(id_tag)
            if cached is not None:
                return cached.effective(now), False
        return None, False

    async def authorize(self, id_tag: str) -> IdTagInfo:
        """Authorize ``id_tag`` now."""
        entry, _ = self.local(id_tag)
        if self.csms.online:
            # LocalPreAuthorize: a locally valid id starts at once, without waiting for the CSMS.
            if (
                entry is not None
                and entry.status is AuthStatus.ACCEPTED
                and self.settings.get_bool("local_pre_authorize")
            ):
                return entry
            try:
                info = await self.csms.authorize(id_tag)
            except CsmsUnavailable:
                log.info("CSMS unavailable while authorizing %s; deciding offline", id_tag)
            else:
                self.remember(id_tag, info)
                return info
        return self.offline(id_tag, entry)

    def offline(self, id_tag: str, entry: IdTagInfo | None) -> IdTagInfo:
        """The offline decision for ``id_tag`` given its local info."""
        if entry is not None:
            if entry.status is not AuthStatus.ACCEPTED:
                return entry  # a known blocked/expired id stays refused offline
            if self.settings.get_bool("local_authorize_offline"):
                return entry
        if self.settings.get_bool("allow_offline_tx_for_unknown_id"):
            return IdTagInfo(AuthStatus.ACCEPTED)
        return IdTagInfo(AuthStatus.INVALID)

    def remember(self, id_tag: str, info: IdTagInfo) -> None:
        """Put a CSMS answer in the cache, unless the id is on the local list (OCPP 1.6 §3.5.1)."""
        if not self.settings.get_bool("authorization_cache_enabled"):
            return
        try:
            if self.store.local_get(id_tag) is not None:
                return
            self.store.cache_put(id_tag, info)
        except StorageError:
            log.exception("could not update the authorization cache for %s", id_tag)
