"""Tokens, we are the Receiver (OCPI 2.2.1 §12): partners' drivers' tokens stored, and charger authorization
deciding them by the whitelist rules, asking the partner in real time where the token requires it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final

from backend_stub.ocpi.client import CallFailed, Client
from backend_stub.ocpi.protocol import Status, fail, parse_time, to_json
from backend_stub.store import AuthStatus, CsmsStore
from backend_stub.store.ocpi import Partner, RoamingToken, TokenKey

log = logging.getLogger(__name__)

TOKEN_TYPES: Final = frozenset({"AD_HOC_USER", "APP_USER", "OTHER", "RFID"})  # OCPI 2.2.1 §12.4.4
WHITELISTS: Final = frozenset({"ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER"})  # OCPI 2.2.1 §12.4.5
# OCPI 2.2.1 §12.4.1 AllowedType -> the OCPP authorization status a charger gets.
ALLOWED: Final = {
    "ALLOWED": AuthStatus.ACCEPTED,
    "BLOCKED": AuthStatus.BLOCKED,
    "EXPIRED": AuthStatus.EXPIRED,
    "NO_CREDIT": AuthStatus.BLOCKED,
    "NOT_ALLOWED": AuthStatus.INVALID,
}
# Whitelist rules (OCPI 2.2.1 §12.4.5): which tokens are decided from our copy without asking the partner ...
LOCAL: Final = frozenset({"ALWAYS", "ALLOWED"})
# ... and which may still be decided from our copy when the partner cannot be reached.
OFFLINE_OK: Final = frozenset({"ALWAYS", "ALLOWED", "ALLOWED_OFFLINE"})
REALTIME_TIMEOUT_S: Final = 5.0  # a charger waits for its Authorize answer meanwhile (OCPP timeouts ~30 s)
REALTIME_TTL: Final = timedelta(minutes=10)  # a real-time answer also decides the session's start soon after
MAX_CACHED: Final = 10_000


def _text(body: dict[str, Any], name: str, max_len: int, *, optional: bool = False) -> None:
    value = body.get(name)
    if value is None and optional:
        return
    if not isinstance(value, str) or not 1 <= len(value) <= max_len:
        fail(Status.INVALID_PARAMETERS, f"{name} must be a string of 1-{max_len} characters")


def check_token(body: Any, key: TokenKey) -> tuple[bool, str, datetime]:
    """(valid, whitelist, last_updated) of an OCPI 2.2.1 §12.3.2 Token whose ids must be ``key``; 2001 if not."""
    if not isinstance(body, dict):
        fail(Status.INVALID_PARAMETERS, "a token must be a JSON object")
    _text(body, "country_code", 2)
    _text(body, "party_id", 3)
    _text(body, "uid", 36)
    _text(body, "contract_id", 36)
    _text(body, "issuer", 64)
    _text(body, "visual_number", 64, optional=True)
    _text(body, "group_id", 36, optional=True)
    if body.get("type") not in TOKEN_TYPES:
        fail(Status.INVALID_PARAMETERS, f"type must be one of {sorted(TOKEN_TYPES)}")
    if body.get("whitelist") not in WHITELISTS:
        fail(Status.INVALID_PARAMETERS, f"whitelist must be one of {sorted(WHITELISTS)}")
    if not isinstance(body.get("valid"), bool):
        fail(Status.INVALID_PARAMETERS, "valid must be true or false")
    ids = (body["country_code"].upper(), body["party_id"].upper(), body["uid"], body["type"])
    if (ids[0], ids[1], ids[2].upper(), ids[3]) != (key[0], key[1], key[2].upper(), key[3]):
        fail(Status.INVALID_PARAMETERS, "the token's country_code, party_id, uid and type must match the URL")
    updated = parse_time(body.get("last_updated"), "last_updated")  # type: ignore[arg-type]
    return body["valid"], body["whitelist"], updated


def put_token(store: CsmsStore, partner: Partner, key: TokenKey, body: Any) -> bool:
    """Store a partner's token (PUT); whether it is new. The party in the URL must be one of the partner's."""
    _own_party(partner, key)
    valid, whitelist, updated = check_token(body, key)
    return store.ocpi_put_token(
        partner.id, key, valid=valid, whitelist=whitelist, body=to_json(body), updated=updated
    )


def patch_token(store: CsmsStore, partner: Partner, key: TokenKey, patch: Any) -> None:
    """Update fields of a stored token (PATCH; last_updated required); 2004 (HTTP 404) if we have no such token."""
    _own_party(partner, key)
    found = store.ocpi_token(key)
    if found is None or found[0] != partner.id:
        fail(Status.UNKNOWN_TOKEN, "unknown token", 404)
    if not isinstance(patch, dict) or "last_updated" not in patch:
        fail(Status.INVALID_PARAMETERS, "a PATCH is an object with last_updated")
    merged = {**json.loads(found[1]), **patch}
    valid, whitelist, updated = check_token(merged, key)
    store.ocpi_put_token(
        partner.id, key, valid=valid, whitelist=whitelist, body=to_json(merged), updated=updated
    )


def get_token(store: CsmsStore, partner: Partner, key: TokenKey) -> Any:
    """The partner's token as we hold it; 2004 (HTTP 404) if unknown."""
    _own_party(partner, key)
    found = store.ocpi_token(key)
    if found is None or found[0] != partner.id:
        fail(Status.UNKNOWN_TOKEN, "unknown token", 404)
    return json.loads(found[1])


def _own_party(partner: Partner, key: TokenKey) -> None:
    if not any(
        r.country_code == key[0] and r.party_id == key[1] for r in partner.roles if r.role in ("EMSP", "HUB")
    ):
        fail(Status.CLIENT_ERROR, "the party in the URL is not one of this partner's eMSP roles", 403)


class RoamingTokens:
    """The domain's roaming port (`backend_stub.domain.roaming`) over the stored tokens and the partners."""

    def __init__(
        self,
        store: CsmsStore,
        client: Client,
        clock: Callable[[], datetime],
        routing: Callable[[Partner], dict[str, str]],
    ) -> None:
        """Decide from ``store``; real-time requests through ``client``."""
        self.store = store
        self.client = client
        self.clock = clock
        self.routing = routing
        self._answers: dict[str, tuple[datetime, AuthStatus]] = {}  # uid -> recent real-time answer

    def remember(self, partner: Partner, key: TokenKey, body: dict[str, Any], status: AuthStatus) -> None:
        """Keep a token a partner sent with a command, and its decision, as a real-time answer."""
        valid, whitelist, updated = check_token(body, key)
        if self.store.ocpi_token(key) is None:
            self.store.ocpi_put_token(
                partner.id, key, valid=valid, whitelist=whitelist, body=to_json(body), updated=updated
            )
        self._remember(key[2], status)

    def _remember(self, uid: str, status: AuthStatus) -> None:
        if len(self._answers) >= MAX_CACHED:
            self._answers.clear()
        self._answers[uid.upper()] = (self.clock(), status)

    def status(self, id_tag: str) -> AuthStatus | None:
        """Without asking: a recent real-time answer, else the whitelist rules as if the partner were away."""
        token = self.store.ocpi_token_by_uid(id_tag)
        if token is None:
            return None
        recent = self._answers.get(token.uid.upper())
        if recent is not None and self.clock() - recent[0] < REALTIME_TTL:
            return recent[1]
        return self._offline(token)

    @staticmethod
    def _offline(token: RoamingToken) -> AuthStatus:
        return AuthStatus.ACCEPTED if token.valid and token.whitelist in OFFLINE_OK else AuthStatus.INVALID

    async def authorize(self, cp_id: str, id_tag: str) -> AuthStatus | None:
        """ALWAYS/ALLOWED from our copy; ALLOWED_OFFLINE/NEVER asked of the partner (POST .../authorize)."""
        token = self.store.ocpi_token_by_uid(id_tag)
        if token is None:
            return None
        if token.whitelist in LOCAL:
            return AuthStatus.ACCEPTED if token.valid else AuthStatus.INVALID
        partner = self.store.ocpi_partner(token.partner_id)
        url = partner.endpoint("tokens", "SENDER")
        try:
            if url is None or partner.outgoing_token is None:
                raise CallFailed("the partner offers no tokens endpoint")
            answer = await self.client.call(
                "POST",
                f"{url.rstrip('/')}/{token.uid}/authorize?type={token.type}",
                partner.outgoing_token,
                body={"location_id": cp_id},
                routing=self.routing(partner),
                timeout_s=REALTIME_TIMEOUT_S,
            )
            allowed = answer.data.get("allowed") if isinstance(answer.data, dict) else None
            if allowed not in ALLOWED:
                raise CallFailed(f"AuthorizationInfo.allowed is {str(allowed)[:20]!r}")
            status = ALLOWED[allowed]
        except CallFailed as exc:
            if exc.status_code == int(Status.UNKNOWN_TOKEN):
                status = AuthStatus.INVALID  # the partner does not know the token: refused, not "offline"
            else:
                log.warning("real-time authorization of %s at partner %d failed: %s", id_tag, partner.id, exc)
                return self._offline(token)
        self._remember(token.uid, status)
        return status
