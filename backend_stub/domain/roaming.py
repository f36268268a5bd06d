"""The roaming port: idTags that are not our cards may be a roaming partner's drivers (OCPI tokens)."""

from __future__ import annotations

from typing import Protocol

from backend_stub.store import AuthStatus


class RoamingAuthority(Protocol):
    """Decides idTags that belong to a roaming partner; None for one that is not a partner's."""

    def status(self, id_tag: str) -> AuthStatus | None:
        """A decision without asking the partner (its stored token, a recent real-time answer)."""

    async def authorize(self, cp_id: str, id_tag: str) -> AuthStatus | None:
        """A decision at ``cp_id``, asking the partner in real time where the token requires it."""
