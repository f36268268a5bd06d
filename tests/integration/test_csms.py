"""The bundled central system (store + tariffs behind the OCPP server) against real OCPP clients: the agent and a
raw WebSocket client."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from backend_stub.app import Csms
from backend_stub.store import CsmsStore
from chargepoint.agent import Agent
from tests.integration.conftest import FAST_TIMING, agent_config, until

TARIFF = {  # 100.00 EUR/kWh so that a test session spends cents within seconds
    "currency": "EUR",
    "elements": [{"price_components": [{"type": "ENERGY", "price": 100, "step_size": 1}]}],
}


@pytest.fixture
async def csms(tmp_path: Path) -> AsyncIterator[Csms]:
    store = CsmsStore(tmp_path / "csms.db")
    app = Csms(store, heartbeat_interval_s=60)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()
        store.close()


class RawCharger:
    """A minimal OCPP 1.6 client speaking frames directly."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.n = 0

    async def call(self, action: str, payload: dict[str, Any]) -> list[Any]:
        self.n += 1
        await self.ws.send(json.dumps([2, f"m{self.n}", action, payload]))
        while True:
            frame = json.loads(await self.ws.recv())
            if frame[0] in (3, 4) and frame[1] == f"m{self.n}":
                return list(frame)


def _auth(cp_id: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{cp_id}:{password}".encode()).decode()}


async def test_registry_refuses_unknown_chargers_and_wrong_passwords(csms: Csms) -> None:
    csms.store.add_charger("CP-REG", "a-good-password-123")
    with pytest.raises(InvalidStatus) as unknown:
        await connect(f"{csms.url}/CP-NOBODY", subprotocols=["ocpp1.6"])  # type: ignore[list-item]
    assert unknown.value.response.status_code == 404
    with pytest.raises(InvalidStatus) as wrong:
        await connect(
            f"{csms.url}/CP-REG",
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            additional_headers=_auth("CP-REG", "wrong"),
        )
    assert wrong.value.response.status_code == 401
    async with connect(
        f"{csms.url}/CP-REG",
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        additional_headers=_auth("CP-REG", "a-good-password-123"),
    ) as ws:
        answer = await RawCharger(ws).call(
            "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}
        )
        assert answer[2]["status"] == "Accepted"
    charger = csms.store.charger("CP-REG")
    assert charger is not None and charger.vendor == "V"


async def test_a_repeated_stop_is_acknowledged_but_charged_once(csms: Csms) -> None:
    store = csms.store
    store.add_charger("CP-RAW")
    store.put_tariff("T1", json.dumps(TARIFF))
    store.set_default_tariff_id("T1")
    user = store.add_user("Ada", phone="+49 30 1234")
    store.add_card("CARD1", user_id=user.id, mode="prepaid")
    store.topup("CARD1", 5_000, "topup-1")
    async with connect(f"{csms.url}/CP-RAW", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        cp = RawCharger(ws)
        await cp.call("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
        start = await cp.call(
            "StartTransaction",
            {"connectorId": 1, "idTag": "CARD1", "meterStart": 1000, "timestamp": "2026-11-22T10:00:00Z"},
        )
        tx = start[2]["transactionId"]
        assert start[2]["idTagInfo"]["status"] == "Accepted"
        stop = {"transactionId": tx, "meterStop": 1010, "timestamp": "2026-11-22T10:05:00Z", "idTag": "CARD1"}
        first = await cp.call("StopTransaction", stop)
        again = await cp.call("StopTransaction", stop)
        assert first[0] == again[0] == 3
        unknown = await cp.call("StopTransaction", {**stop, "transactionId": 999_999})
        # OCPP 1.6 §4.10: even an unknown transaction gets a StopTransaction.conf (it was a CallError
        # PropertyConstraintViolation before issue 10), without idTagInfo and without a charge.
        assert unknown[0] == 3 and unknown[2] == {}
    charges = [e for e in store.entries("CARD1") if e.kind == "charge"]
    assert len(charges) == 1 and charges[0].amount_minor == -100  # 10 Wh x 100 EUR/kWh = 1.00 EUR
    assert store.balance("CARD1") == 4_900
    assert store.verify_balances() == []


async def test_agent_session_on_a_prepaid_card_is_stopped_when_the_balance_is_spent(
    csms: Csms, tmp_path: Path
) -> None:
    store = csms.store
    store.add_charger("CP-AGENT", "agent-password-1234")
    store.put_tariff("T1", json.dumps(TARIFF))
    store.set_default_tariff_id("T1")
    user = store.add_user("Grace")
    store.add_card("PREPAID1", user_id=user.id, mode="prepaid")
    store.topup("PREPAID1", 150, "topup-1")  # 1.50 EUR = 15 Wh at 100 EUR/kWh
    config = agent_config(
        csms.url,
        tmp_path / "agent.db",
        cp_id="CP-AGENT",
        settings={"meter_value_sample_interval_s": 1},
        csms={"security_profile": 1, "password": "agent-password-1234"},
    )
    agent = Agent(config, timing=FAST_TIMING)
    task = asyncio.create_task(agent.run())
    try:
        await until(lambda: agent.link is not None and agent.link.online, 10, "never booted")
        sim = agent.sims[1]
        assert sim.plug is not None and sim.reader is not None and sim.plug is not None
        sim.plug.ev_power_w = 22_000.0
        sim.plug.set_plugged(True)
        sim.reader.swipe("PREPAID1")
        await csms.server.wait_for_call("StartTransaction")
        stop = await csms.server.wait_for_call("StopTransaction", timeout=20)
        assert stop.payload["reason"] == "Remote"
        await csms.server.wait_for(lambda f: f.direction == "out" and f.unique_id == stop.unique_id)
        assert any(f.action == "RemoteStopTransaction" and f.direction == "out" for f in csms.server.log)
        tx = store.transaction(stop.payload["transactionId"])
        assert tx.cost_minor is not None and tx.cost_minor >= 150
        charges = [e for e in store.entries("PREPAID1") if e.kind == "charge"]
        assert len(charges) == 1 and charges[0].amount_minor == -tx.cost_minor
        assert json.loads(tx.cdr_json or "{}")["currency"] == "EUR"
    finally:
        agent.shutdown()
        await task
    assert csms.server.violations == []


async def test_passwords_are_rechecked_after_a_change_and_oversized_frames_close_only_that_connection(
    csms: Csms,
) -> None:
    csms.store.add_charger("CP-PW", "first-password-1234")
    url = f"{csms.url}/CP-PW"
    for _ in range(2):  # the second connect takes the fast path
        async with connect(
            url,
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            additional_headers=_auth("CP-PW", "first-password-1234"),
        ):
            pass
    csms.central.chargers.set_password("CP-PW", "second-password-1234")
    with pytest.raises(InvalidStatus) as old:
        await connect(
            url,
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            additional_headers=_auth("CP-PW", "first-password-1234"),
        )
    assert old.value.response.status_code == 401
    async with connect(
        url,
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        additional_headers=_auth("CP-PW", "second-password-1234"),
        max_size=None,
    ) as ws:
        await ws.send(json.dumps([2, "big", "DataTransfer", {"vendorId": "X", "data": "x" * 70_000}]))
        with pytest.raises(Exception) as closed:
            await ws.recv()
        assert getattr(closed.value, "rcvd", None) is not None and closed.value.rcvd.code == 1009  # type: ignore[attr-defined]
    async with connect(
        url,
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        additional_headers=_auth("CP-PW", "second-password-1234"),
    ) as ws:
        answer = await RawCharger(ws).call("Heartbeat", {})
        assert answer[0] == 3  # the server carries on


async def test_a_killed_server_keeps_everything_it_acknowledged(tmp_path: Path) -> None:
    """SIGKILL the serving process right after its answers: every acknowledged start, sample and stop is in
    the store when it comes back, and the session was charged exactly once."""
    from backend_stub.process import start_csms_process

    db = tmp_path / "csms.db"
    with CsmsStore(db) as store:
        store.put_tariff("T", json.dumps(TARIFF))
        store.set_default_tariff_id("T")
        store.add_charger("CP-K", "kill-password-123")
        user = store.add_user("K")
        store.add_card("TAG-K", user_id=user.id, mode="prepaid")
        store.topup("TAG-K", 100_000, "k")
    proc, url = await start_csms_process(db=db)
    try:
        async with connect(
            f"{url}/CP-K", subprotocols=["ocpp1.6"], additional_headers=_auth("CP-K", "kill-password-123")
        ) as ws:  # type: ignore[list-item]
            cp = RawCharger(ws)
            await cp.call("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
            started = await cp.call(
                "StartTransaction",
                {"connectorId": 1, "idTag": "TAG-K", "meterStart": 0, "timestamp": "2026-11-22T10:00:00Z"},
            )
            tx = started[2]["transactionId"]
            for i in range(1, 21):
                answer = await cp.call(
                    "MeterValues",
                    {
                        "connectorId": 1,
                        "transactionId": tx,
                        "meterValue": [
                            {
                                "timestamp": f"2026-11-22T10:{i:02d}:00Z",
                                "sampledValue": [{"value": str(i * 10), "unit": "Wh"}],
                            }
                        ],
                    },
                )
                assert answer[0] == 3
            stopped = await cp.call(
                "StopTransaction",
                {
                    "transactionId": tx,
                    "meterStop": 250,
                    "timestamp": "2026-11-22T10:30:00Z",
                    "idTag": "TAG-K",
                },
            )
            assert stopped[0] == 3
            proc.kill()  # no shutdown, no flush: only what was committed before each answer survives
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    with CsmsStore(db) as store:
        record = store.transaction(tx)
        assert record.meter_stop_wh == 250 and not record.active and record.cost_minor
        assert len(store.meter_values(tx)) == 20
        charges = [e for e in store.entries("TAG-K") if e.kind == "charge"]
        assert len(charges) == 1 and charges[0].amount_minor == -record.cost_minor
        assert store.verify_balances() == []


async def test_prepaid_sessions_are_priced_exactly_only_near_their_balance(
    csms: Csms, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exact pricing costs time in proportion to a session's samples; a session far from its card's balance is
    not re-priced at every MeterValues, and one that reaches it is still stopped at the right sample."""
    store = csms.store
    store.add_charger("CP-P")
    store.put_tariff("T1", json.dumps(TARIFF))  # 100 EUR/kWh: 10 Wh = 1.00 EUR
    store.set_default_tariff_id("T1")
    user = store.add_user("P")
    store.add_card("RICH", user_id=user.id, mode="prepaid")
    store.topup("RICH", 1_000_000, "rich")
    store.add_card("POOR", user_id=user.id, mode="prepaid")
    store.topup("POOR", 2_000, "poor")  # 20.00 EUR = 200 Wh
    exact = 0
    original = csms.central.pricing.cdr_to

    def counting(*args: Any) -> Any:
        nonlocal exact
        exact += 1
        return original(*args)

    monkeypatch.setattr(csms.central.pricing, "cdr_to", counting)
    async with connect(f"{csms.url}/CP-P", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        cp = RawCharger(ws)
        await cp.call("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
        for tag, connector in (("RICH", 1), ("POOR", 2)):
            started = await cp.call(
                "StartTransaction",
                {
                    "connectorId": connector,
                    "idTag": tag,
                    "meterStart": 0,
                    "timestamp": "2026-11-22T10:00:00Z",
                },
            )
            tx = started[2]["transactionId"]
            exact = 0
            for i in range(1, 41):  # +10 Wh a minute
                sample = {"timestamp": f"2026-11-22T10:{i:02d}:00Z", "sampledValue": [{"value": str(10 * i)}]}
                await cp.call(
                    "MeterValues", {"connectorId": connector, "transactionId": tx, "meterValue": [sample]}
                )
            if tag == "RICH":
                assert exact <= 2, f"re-priced {exact} times for 40 samples far from the balance"
                assert tx not in csms.central.prepaid._stopping
            else:
                stop = await csms.server.wait_for(
                    lambda f, t=tx: (
                        f.direction == "out"
                        and f.action == "RemoteStopTransaction"
                        and f.payload == {"transactionId": t}
                    )
                )
                before = [
                    f
                    for f in csms.server.log[: csms.server.log.index(stop)]
                    if f.direction == "in"
                    and f.action == "MeterValues"
                    and f.message_type == 2
                    and f.payload["transactionId"] == tx
                ]
                # 200 Wh = 20.00 EUR = the balance: stopped right after that sample, not later.
                assert before[-1].payload["meterValue"][0]["sampledValue"][0]["value"] == "200"
