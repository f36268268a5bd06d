"""A second OCPI 2.2.1 party for tests: a small eMSP on aiohttp over loopback (127.0.0.1 only).

It registers with us and lets us register with it (the credentials handshake both ways), receives pushed
locations, tariffs, sessions and CDRs, and can be taken down (HTTP 503) to test retries. It is a real HTTP peer
speaking the wire format independently of backend_stub.ocpi (its own base64, envelope and checks).
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

VERSION = "2.2.1"


def auth(token: str) -> dict[str, str]:
    """The 2.2.1 Authorization header."""
    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


def answer(data: Any, status_code: int = 1000, http: int = 200) -> web.Response:
    """An OCPI envelope."""
    body = {"status_code": status_code, "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if data is not None:
        body["data"] = data
    return web.json_response(body, status=http)


class EmspParty:
    """An eMSP platform (NL/EMS) with its own versions, credentials and Receiver endpoints."""

    def __init__(self, country_code: str = "NL", party_id: str = "EMS", role: str = "EMSP") -> None:
        self.country_code = country_code
        self.party_id = party_id
        self.role = role
        self.token_a = "emsp-token-a-" + secrets.token_hex(8)  # what it gives a CPO that registers with it
        self.accepted: set[str] = {self.token_a}  # tokens it accepts on its endpoints
        self.token_for_cpo: str | None = None  # the token it calls the CPO with
        self.cpo_versions_url: str | None = None
        self.down = False  # when set, every push answers HTTP 503
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, headers) of pushes
        self.locations: dict[str, Any] = {}  # path tail -> last PUT
        self.patches: list[tuple[str, Any]] = []
        self.tariffs: dict[str, Any] = {}
        self.sessions: dict[str, Any] = {}
        self.cdrs: list[Any] = []
        self.unknown_evses = False  # answer 2003 to a PATCH of an EVSE it never got
        self.allowed: dict[str, str] = {}  # uid -> AuthorizationInfo.allowed it answers (else 2004)
        self.authorize_requests: list[tuple[str, Any]] = []
        self.results: list[tuple[str, Any]] = []  # CommandResults posted to our response_url
        self.app = web.Application()
        r = self.app.router
        r.add_get("/ocpi/versions", self._versions)
        r.add_get(f"/ocpi/{VERSION}", self._details)
        r.add_post(f"/ocpi/{VERSION}/credentials", self._credentials)
        r.add_put(f"/ocpi/{VERSION}/credentials", self._credentials)
        r.add_delete(f"/ocpi/{VERSION}/credentials", self._delete)
        r.add_post(f"/ocpi/{VERSION}/tokens/{{uid}}/authorize", self._authorize)
        r.add_route("*", f"/ocpi/{VERSION}/{{module}}/{{tail:.*}}", self._push)
        r.add_post(f"/ocpi/{VERSION}/cdrs", self._cdr)
        self._runner: web.AppRunner | None = None
        self.base = ""

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def versions_url(self) -> str:
        return f"{self.base}/ocpi/versions"

    def credentials(self, token: str) -> dict[str, Any]:
        return {
            "token": token,
            "url": self.versions_url,
            "roles": [
                {
                    "role": self.role,
                    "business_details": {"name": "Test eMSP"},
                    "party_id": self.party_id,
                    "country_code": self.country_code,
                }
            ],
        }

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        try:
            token = base64.b64decode(value, validate=True).decode()
        except ValueError:
            return False
        return scheme == "Token" and token in self.accepted

    async def _versions(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return answer(None, 2000, 401)
        return answer([{"version": VERSION, "url": f"{self.base}/ocpi/{VERSION}"}])

    async def _details(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return answer(None, 2000, 401)
        base = f"{self.base}/ocpi/{VERSION}"
        endpoints = (
            [
                {"identifier": "credentials", "role": "SENDER", "url": f"{base}/credentials"},
                {"identifier": "credentials", "role": "RECEIVER", "url": f"{base}/credentials"},
            ]
            + [
                {"identifier": m, "role": "RECEIVER", "url": f"{base}/{m}"}
                for m in ("locations", "tariffs", "sessions", "cdrs")
            ]
            + [{"identifier": "tokens", "role": "SENDER", "url": f"{base}/tokens"}]
        )
        return answer({"version": VERSION, "endpoints": endpoints})

    async def _credentials(self, request: web.Request) -> web.Response:
        """A CPO registers with us (or rotates): check its versions with its token, answer ours."""
        if not self._authorized(request):
            return answer(None, 2000, 401)
        body = await request.json()
        async with (
            aiohttp.ClientSession() as session,
            session.get(body["url"], headers=auth(body["token"])) as response,
        ):
            if response.status != 200:
                return answer(None, 3001)
        self.cpo_versions_url = body["url"]
        self.token_for_cpo = body["token"]
        ours = "emsp-token-" + secrets.token_hex(8)
        self.accepted = {ours}  # token A (or the old token) is spent
        return answer(self.credentials(ours))

    async def _delete(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return answer(None, 2000, 401)
        self.accepted = set()
        return answer(None)

    async def _push(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return answer(None, 2000, 401)
        if self.down:
            return web.Response(status=503, text="down for maintenance")
        self.requests.append((request.method, request.path, dict(request.headers)))
        module, tail = request.match_info["module"], request.match_info["tail"]
        body = await request.json()
        if module == "locations" and request.method == "PUT":
            self.locations[tail] = body
        elif module == "locations" and request.method == "PATCH":
            if self.unknown_evses and tail.rpartition("/")[0] not in self.locations:
                return answer(None, 2003, 404)
            self.patches.append((tail, body))
        elif module == "tariffs":
            self.tariffs[tail] = body
        elif module == "sessions":
            self.sessions[tail] = body
        elif module == "results":
            self.results.append((tail, body))
        return answer(None)

    async def _authorize(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return answer(None, 2000, 401)
        if self.down:
            return web.Response(status=503, text="down for maintenance")
        uid = request.match_info["uid"]
        self.authorize_requests.append((uid, await request.json()))
        if uid not in self.allowed:
            return answer(None, 2004, 404)
        return answer({"allowed": self.allowed[uid], "token": {"uid": uid}})

    def token(self, uid: str, whitelist: str = "ALWAYS", valid: bool = True) -> dict[str, Any]:
        return {
            "country_code": self.country_code,
            "party_id": self.party_id,
            "uid": uid,
            "type": "RFID",
            "contract_id": f"NL-EMS-C{uid[-6:]}",
            "issuer": "Test eMSP",
            "valid": valid,
            "whitelist": whitelist,
            "last_updated": "2026-11-22T09:00:00Z",
        }

    async def send(self, method: str, url: str, body: Any) -> tuple[int, Any]:
        """A request to the CPO with our token: (HTTP status, envelope)."""
        headers = auth(self.token_for_cpo or "")
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, url, json=body, headers=headers) as r,
        ):
            return r.status, await r.json()

    async def _cdr(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return answer(None, 2000, 401)
        if self.down:
            return web.Response(status=503, text="down for maintenance")
        self.requests.append((request.method, request.path, dict(request.headers)))
        self.cdrs.append(json.loads(await request.read()))
        return answer(None)

    async def register_with(self, cpo_versions_url: str, token_a: str) -> dict[str, Any]:
        """We (the eMSP) register with a CPO from its versions URL and the token A it gave us."""
        ours = "emsp-token-b-" + secrets.token_hex(8)
        self.accepted.add(ours)
        async with aiohttp.ClientSession() as session:
            async with session.get(cpo_versions_url, headers=auth(token_a)) as r:
                answered: dict[str, Any] = await r.json()
                if answered["status_code"] != 1000:
                    return answered
                versions = answered["data"]
            async with session.get(versions[0]["url"], headers=auth(token_a)) as r:
                endpoints = (await r.json())["data"]["endpoints"]
            url = next(e["url"] for e in endpoints if e["identifier"] == "credentials")
            async with session.post(url, json=self.credentials(ours), headers=auth(token_a)) as r:
                body: dict[str, Any] = await r.json()
        if body.get("status_code") == 1000:
            self.token_for_cpo = body["data"]["token"]
            self.cpo_versions_url = cpo_versions_url
        return body

    async def get(
        self, url: str, token: str | None = None, **headers: str
    ) -> tuple[int, dict[str, Any], Any]:
        """GET an OCPI URL of the CPO with our token: (HTTP status, headers, envelope)."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, headers={**auth(token or self.token_for_cpo or ""), **headers}) as r,
        ):
            return r.status, dict(r.headers), await r.json()
