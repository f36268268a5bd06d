"""A central system that answers with hostile values (issue 10, findings 9, 10, 13): the charger stays in service,
every frame gets an answer, the link stays up, and no session charges unrecorded or unheard of."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from backend_stub.ocpp.server import CALLERROR, CALLRESULT, CallErrorReply, utc_now_iso
from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from chargepoint.agent import Agent
from chargepoint.csms import link as link_module
from chargepoint.ports import SystemClock
from hardware.sim import SimRelay
from tests.integration.conftest import FAST_TIMING, RunningAgent, StartAgent, agent_config, until

FAR_FUTURE = "9999-12-31T23:59:59Z"


def _relay(a: RunningAgent) -> SimRelay:
    relay = a.sim().relay
    assert relay is not None
    return relay


def _year(text: str) -> int:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).year


async def _answer_to(cs: CentralSystem, unique_id: str, timeout: float = 5) -> Any:
    return await cs.wait_for(
        lambda f: (
            f.direction == "in" and f.unique_id == unique_id and f.message_type in (CALLRESULT, CALLERROR)
        ),
        timeout,
    )


# finding 9: a hostile currentTime


async def test_a_far_future_time_at_boot_is_ignored_and_sessions_still_start_and_stop(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    boot = cs.handlers["BootNotification"]
    cs.handlers["BootNotification"] = lambda cp, p: {**boot(cp, p), "currentTime": FAR_FUTURE}  # type: ignore[dict-item]
    a = await start_agent()
    a.plug()
    a.swipe("CARD9")
    start = await cs.wait_for_call("StartTransaction")
    await a.wait_state("CHARGING")
    assert _relay(a).closed
    assert _year(start.payload["timestamp"]) < 2100
    a.unplug()
    stop = await cs.wait_for_call("StopTransaction")
    assert stop.payload["reason"] == "EVDisconnected" and _year(stop.payload["timestamp"]) < 2100
    assert not _relay(a).closed


async def test_a_far_future_heartbeat_mid_session_leaves_the_session_running_and_stoppable(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    a = await start_agent(settings={"meter_value_sample_interval_s": 1})
    a.plug()
    a.swipe("CARD9")
    await cs.wait_for_call("StartTransaction")
    await a.wait_state("CHARGING")
    cs.handlers["Heartbeat"] = lambda cp, p: {"currentTime": FAR_FUTURE}
    await cs.call("CP-1", "TriggerMessage", {"requestedMessage": "Heartbeat"})
    await cs.wait_for_call("Heartbeat")
    await asyncio.sleep(1.5)  # 9999-12-31T23:59:59 plus a second is past the year 9999
    after = len(cs.log)
    # The session goes on: periodic meter values keep coming with a sane timestamp, the relay stays closed.
    mv = await cs.wait_for_call("MeterValues", after=after, timeout=5)
    assert _year(mv.payload["meterValue"][0]["timestamp"]) < 2100
    assert _relay(a).closed and a.state() == "CHARGING"
    a.unplug()
    stop = await cs.wait_for_call("StopTransaction")
    assert stop.payload["reason"] == "EVDisconnected"
    assert a.station.connectors[1].transaction is None


class _FailingClock(SystemClock):
    """The real clock until told to fail: then every read raises, as an overflowing offset did."""

    failing = False

    def now(self) -> datetime:
        if self.failing:
            raise OverflowError("date value out of range")
        return super().now()


async def test_a_clock_that_raises_cannot_keep_a_transaction_open(cs: CentralSystem, tmp_path: Path) -> None:
    clock = _FailingClock()
    agent = Agent(agent_config(cs.url, tmp_path / "agent.db"), timing=FAST_TIMING, clock=clock)
    task = asyncio.create_task(agent.run())
    a = RunningAgent(agent, task, cs)
    try:
        await a.wait_booted()
        a.plug()
        a.swipe("CARD9")
        await cs.wait_for_call("StartTransaction")
        await a.wait_state("CHARGING")
        clock.failing = True
        a.unplug()
        stop = await cs.wait_for_call("StopTransaction", timeout=5)
        assert stop.payload["reason"] == "EVDisconnected"
        assert not _relay(a).closed
        assert a.station.connectors[1].transaction is None
        store = agent.store
        assert store is not None and store.active_transactions() == []
    finally:
        clock.failing = False
        await a.stop()


async def test_sigterm_after_a_hostile_time_ends_the_transaction_with_reason_reboot(
    cs: CentralSystem, tmp_path: Path
) -> None:
    boot = cs.handlers["BootNotification"]
    cs.handlers["BootNotification"] = lambda cp, p: {**boot(cp, p), "currentTime": FAR_FUTURE}  # type: ignore[dict-item]
    cs.handlers["Heartbeat"] = lambda cp, p: {"currentTime": FAR_FUTURE}
    config = tmp_path / "station.toml"
    config.write_text(f"""
[station]
id = "TIME-CP"
[csms]
url = "{cs.url}"
[storage]
path = "agent.db"
[control]
socket = "ctl.sock"
[agent]
meter_poll_s = 0.1
[[connectors]]
id = 1
relay = {{ driver = "sim" }}
meter = {{ driver = "sim", energy_wh = 2000 }}
plug = {{ driver = "sim" }}
reader = {{ driver = "sim" }}
""")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chargepoint", "run", "--config", str(config), stderr=asyncio.subprocess.DEVNULL
    )
    try:
        await cs.wait_for_call("BootNotification", timeout=20)

        async def ctl(*args: str) -> None:
            p = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "chargepoint", "ctl", "--config", str(config), *args,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, err = await p.communicate()
            assert p.returncode == 0, err.decode()

        await ctl("plug", "1")
        await ctl("swipe", "1", "timetag")
        await cs.wait_for_call("StartTransaction", timeout=10)
        await cs.call("TIME-CP", "TriggerMessage", {"requestedMessage": "Heartbeat"})
        await cs.wait_for_call("Heartbeat", timeout=10)  # the hostile time comes once more, mid-session
        await asyncio.sleep(1.5)  # past the year 9999, had it been adopted
        proc.terminate()
        async with asyncio.timeout(20):
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stops = cs.calls("StopTransaction")
    assert len(stops) == 1 and stops[0].payload["reason"] == "Reboot"
    assert _year(stops[0].payload["timestamp"]) < 2100


# finding 10: poison answers and poison calls


async def test_a_transaction_id_beyond_64_bits_is_refused_and_the_outbox_goes_on(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    poisoned = True

    def start(cp: str, p: dict[str, Any]) -> dict[str, Any]:
        if poisoned:
            return {"transactionId": 2**63, "idTagInfo": {"status": "Accepted"}}
        return {"transactionId": cs.next_transaction_id(), "idTagInfo": {"status": "Accepted"}}

    cs.handlers["StartTransaction"] = start
    a = await start_agent(settings={"transaction_message_attempts": 2})
    a.plug()
    a.swipe("CARD10")
    await cs.wait_for_call("StartTransaction")
    # The poisoned answer counts as a refusal; after TransactionMessageAttempts the start is a dead letter and
    # the session it belongs to is stopped (finding 13), relay open.
    await until(lambda: len(cs.calls("StartTransaction")) == 2, 10, "StartTransaction was not retried")
    await until(lambda: a.station.connectors[1].transaction is None, 10, "the session was never stopped")
    assert not _relay(a).closed
    link = a.agent.link
    assert link is not None and link.connections == 1
    store = a.agent.store
    assert store is not None
    await until(lambda: store.outbox_size() == 0, 5, "the outbox never emptied")
    assert [d["kind"] for d in store.dead_letters()] == ["start", "stop"]
    assert not cs.calls("StopTransaction")
    # The outbox task is alive: the next session is delivered in full.
    poisoned = False
    a.unplug()
    await a.wait_state("AVAILABLE")
    a.plug()
    a.swipe("CARD10")
    await cs.wait_for_call("StartTransaction", where=lambda p: True, after=len(cs.log))
    await a.wait_state("CHARGING")
    a.unplug()
    stop = await cs.wait_for_call("StopTransaction")
    assert stop.payload["transactionId"] < 2**63


def _profile(limit: str, profile_id: str = "1") -> str:
    schedule = (
        '"chargingSchedule":{"chargingRateUnit":"A","startSchedule":"2024-01-01T00:00:00Z",'
        '"chargingSchedulePeriod":[{"startPeriod":0,"limit":' + limit + "}]}"
    )
    return (
        '{"connectorId":0,"csChargingProfiles":{"chargingProfileId":' + profile_id + ',"stackLevel":0,'
        '"chargingProfilePurpose":"ChargePointMaxProfile","chargingProfileKind":"Absolute",' + schedule + "}}"
    )


POISON_CALLS: list[tuple[str, str, str]] = [
    # (uniqueId, raw frame payload after [2,"id", ..., expected 1.6 error code)
    ("nan", '"SetChargingProfile",' + _profile("NaN"), "FormationViolation"),
    ("inf", '"SetChargingProfile",' + _profile("Infinity"), "FormationViolation"),
    ("ninf", '"SetChargingProfile",' + _profile("-Infinity"), "FormationViolation"),
    ("e308", '"SetChargingProfile",' + _profile("1e308"), "PropertyConstraintViolation"),
    ("e309", '"SetChargingProfile",' + _profile("1e309"), "PropertyConstraintViolation"),
    ("pid63", '"SetChargingProfile",' + _profile("16", str(2**63)), "PropertyConstraintViolation"),
    ("lv-1", '"SendLocalList",{"listVersion":-1,"updateType":"Full"}', "PropertyConstraintViolation"),
    (
        "lv23",
        '"SendLocalList",{"listVersion":100000000000000000000000,"updateType":"Full"}',
        "PropertyConstraintViolation",
    ),
    ("lvar", '"SendLocalList",{"listVersion":"\u0661\u0662","updateType":"Full"}', "TypeConstraintViolation"),
    ("rs63", '"RemoteStopTransaction",{"transactionId":' + str(2**63) + "}", "PropertyConstraintViolation"),
    ("cid-1", '"UnlockConnector",{"connectorId":-1}', "PropertyConstraintViolation"),
    (
        "dur",
        '"GetCompositeSchedule",{"connectorId":0,"duration":' + str(2**63) + "}",
        "PropertyConstraintViolation",
    ),
    (
        "deep",
        '"DataTransfer",{"vendorId":"x","data":"y","z":' + "[" * 500 + "]" * 500 + "}",
        "FormationViolation",
    ),
]


async def test_poison_calls_get_the_right_call_error_and_the_link_stays_up(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    a = await start_agent(settings={"local_auth_list_enabled": True})
    link = a.agent.link
    assert link is not None
    for unique_id, body, code in POISON_CALLS:
        await cs.send_raw("CP-1", f'[2,"{unique_id}",{body}]')
        answer = await _answer_to(cs, unique_id)
        assert answer.message_type == CALLERROR, (unique_id, answer.raw)
        assert json.loads(answer.raw)[2] == code, (unique_id, answer.raw)
    # The same connection answers a good call afterwards, and nothing was installed or changed.
    assert await cs.call("CP-1", "GetLocalListVersion", {}) == {"listVersion": 0}
    assert link.connections == 1 and "CP-1" in cs.connected
    assert a.station.profiles == []
    # Raw frames are sent past the server's bookkeeping, so it does not know the uniqueIds answered.
    assert all("unknown uniqueId" in v[2] for v in cs.violations)
    cs.violations.clear()


async def test_unicode_digits_are_not_numbers_in_change_configuration(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    await start_agent()
    answer = await cs.call(
        "CP-1", "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "\u0661\u0662"}
    )
    assert answer == {"status": "Rejected"}
    answer = await cs.call("CP-1", "GetConfiguration", {"key": ["HeartbeatInterval"]})
    assert answer["configurationKey"][0]["value"] != "12"


async def test_an_answer_the_agent_chokes_on_is_ignored_and_the_link_stays_up(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    a = await start_agent()
    link = a.agent.link
    assert link is not None
    # CALLRESULTs and CALLERRORs nobody asked for, with poison inside: logged and dropped, never fatal.
    await cs.send_raw("CP-1", '[3,"nobody",{"x":NaN}]')
    await cs.send_raw("CP-1", '[4,"nobody","InternalError","",{"x":' + "[" * 500 + "]" * 500 + "}]")
    cs.handlers["Heartbeat"] = lambda cp, p: {"currentTime": utc_now_iso()}
    await cs.call("CP-1", "TriggerMessage", {"requestedMessage": "Heartbeat"})
    await cs.wait_for_call("Heartbeat")
    assert link.connections == 1 and "CP-1" in cs.connected


# finding 13: an unauthorized session nobody hears of


async def test_an_invalid_start_answer_without_transaction_id_stops_the_session(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    cs.validate_responses = False
    cs.handlers["StartTransaction"] = lambda cp, p: {"idTagInfo": {"status": "Invalid"}}
    a = await start_agent(
        settings={"transaction_message_attempts": 3, "transaction_message_retry_interval_s": 5}
    )
    a.plug()
    a.swipe("BADCARD")
    await cs.wait_for_call("StartTransaction")
    # The answer is malformed, but its status is readable: the session stops at once (StopTransactionOnInvalidId),
    # long before the retries run out, with the EV still plugged.
    await until(lambda: a.station.connectors[1].transaction is None, 3, "the session was never stopped")
    assert not _relay(a).closed
    await a.wait_state("FINISHING")
    store = a.agent.store
    assert store is not None
    assert not cs.calls("StopTransaction")
    stops = [json.loads(d["payload"]) for d in store.dead_letters() if d["kind"] == "stop"]
    assert stops == [] or stops[0]["reason"] == "DeAuthorized"


async def test_a_start_that_ends_in_dead_letters_stops_its_session_and_tells_the_operator(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    def refuse(cp_id: str, payload: dict[str, Any]) -> Any:
        raise CallErrorReply("InternalError", "no")

    cs.handlers["StartTransaction"] = refuse
    a = await start_agent(settings={"transaction_message_attempts": 2})
    a.plug()
    a.swipe("REFUSED")
    await cs.wait_for_call("StartTransaction")
    await until(lambda: a.station.connectors[1].transaction is None, 10, "the session was never stopped")
    assert not _relay(a).closed
    status = await cs.wait_for_call(
        "StatusNotification", where=lambda p: p["connectorId"] == 1 and "not accepted" in p.get("info", "")
    )
    assert status.payload["status"] == "Finishing"
    assert "not accepted" in (a.station.snapshot()["1"]["notice"] or "")
    store = a.agent.store
    assert store is not None
    await until(lambda: store.outbox_size() == 0, 5, "the outbox never emptied")
    kinds = [d["kind"] for d in store.dead_letters()]
    assert kinds[0] == "start" and "stop" in kinds
    assert not cs.calls("StopTransaction")


async def test_an_unexpected_error_in_the_outbox_is_logged_and_the_outbox_goes_on(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    a = await start_agent()
    store = a.agent.store
    assert store is not None
    # The agent's StartupOfTheDevice security event goes first; the fault is meant for the StartTransaction.
    await until(lambda: store.outbox_size() == 0, 5, "the startup security event was not delivered")
    real_acknowledge = store.acknowledge
    failures = [RuntimeError("a bug in recording the answer")]

    def acknowledge(*args: Any, **kwargs: Any) -> None:
        if failures:
            raise failures.pop()  # fault injection: a bug cannot be had here otherwise
        real_acknowledge(*args, **kwargs)

    store.acknowledge = acknowledge  # type: ignore[method-assign]
    a.plug()
    a.swipe("CARD10")
    await a.wait_state("CHARGING")
    # The failure counts as one attempt; the StartTransaction goes again and is recorded this time.
    await until(lambda: len(cs.calls("StartTransaction")) == 2, 10, "StartTransaction was not retried")
    await until(
        lambda: store.csms_transaction_id(a.station.connectors[1].transaction.local_id) is not None,  # type: ignore[union-attr]
        5,
    )
    a.unplug()
    stop = await cs.wait_for_call("StopTransaction")
    assert stop.payload["transactionId"] == 1  # the id of the (idempotently) answered StartTransaction
    assert store.dead_letters() == []


async def test_a_flood_of_bad_frames_is_answered_in_full_but_logged_only_a_few_times(
    cs: CentralSystem, start_agent: StartAgent, caplog: pytest.LogCaptureFixture
) -> None:
    a = await start_agent()
    caplog.set_level(logging.WARNING, logger="chargepoint.csms.rpc")
    # In batches of 10: more CALLs than the agent queues per connection (16) would be answered 'busy' instead.
    for batch in range(0, 50, 10):
        for n in range(batch, batch + 10):
            await cs.send_raw("CP-1", f'[2,"flood-{n}","Reset",{{"type":NaN}}]')
        for n in range(batch, batch + 10):
            answer = await _answer_to(cs, f"flood-{n}")
            assert json.loads(answer.raw)[2] == "FormationViolation"
    lines = [r for r in caplog.records if r.name == "chargepoint.csms.rpc"]
    assert 1 <= len(lines) <= 10, len(lines)  # not one line per frame
    link = a.agent.link
    assert link is not None and link.connections == 1
    cs.violations.clear()  # raw frames: the server does not know the uniqueIds answered


@pytest.mark.parametrize("action", ["TriggerMessage", "ExtendedTriggerMessage"])
async def test_a_burst_of_triggers_is_bounded_and_every_accepted_one_is_sent(
    cs: CentralSystem, start_agent: StartAgent, action: str
) -> None:
    """A CSMS asking for triggered messages faster than they go out gets Rejected beyond a few in flight (the
    session's follow-up bound, shared with 2.0.1), instead of the charger piling up tasks; each Accepted one
    arrives and the link stays up."""
    a = await start_agent()
    link = a.agent.link
    assert link is not None
    plain = cs.handlers["MeterValues"]

    async def slow(cp_id: str, payload: dict[str, Any]) -> Any:
        await asyncio.sleep(0.3)  # a slow central system: the triggered messages queue up at the charger
        return plain(cp_id, payload)

    cs.handlers["MeterValues"] = slow  # type: ignore[assignment]
    before = len(cs.calls("MeterValues", "CP-1"))
    for n in range(12):
        body = json.dumps([2, f"trig-{n}", action, {"requestedMessage": "MeterValues", "connectorId": 1}])
        await cs.send_raw("CP-1", body)
    statuses = [json.loads((await _answer_to(cs, f"trig-{n}")).raw)[2]["status"] for n in range(12)]
    accepted = statuses.count("Accepted")
    assert set(statuses) == {"Accepted", "Rejected"} and 1 <= accepted <= 4, statuses
    await until(
        lambda: len(cs.calls("MeterValues", "CP-1")) - before >= accepted,
        10,
        "an accepted trigger was not sent",
    )
    assert link.connections == 1 and "CP-1" in cs.connected
    cs.violations.clear()  # raw frames: the server does not know the uniqueIds answered


async def test_a_flood_of_stray_answers_while_the_charger_is_busy_is_held_back_by_the_socket_not_memory(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """CALLRESULTs nobody asked for cannot be refused with 'busy' as surplus CALLs are. While the adapter is held up
    (here: its answer waits for a slow store commit), at most a few of them wait in the charger's memory; the rest
    stay in the socket until it catches up. None is lost: a CALL sent after the flood is still answered, in order,
    on the same connection."""
    a = await start_agent()
    store = a.agent.store
    link = a.agent.link
    assert store is not None and link is not None and link.session is not None
    gate = asyncio.Event()
    real_flush = store.flush

    async def slow_flush(since: int | None = None) -> None:
        await gate.wait()
        await real_flush(since)

    store.flush = slow_flush  # type: ignore[method-assign]
    await cs.send_raw("CP-1", '[2,"held","GetConfiguration",{}]')
    for n in range(2000):
        await cs.send_raw("CP-1", f'[3,"stray-{n}",{{}}]')
    await cs.send_raw("CP-1", '[2,"after","GetConfiguration",{"key":["HeartbeatInterval"]}]')
    await asyncio.sleep(0.5)  # the reader takes what it will off the socket
    peak = link.session._connection.peak_queued
    gate.set()  # first: the agent's shutdown flushes the store too
    assert peak <= link_module.MAX_QUEUED_OTHER_FRAMES + 2, peak
    assert json.loads((await _answer_to(cs, "held")).raw)[0] == CALLRESULT
    after = json.loads((await _answer_to(cs, "after", timeout=15)).raw)
    assert after[0] == CALLRESULT and after[2]["configurationKey"][0]["key"] == "HeartbeatInterval"
    assert link.connections == 1
    cs.violations.clear()  # raw frames: the server does not know the uniqueIds answered
