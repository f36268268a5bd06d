"""Hostile chargers and operators against the bundled central system's newest surfaces, over real sockets on
127.0.0.1: SignCertificate (A02), NotifyChargingLimit / ClearedChargingLimit (K12/K13), the WebSocket handshake
(`backend_stub.ocpp.handshake`) and the REST operations' 2.0.1 fields. Each attack once broke a bound or an answer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from ocpp.v201 import call as call201
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from backend_stub.app import Csms
from backend_stub.domain.ca import CSR_PER_HOUR, CertificateAuthority, SigningQuota
from backend_stub.ocpp.handshake import PasswordShape, offered_subprotocols
from backend_stub.ocpp.server import MAX_PROBLEM_CHARS
from backend_stub.store import CsmsStore
from backend_stub.testing.server import ScriptedCentralSystem
from tests.integration.conftest import until
from tests.integration.test_csms_ca import make_csr
from tests.integration.test_csms_operations import Station201
from tests.integration.test_csms_ops import scrape

ADMIN_TOKEN = "attack-review-admin-token-0123"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PASSWORD = "attack-review-password-0123"
CP = "CS-A"
BOOT = {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"}


def basic(cp_id: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{cp_id}:{password}".encode()).decode()}


@pytest.fixture
async def csms(tmp_path: Path, ca: CertificateAuthority) -> AsyncIterator[Csms]:
    with CsmsStore(tmp_path / "csms.db") as store:
        store.add_charger(CP, PASSWORD)
        store.add_charger("CS-B", PASSWORD)
        app = Csms(store, admin_token=ADMIN_TOKEN, ca=ca)
        await app.start()
        try:
            yield app
        finally:
            await app.stop()


class Raw:
    """A 2.0.1 station speaking raw frames: answers every server CALL (CertificateSigned etc.) Accepted."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.server_calls: list[list[Any]] = []

    async def call(self, unique_id: str, action: str, payload_json: str) -> list[Any]:
        """Send ``[2, id, action, <payload_json as is>]`` (so NaN and 1e309 reach the server) and wait for the
        answer."""
        await self.ws.send(f'[2,"{unique_id}","{action}",{payload_json}]')
        async with asyncio.timeout(10):
            while True:
                frame = json.loads(await self.ws.recv())
                if frame[0] == 2:
                    self.server_calls.append(frame)
                    await self.ws.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
                elif frame[1] == unique_id:
                    return list(frame)


@contextlib.asynccontextmanager
async def booted(url: str, cp_id: str, version: str) -> AsyncIterator[Raw]:
    """A raw station ``cp_id`` (password PASSWORD) speaking ``version``, booted."""
    boot = BOOT if version == "ocpp2.0.1" else {"chargePointVendor": "V", "chargePointModel": "M"}
    async with connect(
        f"{url}/{cp_id}",
        subprotocols=[version],  # type: ignore[list-item]
        additional_headers=basic(cp_id, PASSWORD),
    ) as ws:
        raw = Raw(ws)
        assert (await raw.call("boot", "BootNotification", json.dumps(boot)))[2]["status"] == "Accepted"
        yield raw


@pytest.fixture
async def station(csms: Csms) -> AsyncIterator[Raw]:
    async with connect(
        f"{csms.url}/{CP}",
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        additional_headers=basic(CP, PASSWORD),
    ) as ws:
        raw = Raw(ws)
        assert (await raw.call("boot", "BootNotification", json.dumps(BOOT)))[2]["status"] == "Accepted"
        yield raw


def rsa_key_with_exponent(bits: int, exponent_bits: int) -> rsa.RSAPrivateKey:
    """An RSA key whose public exponent has ``exponent_bits`` bits (a stranger chooses it freely)."""
    numbers = rsa.generate_private_key(65537, bits).private_numbers()
    p, q = numbers.p, numbers.q
    phi = (p - 1) * (q - 1)
    while True:
        e = secrets.randbits(exponent_bits) | 1 | (1 << (exponent_bits - 1))
        if math.gcd(e, phi) == 1:
            break
    d = pow(e, -1, phi)
    public = rsa.RSAPublicNumbers(e, p * q)
    return rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), public).private_key()


def csr_pem(key: Any, cn: str, san: list[str] | None = None) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in san]), critical=False
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


# ---- SignCertificate ------------------------------------------------------------------------------------------


async def test_a_csr_whose_rsa_exponent_makes_its_check_expensive_is_rejected(
    csms: Csms, station: Raw
) -> None:
    """A 2048-bit RSA key with a 2040-bit public exponent costs ~3 ms of event loop per check (3000 bits on 3072:
    ~11 ms), and was signed: Rejected now, before its self-signature is checked; no CertificateSigned follows."""
    csr = csr_pem(rsa_key_with_exponent(2048, 2040), CP)
    answer = (await station.call("big-e", "SignCertificate", json.dumps({"csr": csr})))[2]
    assert (answer["status"], answer["statusInfo"]["reasonCode"]) == ("Rejected", "InvalidCSR")
    assert "exponent" in answer["statusInfo"]["additionalInfo"]
    assert (await station.call("hb", "Heartbeat", "{}"))[0] == 3
    assert station.server_calls == []
    assert csms.central.certificates.issued(CP) is None


async def test_a_csr_naming_others_in_its_alt_names_gets_a_certificate_for_its_own_id_only(
    csms: Csms, station: Raw
) -> None:
    """subjectAltName DNS names of another charger and of the operator are not copied: the certificate names only
    the sender's id (the profile-3 handshake reads CN and DNS/URI alt names)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = csr_pem(key, CP, san=["CS-B", "csms.example.com"])
    assert (await station.call("san", "SignCertificate", json.dumps({"csr": csr})))[2] == {
        "status": "Accepted"
    }
    async with asyncio.timeout(10):
        while not station.server_calls:
            await station.call("hb", "Heartbeat", "{}")
    action, payload = station.server_calls[0][2], station.server_calls[0][3]
    assert action == "CertificateSigned"
    leaf = x509.load_pem_x509_certificates(payload["certificateChain"].encode())[0]
    assert leaf.subject == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CP)])
    assert not [e for e in leaf.extensions if isinstance(e.value, x509.SubjectAlternativeName)]


async def test_a_huge_csr_gets_a_bounded_call_error_and_a_bounded_record(csms: Csms, station: Raw) -> None:
    """A 6000-character CSR (schema: string[0..5500]): a CallError whose description is at most 255 characters
    (OCPP-J 2.0.1 §4.2.3; it used to echo the whole value), a bounded violation record, the link up."""
    answer = await station.call("huge", "SignCertificate", json.dumps({"csr": "A" * 6000}))
    assert answer[:3] == [4, "huge", "TypeConstraintViolation"]
    assert len(answer[3]) <= 255
    assert len(csms.server.violations[-1][2]) <= MAX_PROBLEM_CHARS + 1
    assert (await station.call("hb", "Heartbeat", "{}"))[0] == 3


async def test_a_flood_of_bad_csrs_costs_a_few_log_lines(
    csms: Csms, station: Raw, caplog: pytest.LogCaptureFixture
) -> None:
    """50 CSRs for another charger in a row: each Rejected, the link up, and the rejections logged a few times a
    second, not once per frame (the `ca` logger had no limit, also under `serve`)."""
    csr = make_csr("CS-B")[1]
    with caplog.at_level(logging.WARNING, logger="backend_stub.domain.ca"):
        for n in range(50):
            answer = await station.call(f"s{n}", "SignCertificate", json.dumps({"csr": csr}))
            assert answer[2]["status"] == "Rejected"
    lines = [r for r in caplog.records if r.name == "backend_stub.domain.ca"]
    assert 1 <= len(lines) <= 20
    assert station.server_calls == []


async def _sign_until_judged(raw: Raw, unique_id: str, csr: str) -> dict[str, Any]:
    """SignCertificate until it is judged: while the last CertificateSigned is still being delivered (2.0.1
    reasonCode DeliveryPending) a Heartbeat lets the station read and answer it first."""
    async with asyncio.timeout(10):
        while True:
            answer: dict[str, Any] = (await raw.call(unique_id, "SignCertificate", json.dumps({"csr": csr})))[
                2
            ]
            if answer.get("statusInfo", {}).get("reasonCode") != "DeliveryPending":
                return answer
            await raw.call("hb", "Heartbeat", "{}")
            await asyncio.sleep(0.01)


async def test_a_charger_sending_csrs_in_a_loop_gets_its_hourly_quota_signed_then_rate_limited(
    csms: Csms, station: Raw, caplog: pytest.LogCaptureFixture
) -> None:
    """A station resends valid CSRs as fast as each certificate is delivered: the central system used to judge and
    sign every one (a signature check and a signature on the event loop, a CertificateSigned each). Now the first
    `CSR_PER_HOUR` are signed and the rest Rejected with reasonCode RateLimited (A02: the station retries after
    CertSigningWaitMinimum, at most CertSigningRepeatTimes), logged once, and the link stays up."""
    csr = make_csr(CP)[1]
    answers = []
    with caplog.at_level(logging.WARNING, logger="backend_stub.domain.ca"):
        for n in range(CSR_PER_HOUR + 15):
            answers.append(await _sign_until_judged(station, f"s{n}", csr))
    assert [a["status"] for a in answers] == ["Accepted"] * CSR_PER_HOUR + ["Rejected"] * 15
    for refused in answers[CSR_PER_HOUR:]:
        assert refused["statusInfo"]["reasonCode"] == "RateLimited"
        assert f"at most {CSR_PER_HOUR} CSRs an hour" in refused["statusInfo"]["additionalInfo"]
    assert (await station.call("hb", "Heartbeat", "{}"))[0] == 3
    assert [c[2] for c in station.server_calls] == ["CertificateSigned"] * CSR_PER_HOUR
    quota_lines = [r for r in caplog.records if "an hour" in r.getMessage()]
    assert len(quota_lines) == 1 and CP in quota_lines[0].getMessage()
    samples = await scrape(csms, ADMIN)  # the operator sees it too
    assert samples[("csms_limit_events_total", (("kind", "csr_rate_limited"),))] == 15


async def test_the_csr_quota_is_per_charger_and_also_holds_in_16(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    """`csr_per_hour=2`: a 1.6 charger (security whitepaper SignCertificate.conf has only a status) gets two
    certificates, then Rejected with no CertificateSigned; another charger still gets its own."""
    with CsmsStore(tmp_path / "quota.db") as store:
        store.add_charger("CS-B", PASSWORD)
        store.add_charger("CS-C", PASSWORD)
        app = Csms(store, admin_token=ADMIN_TOKEN, ca=ca, csr_per_hour=2)
        await app.start()
        try:
            for cp_id, expected in (
                ("CS-B", ["Accepted", "Accepted", "Rejected", "Rejected"]),
                ("CS-C", ["Accepted"]),
            ):
                async with booted(app.url, cp_id, "ocpp1.6") as raw:
                    csr = make_csr(cp_id)[1]
                    got = []
                    for n in range(len(expected)):
                        got.append((await raw.call(f"s{n}", "SignCertificate", json.dumps({"csr": csr})))[2])
                        if got[-1]["status"] == "Accepted":  # answered, kept: the next CSR is judged afresh
                            before = len(raw.server_calls)
                            async with asyncio.timeout(10):
                                while len(raw.server_calls) == before:
                                    await raw.call("hb", "Heartbeat", "{}")
                            serial = x509.load_pem_x509_certificates(
                                raw.server_calls[-1][3]["certificateChain"].encode()
                            )[0].serial_number
                            await until(
                                lambda cp=cp_id, sn=f"{serial:x}": (
                                    getattr(app.central.certificates.issued(cp), "serial_hex", None) == sn
                                ),
                                10,
                                "certificate not kept",
                            )
                    assert got == [{"status": s} for s in expected]  # no statusInfo in 1.6
                    assert (await raw.call("hb", "Heartbeat", "{}"))[0] == 3
                    assert [c[2] for c in raw.server_calls] == ["CertificateSigned"] * expected.count(
                        "Accepted"
                    )
        finally:
            await app.stop()


def test_the_signing_quota_refills_at_its_hourly_rate_and_stays_bounded() -> None:
    now = [0.0]
    quota = SigningQuota(4, max_entries=3, clock=lambda: now[0])
    assert [quota.take("A") for _ in range(4)] == [None] * 4
    assert quota.take("A") == pytest.approx(900.0)  # one CSR every 3600 / 4 s
    now[0] += 899.0
    assert quota.take("A") == pytest.approx(1.0)
    now[0] += 1.0
    assert quota.take("A") is None and quota.take("A") is not None
    # Bounded: a charger with a full bucket is the same as one never seen, so it is the one forgotten; a refused
    # one is kept (entries are registered, authenticated chargers: at most the fleet).
    small = SigningQuota(1, max_entries=2, clock=lambda: now[0])
    assert small.take("B") is None and small.take("C") is None and small.take("D") is None
    assert small.take("B") is not None  # not forgotten while refused
    now[0] += 3600.0
    assert small.take("E") is None
    assert set(small._buckets) == {"E"}
    with pytest.raises(ValueError, match="csr_per_hour"):
        SigningQuota(0)


# ---- NotifyChargingLimit / ClearedChargingLimit ----------------------------------------------------------------


def _limit(limit: str, *, start: str | None = None, evse: str = "1") -> str:
    start_field = f'"startSchedule":"{start}",' if start else ""
    return (
        '{"chargingLimit":{"chargingLimitSource":"EMS"},"evseId":'
        + evse
        + ',"chargingSchedule":[{"id":1,'
        + start_field
        + '"chargingRateUnit":"A","chargingSchedulePeriod":[{"startPeriod":0,"limit":'
        + limit
        + "}]}]}"
    )


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (_limit("NaN"), "limit"),
        (_limit("Infinity"), "limit"),
        (_limit("1e309"), "limit"),
        (_limit("1" + "0" * 400), "limit"),
        (_limit("-16"), "limit"),
        (_limit("16", start="9999-12-31T23:59:59Z"), "startSchedule"),
        (_limit("16", start="9999-12-31T23:59:59-01:00"), "startSchedule"),
        (_limit("16", evse="9223372036854775808"), "evseId"),
        (_limit("16", evse="0"), "evseId"),
    ],
    ids=[
        "nan",
        "inf",
        "1e309",
        "huge-int",
        "negative",
        "year-9999",
        "past-9999-in-utc",
        "evse-2^63",
        "evse-0",
    ],
)
async def test_hostile_charging_limits_get_a_precise_call_error(
    station: Raw, payload: str, field: str
) -> None:
    """NotifyChargingLimit with NaN, infinite, huge or negative limits, a start in the year 9999 or an EVSE id
    out of range: PropertyConstraintViolation naming the field (it was acknowledged), the link up."""
    answer = await station.call("ncl", "NotifyChargingLimit", payload)
    assert answer[:3] == [4, "ncl", "PropertyConstraintViolation"], answer
    assert field in answer[3]
    assert (await station.call("hb", "Heartbeat", "{}"))[0] == 3


async def test_plausible_charging_limits_are_acknowledged(station: Raw) -> None:
    assert (await station.call("ok1", "NotifyChargingLimit", _limit("16")))[:3] == [3, "ok1", {}]
    assert (await station.call("ok2", "NotifyChargingLimit", _limit("16.5", start="2026-01-01T00:00:00Z")))[
        :3
    ] == [3, "ok2", {}]
    cleared = '{"chargingLimitSource":"EMS","evseId":1}'
    assert (await station.call("ok3", "ClearedChargingLimit", cleared))[:3] == [3, "ok3", {}]


async def test_a_cleared_limit_on_an_impossible_evse_is_refused(station: Raw) -> None:
    answer = await station.call("ccl", "ClearedChargingLimit", '{"chargingLimitSource":"EMS","evseId":-5}')
    assert answer[:3] == [4, "ccl", "PropertyConstraintViolation"]
    assert "evseId" in answer[3]


# ---- the handshake ---------------------------------------------------------------------------------------------


async def _upgrade(csms: Csms, headers: list[tuple[str, str]]) -> str:
    """A raw upgrade request to /ocpp/CS-A with ``headers``; the HTTP status line of the answer."""
    host, port = "127.0.0.1", int(csms.url.rsplit(":", 1)[1].split("/")[0])
    reader, writer = await asyncio.open_connection(host, port)
    try:
        request = (
            f"GET /ocpp/{CP} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        )
        request += "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
        writer.write(request.encode())
        async with asyncio.timeout(20):
            return (await reader.readline()).decode().strip()
    finally:
        writer.close()


async def test_huge_subprotocol_offers_leave_a_bounded_violation_record(csms: Csms) -> None:
    """Eight 8000-character subprotocols (unauthenticated, before any throttle): 400, and the violation kept in
    memory is a few hundred characters (it was 64 KB; 10,000 kept records made 640 MB)."""
    status = await _upgrade(csms, [("Sec-WebSocket-Protocol", "x" * 8000)] * 8)
    assert status.startswith("HTTP/1.1 400")
    assert len(csms.server.violations[-1][2]) <= MAX_PROBLEM_CHARS + 1


async def test_half_a_million_offered_subprotocols_are_not_all_read(csms: Csms) -> None:
    """120 header lines listing 4000 subprotocols each: 400 (no supported one among the first ones read), and
    the reading stops at the line that reaches the limit instead of splitting every line."""
    lines = ["a," * 4000] * 120
    status = await _upgrade(csms, [("Sec-WebSocket-Protocol", line) for line in lines])
    assert status.startswith("HTTP/1.1 400")
    read: list[int] = []

    def counted() -> Any:
        for n, line in enumerate(lines):
            read.append(n)
            yield line

    assert len(offered_subprotocols(counted())) == 32
    assert read == [0]


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic " + "A" * 8000,
        "Basic ✓",
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Basic " + base64.b64encode(CP.encode()).decode(),  # no colon
        "Basic " + base64.b64encode(f"CS-B:{PASSWORD}".encode()).decode(),  # another charger's credentials
        "Bearer " + PASSWORD,
        "Basic",
    ],
    ids=["long", "non-ascii", "not-utf8", "no-colon", "other-user", "bearer", "empty"],
)
async def test_bogus_authorization_gets_401_and_the_link_of_others_is_unaffected(
    csms: Csms, authorization: str
) -> None:
    status = await _upgrade(csms, [("Sec-WebSocket-Protocol", "ocpp2.0.1"), ("Authorization", authorization)])
    assert status.startswith("HTTP/1.1 401"), status
    assert csms.server.errors == []


# ---- REST operations --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "body", "field"),
    [
        (
            "reserve-now",
            {"reservation_id": 1, "token": "T", "expires_at": "9999-12-31T23:59:59-01:00"},
            "expires_at",
        ),
        (
            "set-charging-profile",
            {
                "evse": 1,
                "profile_id": 1,
                "stack_level": 0,
                "purpose": "TxDefaultProfile",
                "unit": "A",
                "starts_at": "0001-01-01T00:00:00+01:00",
                "periods": [{"start_s": 0, "limit": 6}],
            },
            "starts_at",
        ),
    ],
    ids=["reserve-past-9999", "profile-before-year-1"],
)
async def test_operation_times_outside_utc_range_are_400_not_500(
    csms: Csms, station: Raw, operation: str, body: dict[str, Any], field: str
) -> None:
    async with (
        aiohttp.ClientSession(base_url=csms.http_url, headers=ADMIN) as http,
        http.post(f"/api/chargers/{CP}/operations/{operation}", json=body) as resp,
    ):
        got = await resp.json()
    assert resp.status == 400, got
    assert field in json.dumps(got)
    assert station.server_calls == []


@pytest.mark.parametrize(
    ("operation", "body", "field"),
    [
        (
            "reserve-now",
            {"reservation_id": 5.0, "token": "T", "expires_at": "2099-01-01T00:00:00Z"},
            "reservation_id",
        ),
        ("clear-charging-profile", {"stack_level": 2.0}, "stack_level"),
        (
            "set-charging-profile",
            {
                "evse": 1,
                "profile_id": 1,
                "stack_level": 0,
                "purpose": "TxProfile",
                "unit": "A",
                "charger_transaction": "tx-1\n",
                "periods": [{"start_s": 0, "limit": 6}],
            },
            "charger_transaction",
        ),
        (
            "reserve-now",
            {"reservation_id": 5, "token": "T", "expires_at": "2099-01-01T00:00:00Z", "group_token": "\t"},
            "group_token",
        ),
    ],
    ids=["float-reservation-id", "float-stack-level", "newline-transaction", "tab-group-token"],
)
async def test_operator_values_the_charger_would_refuse_are_400_naming_the_field(
    csms: Csms, operation: str, body: dict[str, Any], field: str
) -> None:
    """JSON Schema 2020-12 takes 5.0 as an integer, OCPP's Draft 4 schemas do not: it went out as "id": 5.0 and
    came back as the charger's TypeConstraintViolation (502). Control characters in a token or transactionId went
    out as they were. Now 400 naming the field, and no CALL reaches the station."""
    async with connect(
        f"{csms.url}/{CP}",
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        additional_headers=basic(CP, PASSWORD),
    ) as ws:
        station201 = Station201(CP, ws)
        task = asyncio.create_task(station201.start())
        try:
            await station201.call(
                call201.BootNotification(
                    charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"
                ),
                suppress=False,
            )
            async with (
                aiohttp.ClientSession(base_url=csms.http_url, headers=ADMIN) as http,
                http.post(f"/api/chargers/{CP}/operations/{operation}", json=body) as resp,
            ):
                got = await resp.json()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert resp.status == 400, got
    assert field in json.dumps(got)
    assert station201.got == []


def _in(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


@pytest.mark.parametrize("version", ["ocpp1.6", "ocpp2.0.1"])
@pytest.mark.parametrize(
    ("expires_at", "status", "words"),
    [
        ("2099-01-01T00:00:00Z", 422, "at most 1 day"),
        (_in(timedelta(hours=24, minutes=5)), 422, "at most 1 day"),
        (_in(-timedelta(minutes=1)), 422, "already have expired"),
        ("2030-01-01T00:00:00", 400, "needs a timezone"),
        ("NaN", 400, "not an ISO 8601"),
        ("Infinity", 400, "not an ISO 8601"),
        ("9999-12-31T23:59:59-01:00", 400, "out of range"),
    ],
    ids=["year-2099", "25-hours", "past", "naive", "nan", "infinity", "past-9999-in-utc"],
)
async def test_reserve_now_takes_an_expiry_in_the_next_24_hours_only(
    csms: Csms, version: str, expires_at: str, status: int, words: str
) -> None:
    """REST reserve-now sent a reservation until 2099 to the charger, holding the EVSE from every other driver for
    decades (the OCPI path already stopped at 24 h). Now a well-formed expiry outside (now, now + 24 h] is 422
    naming expires_at, a malformed one 400 (as every time field of the API), in both versions; nothing is sent.
    An expiry within the window still reaches the charger (the control)."""
    cp_id = "CS-B"
    async with booted(csms.url, cp_id, version) as raw:
        body = {"reservation_id": 3, "evse": 1, "token": "TAG-1", "expires_at": expires_at}
        got_status, got = await _operation(csms, cp_id, "reserve-now", body)
        assert (got_status, words in got["error"]) == (status, True), got
        assert got["error"].startswith("expires_at")
        assert status == 400 or got["field"] == "expires_at"
        assert (await raw.call("hb", "Heartbeat", "{}"))[0] == 3
        assert raw.server_calls == []
        control = asyncio.create_task(
            _operation(csms, cp_id, "reserve-now", {**body, "expires_at": _in(timedelta(hours=23))})
        )
        async with asyncio.timeout(10):
            while not raw.server_calls:
                await raw.call("hb", "Heartbeat", "{}")
        assert (await control)[0] == 200
    assert [c[2] for c in raw.server_calls] == ["ReserveNow"]


async def _operation(csms: Csms, cp_id: str, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession(base_url=csms.http_url, headers=ADMIN) as http,
        http.post(f"/api/chargers/{cp_id}/operations/{name}", json=body) as resp,
    ):
        return resp.status, await resp.json()


def _tx_profile(transaction: int) -> dict[str, Any]:
    return {
        "evse": 1,
        "profile_id": 4,
        "stack_level": 0,
        "purpose": "TxProfile",
        "unit": "A",
        "transaction": transaction,
        "periods": [{"start_s": 0, "limit": 6}],
    }


async def test_a_tx_profile_names_a_session_of_the_same_charger_only(csms: Csms, station: Raw) -> None:
    """set-charging-profile `transaction` is our session id: given CS-B's session for CS-A, the central system sent
    CS-A a TxProfile carrying CS-B's own 2.0.1 transactionId (another charger's data, to a third party), and an
    unknown id was a 500. Now 422 naming the field, and nothing reaches the station; the own session still works."""
    now = datetime.now(UTC)
    other, _ = csms.central.sessions.start("CS-B", 1, "TAG-B", 0, now, station_tx_id="TX-OF-CS-B-4f1c")
    mine, _ = csms.central.sessions.start(CP, 1, "TAG-A", 0, now, station_tx_id="TX-OF-CS-A-77aa")
    for transaction in (other, 2_000_000_000):
        status, got = await _operation(csms, CP, "set-charging-profile", _tx_profile(transaction))
        assert (status, got.get("field")) == (422, "transaction"), got
        assert (await station.call("hb", "Heartbeat", "{}"))[0] == 3
        assert station.server_calls == []
    control = asyncio.create_task(_operation(csms, CP, "set-charging-profile", _tx_profile(mine)))
    async with asyncio.timeout(10):
        while not station.server_calls:
            await station.call("hb", "Heartbeat", "{}")
    assert (await control)[0] == 200
    [(action, payload)] = [(c[2], c[3]) for c in station.server_calls]
    assert (action, payload["chargingProfile"]["transactionId"]) == ("SetChargingProfile", "TX-OF-CS-A-77aa")


def _profile(periods: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "evse": 1,
        "profile_id": 4,
        "stack_level": 0,
        "purpose": "TxDefaultProfile",
        "unit": "A",
        "periods": periods,
    }


@pytest.mark.parametrize("version", ["ocpp1.6", "ocpp2.0.1"])
@pytest.mark.parametrize(
    ("operation", "body", "field"),
    [
        (
            "set-charging-profile",
            _profile(
                [{"start_s": 0, "limit": 16}, {"start_s": 600, "limit": 8}, {"start_s": 600, "limit": 6}]
            ),
            "periods.2.start_s",
        ),
        (
            "set-charging-profile",
            _profile(
                [{"start_s": 0, "limit": 16}, {"start_s": 900, "limit": 8}, {"start_s": 300, "limit": 6}]
            ),
            "periods.2.start_s",
        ),
        ("set-charging-profile", _profile([{"start_s": 0, "limit": 6.05}]), "periods.0.limit"),
        (
            "send-local-list",
            {"version": 3, "entries": [{"token": "CARD-1", "status": "Accepted"}] * 2},
            "entries.1.token",
        ),
        (
            "send-local-list",
            {
                "version": 3,
                "entries": [
                    {"token": "card-x", "status": "Accepted"},
                    {"token": "CARD-X", "status": "Blocked"},
                ],
            },
            "entries.1.token",
        ),
        (
            "set-charging-profile",
            {**_profile([{"start_s": 0, "limit": 6}]), "kind": "Recurring"},
            "recurrency",
        ),
        (
            "set-charging-profile",
            {**_profile([{"start_s": 0, "limit": 6}]), "recurrency": "Daily"},
            "recurrency",
        ),
        (
            "set-charging-profile",
            {
                **_profile([{"start_s": 0, "limit": 6}]),
                "kind": "Relative",
                "starts_at": "2030-01-01T00:00:00Z",
            },
            "starts_at",
        ),
        (
            "set-charging-profile",
            {
                **_profile([{"start_s": 0, "limit": 6}]),
                "kind": "Relative",
                "purpose": "ChargingStationMaxProfile",
            },
            "kind",
        ),
    ],
    ids=[
        "same-start",
        "start-goes-back",
        "two-decimals",
        "token-twice",
        "token-twice-other-case",
        "recurring-without-recurrency",
        "recurrency-not-recurring",
        "relative-with-start",
        "relative-max-profile",
    ],
)
async def test_operations_the_spec_forbids_a_csms_to_send_are_400_naming_the_field(
    csms: Csms, version: str, operation: str, body: dict[str, Any], field: str
) -> None:
    """Periods whose startPeriod does not increase (each is the end of the previous one), a limit with two decimals
    (1.6 schema multipleOf 0.1, 2.0.1 ChargingSchedulePeriodType.limit: one digit fraction), and a local list naming
    a token twice (2.0.1 D01.FR.06; idTags are case-insensitive CiString20 / identifierString) went to the charger
    as they were. Now 400 naming the field; nothing is sent."""
    cp_id = "CS-B"
    async with booted(csms.url, cp_id, version) as raw:
        request = asyncio.create_task(_operation(csms, cp_id, operation, body))
        await asyncio.wait([request], timeout=2)
        if not request.done():  # it went out: let the station see it, to fail on what it got
            await raw.call("hb", "Heartbeat", "{}")
        status, got = await request
        assert raw.server_calls == []
        assert (status, got["error"].split(":")[0]) == (400, field), got


@pytest.mark.parametrize("operation", ["reserve-now", "cancel-reservation"])
async def test_an_operator_cannot_replace_or_cancel_a_roaming_partners_reservation_by_its_id(
    csms: Csms, station: Raw, operation: str
) -> None:
    """OCPI RESERVE_NOW gives a partner's reservation the charger-side reservationId 1, 2, 3...; an operator's
    reserve-now or cancel-reservation with the same small id replaced or cancelled it on the charger while OCPI
    still counted it as held. Now 422 naming reservation_id; another id still goes out."""
    now = datetime.now(UTC)
    store = csms.central.store
    partner = store.ocpi_create_partner("eMSP", None, now)
    held = store.ocpi_reservation(partner, "R-1", CP, now)
    assert held is not None
    body: dict[str, Any] = {"reservation_id": held}
    if operation == "reserve-now":
        body |= {"token": "TAG-OP", "expires_at": _in(timedelta(hours=1))}
    status, got = await _operation(csms, CP, operation, body)
    assert (status, got.get("field")) == (422, "reservation_id"), got
    assert (await station.call("hb", "Heartbeat", "{}"))[0] == 3
    assert station.server_calls == []
    control = asyncio.create_task(_operation(csms, CP, operation, {**body, "reservation_id": held + 100}))
    async with asyncio.timeout(10):
        while not station.server_calls:
            await station.call("hb", "Heartbeat", "{}")
    assert (await control)[0] == 200


async def test_a_charger_that_nothing_authenticates_gets_no_certificate(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    """A registered charger without a password (explicitly waived) connects over ws:// with no credentials: anyone
    can be it, so a certificate would give whoever connected a lasting profile-3 identity. Rejected."""
    with CsmsStore(tmp_path / "open.db") as store:
        store.add_charger("CS-OPEN")
        app = Csms(store, admin_token=ADMIN_TOKEN, ca=ca)
        await app.start()
        try:
            async with connect(f"{app.url}/CS-OPEN", subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
                raw = Raw(ws)
                assert (await raw.call("boot", "BootNotification", json.dumps(BOOT)))[2][
                    "status"
                ] == "Accepted"
                csr = make_csr("CS-OPEN")[1]
                answer = (await raw.call("s", "SignCertificate", json.dumps({"csr": csr})))[2]
                assert (answer["status"], answer["statusInfo"]["reasonCode"]) == (
                    "Rejected",
                    "NotAuthenticated",
                )
                assert (await raw.call("hb", "Heartbeat", "{}"))[0] == 3
                assert raw.server_calls == []
        finally:
            await app.stop()
        assert store.client_certificate("CS-OPEN") is None


async def test_the_16_sign_certificate_goes_through_the_same_judge(csms: Csms) -> None:
    """OCPP 1.6 (security whitepaper SignCertificate) shares the judged path: the costly exponent is Rejected, a
    6000-character CSR is a CallError of at most 255 characters, and the link stays up."""
    async with connect(
        f"{csms.url}/CS-B",
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        additional_headers=basic("CS-B", PASSWORD),
    ) as ws:
        raw = Raw(ws)
        boot = {"chargePointVendor": "V", "chargePointModel": "M"}
        assert (await raw.call("boot", "BootNotification", json.dumps(boot)))[2]["status"] == "Accepted"
        csr = csr_pem(rsa_key_with_exponent(2048, 2040), "CS-B")
        assert (await raw.call("e", "SignCertificate", json.dumps({"csr": csr})))[2] == {"status": "Rejected"}
        huge = await raw.call("huge", "SignCertificate", json.dumps({"csr": "A" * 6000}))
        assert huge[0] == 4 and len(huge[3]) <= 255
        assert (await raw.call("hb", "Heartbeat", "{}"))[0] == 3
        assert raw.server_calls == []


# ---- the scripted test server's handshake records ----------------------------------------------------------------


async def test_the_scripted_servers_handshake_records_keep_no_password_guesses(
    cs: ScriptedCentralSystem,
) -> None:
    """Password guessing against the scripted test server (the conformance runner's central system): its
    `handshakes` kept every password tried, verbatim. Now the last `HANDSHAKES_KEPT` are kept, each password as its
    length and whether it is a passwordString only (what the security profile checks judge)."""
    secret = "right-password-0123456789"
    cs.passwords["CP-G"] = secret
    guesses = [f"guess{n:04d}-{secrets.token_hex(6)}" for n in range(cs.HANDSHAKES_KEPT + 16)]
    for guess in [*guesses, "no spaces allowed here!"]:
        with pytest.raises(InvalidStatus):
            async with connect(
                f"{cs.url}/CP-G",
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                additional_headers=basic("CP-G", guess),
                open_timeout=10,
            ):
                pass
    cs.auth_throttle.succeeded("CP-G")  # the guesses locked the id out; the right password comes next
    async with connect(
        f"{cs.url}/CP-G",
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        additional_headers=basic("CP-G", secret),
    ):
        pass
    records = list(cs.handshakes)
    assert len(records) == cs.HANDSHAKES_KEPT
    kept = repr(records)
    assert secret not in kept and not any(guess in kept for guess in guesses)
    assert records[-1].password == PasswordShape(len(secret), password_string=True)
    assert records[-2].password == PasswordShape(23, password_string=False)
    assert all(isinstance(r.password, PasswordShape) for r in records)
