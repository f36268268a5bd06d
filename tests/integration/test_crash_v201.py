"""Transaction safety over OCPP 2.0.1 (after MicroOcpp's tests): SIGKILL the real agent process at random moments
of charging sessions against the bundled central system, then check its log and its books.

Every transaction the CSMS saw start ends exactly once; each transaction's seqNo runs 0, 1, 2, ... without a gap
(a message resent after a crash keeps its number); an end after a power loss is flagged offline; the CSMS recorded
no sequence gap and billed each session once.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from backend_stub.app import Csms
from backend_stub.store import CsmsStore, SecurityEventKind
from tests.integration.agent_process import ctl, spawn_agent, write_config
from tests.integration.test_csms import TARIFF

pytestmark = pytest.mark.slow

KILLS = 12
CP = "CRASH-CP"


def _events(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Every TransactionEvent the charger sent, by transactionId, in the order they arrived."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in path.read_text().splitlines():
        frame = json.loads(line) if line.strip() else {}
        if (
            frame.get("direction") == "in"
            and frame.get("message_type") == 2
            and frame.get("action") == "TransactionEvent"
        ):
            out[frame["payload"]["transactionInfo"]["transactionId"]].append(frame["payload"])
    return out


async def test_sigkill_at_random_moments_keeps_seq_no_continuous_and_ends_each_transaction_once(
    tmp_path: Path,
) -> None:
    rng = random.Random(int(os.environ.get("CRASH_SEED", "2011")))
    store = CsmsStore(tmp_path / "csms.db")
    store.put_tariff("T1", json.dumps(TARIFF))
    store.set_default_tariff_id("T1")
    store.add_charger(CP)
    store.add_card("CRASHTAG", user_id=store.add_user("Ada").id, mode="personal")
    log_path = tmp_path / "csms.jsonl"
    csms = Csms(store, heartbeat_interval_s=60, admin_token="crash-test-admin-token", log_path=log_path)
    await csms.start()
    config = tmp_path / "station.toml"
    sock = str(tmp_path / "ctl.sock")
    write_config(
        config, station_id=CP, url=csms.url, db=tmp_path / "agent.db", sock=sock, versions=("2.0.1",)
    )
    agent_log = (tmp_path / "agent.log").open("w")
    server = csms.server
    try:
        for _ in range(KILLS):
            after = len(server.log)
            proc = await spawn_agent(config, agent_log)
            await server.wait_for_call("BootNotification", after=after, timeout=15)
            phase = rng.choice(["start", "charging", "stop", "idle"])
            await ctl(sock, "plug", "1")
            await ctl(sock, "swipe", "1", "CRASHTAG")
            started = lambda p: p["eventType"] == "Started"  # noqa: E731
            if phase != "start":
                await server.wait_for_call("TransactionEvent", after=after, timeout=10, where=started)
                await asyncio.sleep(rng.uniform(0, 2.5))
            if phase in ("stop", "idle"):
                await ctl(sock, "swipe", "1", "CRASHTAG")
                if phase == "idle":
                    ended = lambda p: p["eventType"] == "Ended"  # noqa: E731
                    await server.wait_for_call("TransactionEvent", after=after, timeout=10, where=ended)
                    await ctl(sock, "unplug", "1")
            await asyncio.sleep(rng.uniform(0, 0.3))
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        # One last clean run lets the agent end what the last kill left behind.
        after = len(server.log)
        proc = await spawn_agent(config, agent_log)
        await server.wait_for_call("BootNotification", after=after, timeout=15)

        async def settled() -> None:
            while True:
                events = _events(log_path)
                if events and all(any(e["eventType"] == "Ended" for e in evs) for evs in events.values()):
                    return
                await asyncio.sleep(0.2)

        await asyncio.wait_for(settled(), 30)
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
    finally:
        agent_log.close()
        await csms.stop()

    events = _events(log_path)
    assert len(events) >= KILLS // 2, "too few sessions started to prove anything"
    reasons = set()
    for tx, evs in events.items():
        numbers = [e["seqNo"] for e in evs]
        # At least once: a message resent after a crash keeps its number, so a number may repeat, never skip.
        assert sorted(set(numbers)) == list(range(max(numbers) + 1)), (tx, numbers)
        by_number: dict[int, set[str]] = defaultdict(set)
        for e in evs:
            by_number[e["seqNo"]].add(json.dumps(e, sort_keys=True))
        assert all(len(v) == 1 for v in by_number.values()), f"{tx}: one seqNo, two different messages"
        assert evs[0]["eventType"] == "Started" and evs[0]["seqNo"] == 0
        ends = {json.dumps(e, sort_keys=True) for e in evs if e["eventType"] == "Ended"}
        assert len(ends) == 1, f"transaction {tx} ended {len(ends)} different ways"
        end = json.loads(ends.pop())
        assert max(e["seqNo"] for e in evs) == end["seqNo"], "nothing after the Ended"
        reason = end["transactionInfo"]["stoppedReason"]
        reasons.add(reason)
        if reason == "PowerLoss":
            assert end.get("offline") is True, "an end after a power loss happened offline"
            assert end["triggerReason"] == "AbnormalCondition"
        start_wh = evs[0]["meterValue"][0]["sampledValue"][0]["value"]
        assert end["meterValue"][0]["sampledValue"][0]["value"] >= start_wh
    assert "PowerLoss" in reasons
    # The central system's books: no sequence gap seen, each session billed once and ended.
    assert store.security_events(kind=SecurityEventKind.SEQUENCE_GAP) == []
    billed = [t for t in store.recent_transactions(cp_id=CP, limit=1000)]
    assert sorted(t.station_tx_id or "" for t in billed) == sorted(events)
    assert all(not t.active and t.cost_minor is not None for t in billed)
    assert store.verify_balances() == []
    assert server.violations == []
    store.close()
