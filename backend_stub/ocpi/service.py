"""The CPO role's logic: the credentials handshake both ways, and durable pushes of domain changes to partners."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final

from backend_stub.domain.central import Central
from backend_stub.ocpi import objects
from backend_stub.ocpi.client import CallFailed, Client, needs
from backend_stub.ocpi.config import OcpiConfig
from backend_stub.ocpi.protocol import (
    MAX_TOKEN_LENGTH,
    MAX_URL_LENGTH,
    ROLES,
    VERSION,
    OcpiError,
    Status,
    fail,
    token_digest,
)
from backend_stub.ocpi.tokens import LOCAL, RoamingTokens
from backend_stub.store import CsmsStore, Transaction, UnknownCharger, UnknownTransaction
from backend_stub.store.ocpi import Partner, PartnerRole, PartyTaken, Push

log = logging.getLogger(__name__)

_PARTY_ID = re.compile(r"[A-Za-z0-9]{3}")
_COUNTRY = re.compile(r"[A-Za-z]{2}")
# The modules we offer and the interface role we implement (OCPI 2.2.1 §6.2.2 Endpoint, §16.4 InterfaceRole).
MODULES: Final = (
    ("credentials", "SENDER"),
    ("credentials", "RECEIVER"),
    ("locations", "SENDER"),
    ("tariffs", "SENDER"),
    ("sessions", "SENDER"),
    ("cdrs", "SENDER"),
    ("tokens", "RECEIVER"),
    ("commands", "RECEIVER"),
)
MAX_ENDPOINTS: Final = 50
# A queued push's kind -> the partner's module it goes to (in the partner's RECEIVER interface).
PUSH_MODULE: Final = {
    "evse": "locations",
    "location": "locations",
    "tariff": "tariffs",
    "session": "sessions",
    "cdr": "cdrs",
}


def new_token() -> str:
    """A fresh credentials token (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def parse_credentials(body: Any) -> tuple[str, str, list[PartnerRole]]:
    """(token, versions url, roles) of an OCPI 2.2.1 §7.3.1 Credentials object; 2001 if malformed."""
    if not isinstance(body, dict):
        fail(Status.INVALID_PARAMETERS, "credentials must be a JSON object")
    token, url, roles = body.get("token"), body.get("url"), body.get("roles")
    if not isinstance(token, str) or not 1 <= len(token) <= MAX_TOKEN_LENGTH or not token.isprintable():
        fail(
            Status.INVALID_PARAMETERS, f"token must be a string of 1-{MAX_TOKEN_LENGTH} printable characters"
        )
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH or not url.startswith(("http://", "https://")):
        fail(Status.INVALID_PARAMETERS, f"url must be an http(s) URL of at most {MAX_URL_LENGTH} characters")
    if not isinstance(roles, list) or not 1 <= len(roles) <= 20:
        fail(Status.INVALID_PARAMETERS, "roles must be a list of 1-20 CredentialsRole objects")
    parsed: list[PartnerRole] = []
    for i, r in enumerate(roles):
        if not isinstance(r, dict):
            fail(Status.INVALID_PARAMETERS, f"roles[{i}] must be an object")
        role, party, country = r.get("role"), r.get("party_id"), r.get("country_code")
        details = r.get("business_details")
        name = details.get("name") if isinstance(details, dict) else None
        if role not in ROLES:
            fail(Status.INVALID_PARAMETERS, f"roles[{i}].role must be one of {sorted(ROLES)}")
        if not isinstance(party, str) or not _PARTY_ID.fullmatch(party):
            fail(Status.INVALID_PARAMETERS, f"roles[{i}].party_id must be 3 letters or digits")
        if not isinstance(country, str) or not _COUNTRY.fullmatch(country):
            fail(Status.INVALID_PARAMETERS, f"roles[{i}].country_code must be 2 letters")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            fail(Status.INVALID_PARAMETERS, f"roles[{i}].business_details.name must be 1-100 characters")
        # CiString: compared case-insensitively, kept upper case.
        parsed.append(PartnerRole(role, country.upper(), party.upper(), name))
    if len({(r.country_code, r.party_id, r.role) for r in parsed}) != len(parsed):
        fail(Status.INVALID_PARAMETERS, "roles lists the same party and role twice")
    return token, url, parsed


class Ocpi:
    """The OCPI CPO role of one central system: partners, the handshake, and the durable push queue."""

    def __init__(
        self,
        central: Central,
        config: OcpiConfig,
        base_url: Callable[[], str],
        *,
        client: Client | None = None,
    ) -> None:
        """Serve ``central``'s data as ``config``'s party; ``base_url`` is this server's public HTTP base URL."""
        self.central = central
        self.store: CsmsStore = central.store
        self.config = config
        self.clock: Callable[[], datetime] = central.clock
        self._base_url = base_url
        self.client = client if client is not None else Client(config.timeout_s)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        central.hooks.observers.add(self)
        self.tokens = RoamingTokens(self.store, self.client, self.clock, self.routing)
        central.hooks.roaming = self.tokens

    # ---- our identity

    @property
    def versions_url(self) -> str:
        """Where partners find our versions (OCPI 2.2.1 §6.1)."""
        return f"{(self.config.public_url or self._base_url()).rstrip('/')}/ocpi/versions"

    @property
    def details_url(self) -> str:
        """Our 2.2.1 version details."""
        return self.versions_url.removesuffix("/versions") + "/" + VERSION

    def endpoints(self) -> list[dict[str, str]]:
        """Our modules and their URLs (OCPI 2.2.1 §6.2.2)."""
        base = self.details_url
        return [{"identifier": m, "role": r, "url": f"{base}/{m}"} for m, r in MODULES]

    def our_credentials(self, token: str) -> dict[str, Any]:
        """Our Credentials object (OCPI 2.2.1 §7.3.1) carrying ``token``."""
        return {"token": token, "url": self.versions_url, "roles": [self.config.party()]}

    def routing(self, partner: Partner) -> dict[str, str]:
        """Hub routing headers of a call from us to ``partner`` (OCPI 2.2.1 §4.1.3)."""
        headers = {
            "OCPI-from-country-code": self.config.country_code,
            "OCPI-from-party-id": self.config.party_id,
        }
        if partner.roles:
            headers["OCPI-to-country-code"] = partner.roles[0].country_code
            headers["OCPI-to-party-id"] = partner.roles[0].party_id
        return headers

    # ---- the handshake

    def create_token_a(self, name: str) -> tuple[int, str]:
        """A pending partner and the token A the operator hands it out of band (shown once, kept as a digest)."""
        token = new_token()
        partner_id = self.store.ocpi_create_partner(name, token_digest(token), self.clock())
        return partner_id, token

    async def fetch_endpoints(self, versions_url: str, token: str) -> list[tuple[str, str, str]]:
        """The partner's 2.2.1 endpoints from its versions URL; OcpiError 3001/3002/3003 if unusable."""
        try:
            versions = (await self.client.call("GET", versions_url, token)).data
            needs(isinstance(versions, list), Status.UNUSABLE_API, "versions is not a list")
            match = [v for v in versions if isinstance(v, dict) and v.get("version") == VERSION]
            needs(bool(match), Status.UNSUPPORTED_VERSION, f"the partner offers no version {VERSION}")
            url = match[0].get("url")
            if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
                raise CallFailed("the version's url is not a URL", int(Status.UNUSABLE_API))
            details = (await self.client.call("GET", url, token)).data
            raw = details.get("endpoints") if isinstance(details, dict) else None
            if not isinstance(raw, list) or len(raw) > MAX_ENDPOINTS:
                raise CallFailed("the version details have no endpoints list", int(Status.UNUSABLE_API))
        except CallFailed as exc:
            code = exc.status_code if exc.status_code in (3002, 3003) else Status.UNUSABLE_API
            raise OcpiError(Status(code), f"cannot use the partner's API: {exc}") from None
        endpoints = [
            (e["identifier"], e["role"], e["url"])
            for e in raw
            if isinstance(e, dict)
            and all(isinstance(e.get(k), str) for k in ("identifier", "role", "url"))
            and e["role"] in ("SENDER", "RECEIVER")
            and len(e["url"]) <= MAX_URL_LENGTH
            and len(e["identifier"]) <= 40
        ]
        if not endpoints:
            fail(Status.NO_MATCHING_ENDPOINTS, "the partner lists no usable endpoints")
        return endpoints

    async def accept_credentials(self, partner: Partner, body: Any) -> dict[str, Any]:
        """A partner's POST (registration with token A) or PUT (rotation): check its API, store, answer ours.

        OCPI 2.2.1 §7.2.2/§7.2.3: we fetch its versions and endpoints with the token it gave us, then answer
        a new token for it to call us with; the token it used before (A, or the old one) stops working.
        """
        token, url, roles = parse_credentials(body)
        endpoints = await self.fetch_endpoints(url, token)
        ours = new_token()
        try:
            registered = self.store.ocpi_register(
                partner.id,
                incoming_sha256=token_digest(ours),
                outgoing_token=token,
                versions_url=url,
                version=VERSION,
                endpoints=endpoints,
                roles=roles,
                at=self.clock(),
            )
        except PartyTaken as exc:
            fail(Status.CLIENT_ERROR, str(exc), 409)
        self.initial_sync(registered)
        return self.our_credentials(ours)

    async def register_with(self, name: str, versions_url: str, token_a: str) -> Partner:
        """We register with a partner from its versions URL and the token A it gave us (OCPI 2.2.1 §7.2.1).

        Raises OcpiError (3001/3002/3003) if its API cannot be used; the partner row then stays unregistered.
        """
        partner_id = self.store.ocpi_create_partner(name, None, self.clock())
        try:
            endpoints = await self.fetch_endpoints(versions_url, token_a)
            credentials_url = _endpoint(endpoints, "credentials")
            if credentials_url is None:
                fail(Status.NO_MATCHING_ENDPOINTS, "the partner has no credentials endpoint")
            ours = new_token()
            # It may call our versions with our token while our POST is in flight: accept that token first.
            self.store.ocpi_set_incoming(partner_id, token_digest(ours), token_a, self.clock())
            try:
                answer = await self.client.call(
                    "POST", credentials_url, token_a, body=self.our_credentials(ours)
                )
            except CallFailed as exc:
                fail(Status.UNUSABLE_API, f"the partner refused our credentials: {exc}")
            token, url, roles = parse_credentials(answer.data)
            endpoints = await self.fetch_endpoints(url, token)
            registered = self.store.ocpi_register(
                partner_id,
                incoming_sha256=token_digest(ours),
                outgoing_token=token,
                versions_url=url,
                version=VERSION,
                endpoints=endpoints,
                roles=roles,
                at=self.clock(),
            )
        except (OcpiError, PartyTaken) as exc:
            self.store.ocpi_unregister(partner_id, self.clock(), f"registration failed: {exc}")
            raise
        self.initial_sync(registered)
        return registered

    async def unregister(self, partner_id: int) -> None:
        """Unregister from a partner (DELETE its credentials, best effort) and revoke every token of it."""
        partner = self.store.ocpi_partner(partner_id)
        url = _endpoint(partner.endpoints, "credentials")
        if partner.status == "registered" and url and partner.outgoing_token:
            with contextlib.suppress(CallFailed):
                await self.client.call("DELETE", url, partner.outgoing_token, routing=self.routing(partner))
        self.store.ocpi_unregister(partner_id, self.clock())

    # ---- pushes (the domain observer)

    def _receivers(self, module: str) -> list[Partner]:
        return [
            p
            for p in self.store.ocpi_partners()
            if p.status == "registered" and p.endpoint(module, "RECEIVER") is not None
        ]

    def _enqueue(self, partners: list[Partner], kind: str, object_id: str) -> None:
        if partners:
            self.store.ocpi_enqueue([p.id for p in partners], kind, object_id, self.clock())
            self._wake.set()

    def initial_sync(self, partner: Partner) -> None:
        """Queue every published location and tariff for a newly registered partner."""
        if partner.endpoint("locations", "RECEIVER"):
            for charger in self.store.chargers():
                if objects.publishable(charger):
                    self._enqueue([partner], "location", charger.id)
        if partner.endpoint("tariffs", "RECEIVER"):
            for tariff_id in self.store.tariff_ids():
                self._enqueue([partner], "tariff", tariff_id)

    def status_changed(self, cp_id: str, evse: int) -> None:
        """Queue the EVSE's new status (the whole location when connector 0, the charger, changed)."""
        partners = self._receivers("locations")
        if evse == 0:
            self._enqueue(partners, "location", cp_id)
        else:
            self._enqueue(partners, "evse", f"{cp_id}|{evse}")

    def session_changed(self, tx_id: int) -> None:
        """Queue the session for the partner whose token it runs on."""
        self._enqueue(self._owners(tx_id, "sessions"), "session", str(tx_id))

    def session_ended(self, tx_id: int) -> None:
        """Queue the ended session and its CDR for the partner whose token it ran on."""
        self._enqueue(self._owners(tx_id, "sessions"), "session", str(tx_id))
        self._enqueue(self._owners(tx_id, "cdrs"), "cdr", str(tx_id))

    def tariffs_changed(self, tariff_id: str) -> None:
        """Queue the tariff for every partner taking tariffs."""
        self._enqueue(self._receivers("tariffs"), "tariff", tariff_id)

    def _owners(self, tx_id: int, module: str) -> list[Partner]:
        """The partner whose token a session runs on (sessions and CDRs go only to it), if it takes ``module``."""
        try:
            tx = self.store.transaction(tx_id)
        except UnknownTransaction:
            return []
        token = self.store.ocpi_token_by_uid(tx.id_tag)
        if token is None:
            return []
        partner = self.store.ocpi_partner(token.partner_id)
        ok = partner.status == "registered" and partner.endpoint(module, "RECEIVER") is not None
        return [partner] if ok else []

    def session_owner(self, id_tag: str) -> tuple[str, str, str]:
        """(country_code, party_id, OCPI AuthMethod) of the token a session runs on: ours unless a partner's.

        A token whose whitelist rules need the partner's real-time answer was authorized by AUTH_REQUEST.
        """
        token = self.store.ocpi_token_by_uid(id_tag)
        if token is None:
            return self.config.country_code, self.config.party_id, "WHITELIST"
        method = "WHITELIST" if token.whitelist in LOCAL else "AUTH_REQUEST"
        return token.country_code, token.party_id, method

    # ---- the push worker

    def start(self) -> None:
        """Start sending queued pushes (kept by reference; a crash is logged)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="ocpi-push")

    async def close(self) -> None:
        """Stop the push worker and close the HTTP client; what is queued stays queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.client.close()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                due = self.store.ocpi_due(self.clock())
                if due:
                    await asyncio.gather(*(self._send(p) for p in due))
                    continue
                next_at = self.store.ocpi_next_attempt()
            except Exception:
                log.exception("OCPI push worker failed; retrying")
                next_at = self.clock() + timedelta(seconds=self.config.retry_base_s)
            delay = None if next_at is None else max(0.0, (next_at - self.clock()).total_seconds())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def _send(self, push: Push) -> None:
        """Send one push; on success it leaves the queue, on failure it waits (back-off), blocking the partner."""
        partner = self.store.ocpi_partner(push.partner_id)
        try:
            request = self._request(partner, push)
            if request is not None:
                await self._deliver(partner, push, *request)
        except Exception as exc:
            # A push that cannot even be built (a bug, a store error) backs off like a refused one: it never
            # spins, and the partner's queue waits behind it rather than skipping it.
            if not isinstance(exc, CallFailed):
                log.exception("OCPI push %s %s could not be sent", push.kind, push.object_id)
            delay = min(self.config.retry_base_s * 2 ** min(push.attempts, 30), self.config.retry_max_s)
            log.warning(
                "OCPI push %s %s to partner %d failed (%s); retry in %.0f s",
                push.kind,
                push.object_id,
                partner.id,
                exc,
                delay,
            )
            self.store.ocpi_push_failed(push, self.clock() + timedelta(seconds=delay), str(exc))
            self.store.ocpi_contact(partner.id, self.clock(), str(exc))
            return
        self.store.ocpi_pushed(push)
        if push.kind == "result":
            self.store.ocpi_result_sent(int(push.object_id))
        self.store.ocpi_contact(partner.id, self.clock(), None)

    async def _deliver(self, partner: Partner, push: Push, method: str, url: str, body: Any) -> None:
        token = partner.outgoing_token
        if token is None:
            raise CallFailed("no token to call the partner with")
        try:
            await self.client.call(method, url, token, body=body, routing=self.routing(partner))
        except CallFailed as exc:
            # A status PATCH for an EVSE the partner does not know yet: send the whole location instead.
            if push.kind != "evse" or exc.status_code != int(Status.UNKNOWN_LOCATION):
                raise
            cp_id = push.object_id.partition("|")[0]
            fallback = self._request(
                partner, Push(push.id, push.partner_id, "location", cp_id, 0, 0, push.next_attempt_at, None)
            )
            if fallback is not None:
                await self.client.call(
                    fallback[0], fallback[1], token, body=fallback[2], routing=self.routing(partner)
                )

    def command_result(self, partner: Partner, response_url: str, result: str) -> None:
        """Queue a CommandResult (OCPI 2.2.1 §13.3.2) for the partner's response_url: retried, durable."""
        self.store.ocpi_add_result(partner.id, response_url, result, self.clock())
        self._wake.set()

    def _request(self, partner: Partner, push: Push) -> tuple[str, str, Any] | None:
        """(method, url, body) of a push, built from the current state; None if there is nothing to send."""
        if push.kind == "result":
            kept = self.store.ocpi_result(int(push.object_id))
            return None if kept is None else ("POST", kept[0], {"result": kept[1]})
        base = partner.endpoint(PUSH_MODULE.get(push.kind, ""), "RECEIVER")
        if base is None:
            return None
        base = base.rstrip("/")
        party = f"{self.config.country_code}/{self.config.party_id}"
        now = self.clock()
        if push.kind in ("location", "evse"):
            cp_id, _, evse = push.object_id.partition("|")
            charger = self.store.charger(cp_id)
            if charger is None or not objects.publishable(charger):
                return None
            location = objects.location(self.store, self.config, charger, now)
            if push.kind == "location":
                return "PUT", f"{base}/{party}/{cp_id}", location
            uid = objects.evse_uid(cp_id, int(evse))
            found = [e for e in location["evses"] if e["uid"] == uid]
            if not found:
                return None
            patch = {"status": found[0]["status"], "last_updated": found[0]["last_updated"]}
            return "PATCH", f"{base}/{party}/{cp_id}/{uid}", patch
        if push.kind == "tariff":
            rows = [t for t in self.store.ocpi_tariffs() if t[0] == push.object_id]
            if not rows:
                return None
            return "PUT", f"{base}/{party}/{push.object_id}", objects.tariff(self.config, *rows[0])
        try:
            tx = self.store.transaction(int(push.object_id))
        except (UnknownTransaction, UnknownCharger, ValueError):
            return None
        owner = self.session_owner(tx.id_tag)
        if push.kind == "session":
            return "PUT", f"{base}/{party}/{tx.id}", self.session_object(tx)
        if push.kind == "cdr" and not tx.active:
            return "POST", base, objects.cdr(self.config, self.store, tx, owner)
        return None

    def session_object(self, tx: Transaction) -> dict[str, Any]:
        """The OCPI Session of ``tx`` now: its cost so far (running) or as charged (ended)."""
        cost = objects.charged(tx) if not tx.active else self._running_cost(tx)
        return objects.session(self.config, self.store, tx, self.session_owner(tx.id_tag), cost, self.clock())

    def _running_cost(self, tx: Transaction) -> tuple[int, int] | None:
        cdr = self.central.pricing.cdr(tx, self.clock(), tx.last_meter_wh)
        return None if cdr is None else (cdr.total_cost_excl_vat, cdr.total_cost_incl_vat)


def _endpoint(endpoints: Any, identifier: str) -> str | None:
    """A credentials-like module's URL from a list of (identifier, role, url), RECEIVER preferred."""
    found = {role: url for ident, role, url in endpoints if ident == identifier}
    return found.get("RECEIVER") or found.get("SENDER")
