"""OCPI 2.2.1 wire rules as pure functions: the token header, DateTime, exact money, credentials parsing."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend_stub.ocpi.objects import EVSE_STATUS
from backend_stub.ocpi.protocol import OcpiError, money, parse_json, parse_time, to_json, token_from_header
from backend_stub.ocpi.service import parse_credentials


def _header(value: str) -> dict[str, str]:
    return {"Authorization": value}


def test_the_token_header_is_base64_as_221_requires() -> None:
    encoded = base64.b64encode(b"abc-123").decode()
    assert token_from_header(_header(f"Token {encoded}")) == "abc-123"
    assert token_from_header(_header("Token abc-123")) is None  # 2.1.1 plain form: not base64 (the '-')
    assert token_from_header(_header(f"Bearer {encoded}")) is None
    assert token_from_header({}) is None
    assert token_from_header(_header("Token " + base64.b64encode(b"x" * 65).decode())) is None  # over 64
    assert token_from_header(_header("Token " + base64.b64encode(b"a\nb").decode())) is None


@given(st.text(max_size=300))
def test_any_header_is_read_without_raising(value: str) -> None:
    token = token_from_header(_header(value))
    assert token is None or 1 <= len(token) <= 64


def test_times_without_a_zone_are_utc_and_offsets_are_converted() -> None:
    assert parse_time("2026-11-22T10:00:00", "t") == datetime(2026, 11, 22, 10, tzinfo=UTC)
    assert parse_time("2026-11-22T12:00:00+02:00", "t") == datetime(2026, 11, 22, 10, tzinfo=UTC)
    for bad in ("soon", "", "2026-13-01T00:00:00Z", "9" * 40):
        with pytest.raises(OcpiError) as exc:
            parse_time(bad, "t")
        assert exc.value.status == 2001


def test_money_is_exact_at_the_boundary() -> None:
    assert to_json({"v": money(25000)}) == '{"v":250.0}'
    assert to_json({"v": money(123456789012)}) == '{"v":1234567890.12}'
    assert to_json({"v": money(7, 0)}) == '{"v":7.0}'
    assert Decimal(str(parse_json(b'{"v": 0.1}')["v"])) == Decimal("0.1")
    for bad in (b"{nope", b'{"v": NaN}', b"[" * 100_000):
        with pytest.raises(OcpiError) as exc:
            parse_json(bad)
        assert (exc.value.status, exc.value.http_status) == (2001, 400)


def test_credentials_are_parsed_strictly() -> None:
    role = {"role": "EMSP", "party_id": "ems", "country_code": "nl", "business_details": {"name": "E"}}
    token, url, roles = parse_credentials({"token": "t", "url": "https://x/versions", "roles": [role]})
    assert (token, url, roles[0].country_code, roles[0].party_id) == ("t", "https://x/versions", "NL", "EMS")
    for bad in (
        {"token": "", "url": "https://x", "roles": [role]},
        {"token": "t", "url": "ftp://x", "roles": [role]},
        {"token": "t", "url": "https://x", "roles": []},
        {"token": "t", "url": "https://x", "roles": [role | {"role": "KING"}]},
        {"token": "t", "url": "https://x", "roles": [role | {"party_id": "TOOLONG"}]},
        {"token": "t", "url": "https://x", "roles": [role, role]},
        [],
    ):
        with pytest.raises(OcpiError) as exc:
            parse_credentials(bad)
        assert exc.value.status == 2001


@pytest.mark.parametrize(
    "status",
    [
        "Available",
        "Preparing",
        "Charging",
        "SuspendedEV",
        "SuspendedEVSE",
        "Finishing",
        "Reserved",
        "Unavailable",
        "Faulted",
        "Occupied",
    ],
)
def test_every_ocpp_connector_status_maps_to_an_ocpi_evse_status(status: str) -> None:
    assert EVSE_STATUS[status] in {"AVAILABLE", "CHARGING", "RESERVED", "INOPERATIVE", "OUTOFORDER"}
