"""Every frame the 2.0.1 agent sends fits BytesPerMessage, against the bundled central system configured with the
same frame limit (a frame over it closes the connection): MeterValues in parts, TransactionEvent trimmed (one
seqNo per queued event), NotifyReport and NotifyEvent in numbered parts (seqNo, tbc), a message that cannot fit
kept as a dead letter, and an answer replaced by InternalError followed by nothing it promised."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

from backend_stub.app import Csms
from chargepoint.core.events import MeterReadings
from chargepoint.core.settings import MIN_BYTES_PER_MESSAGE, SPECS
from tests.integration.conftest import RunningAgent, until
from tests.integration.test_agent_v201_smart import profile, set_profile
from tests.integration.test_frame_limit import FIRST, LIMIT, _queue_samples, _set_limit, phase_sample
from tests.integration.v201_support import (
    CP,
    StartAgent,
    call_error,
    calls,
    csms,
    get_value,
    mark,
    set_value,
    start_agent,
    start_session,
    still_connected,
    wait_call,
)

__all__ = ["csms", "start_agent"]  # the fixtures


def _frames(csms: Csms, action: str, after: int) -> list[Any]:
    return [
        f
        for f in csms.server.log[after:]
        if f.direction == "in" and f.message_type == 2 and f.action == action
    ]


async def _limited(csms: Csms, start_agent: StartAgent, limit: int = LIMIT, **kwargs: Any) -> RunningAgent:
    """An agent built with BytesPerMessage ``limit`` on a CSMS that drops any frame over ``limit``."""
    csms.server.max_message_bytes = limit
    a = await start_agent(boot=False, **kwargs)
    _set_limit(a, limit)
    await a.wait_booted()
    return a


def _card(csms: Csms, tag: str) -> None:
    csms.store.add_card(tag, user_id=csms.store.add_user(f"user-{tag}").id, mode="personal")


async def test_meter_values_over_the_frame_limit_arrive_as_several_that_fit(
    csms: Csms, start_agent: StartAgent
) -> None:
    a = await _limited(csms, start_agent)
    samples = [phase_sample(FIRST + timedelta(minutes=n)) for n in range(2)]
    store, link = a.agent.store, a.agent.link
    assert store is not None and link is not None
    after = mark(csms)
    store.queue(MeterReadings(1, tuple(samples)))
    link.outbox.changed()
    await until(lambda: store.outbox_size() == 0, 10, "the samples were not delivered")
    parts = [
        f
        for f in _frames(csms, "MeterValues", after)
        if f.payload["meterValue"][0]["timestamp"] < "2026-01-02"
    ]
    assert len(parts) > 2 and all(len(f.raw.encode()) <= LIMIT for f in parts)
    got = [
        (mv["timestamp"], v["measurand"], v.get("phase"), v["value"])
        for f in parts
        for mv in f.payload["meterValue"]
        for v in mv["sampledValue"]
    ]
    want = [
        (f"2026-01-01T00:0{n}:00.000Z", v.measurand.value, v.phase, v.value)
        for n, s in enumerate(samples)
        for v in s.values
    ]
    assert got == want
    assert store.dead_letters() == []
    still_connected(a)


async def test_an_updated_event_over_the_limit_is_trimmed_and_keeps_its_seq_no(
    csms: Csms, start_agent: StartAgent
) -> None:
    """One queued Updated event is one TransactionEvent with one seqNo: a sample over the limit keeps its timestamp
    and the values that fit (the register first), and the Ended event follows with the next seqNo."""
    _card(csms, "CARD1")
    a = await _limited(csms, start_agent)
    started = await start_session(a, csms, "CARD1")
    tx_id = started["transactionInfo"]["transactionId"]
    after = mark(csms)
    _queue_samples(a, [phase_sample(FIRST), phase_sample(FIRST + timedelta(minutes=1))])
    updated = await wait_call(
        csms,
        "TransactionEvent",
        after=after,
        where=lambda p: (
            p["eventType"] == "Updated"
            and p.get("meterValue", [{}])[-1].get("timestamp", "").startswith("2026-01-01")
        ),
    )
    assert len(updated.raw.encode()) <= LIMIT
    [value] = updated.payload["meterValue"]  # the newest sample, trimmed
    assert value["timestamp"] == "2026-01-01T00:01:00.000Z"
    assert 1 <= len(value["sampledValue"]) < 12  # of 12
    assert value["sampledValue"][0]["measurand"] == "Energy.Active.Import.Register"
    a.unplug()
    ended = await wait_call(csms, "TransactionEvent", after=after, where=lambda p: p["eventType"] == "Ended")
    events = [p for p in calls(csms, "TransactionEvent") if p["transactionInfo"]["transactionId"] == tx_id]
    assert [p["seqNo"] for p in events] == list(range(len(events)))  # no gap, no repeat
    assert ended.payload["seqNo"] == events[-1]["seqNo"]
    still_connected(a)


async def test_a_full_report_arrives_in_numbered_parts_that_fit(csms: Csms, start_agent: StartAgent) -> None:
    """FullInventory under a 1,024-byte limit and ItemsPerMessage 2: every part's frame fits and holds at most 2
    entries, seqNo counts from 0 without a gap, tbc on all but the last, and every entry arrives once."""
    a = await _limited(csms, start_agent)
    settings = a.station.settings
    settings._own = {**(settings._own or {}), "get_configuration_max_keys": 2}
    session = a.agent.link.session  # type: ignore[union-attr]
    want = session.base_report("FullInventory")
    after = mark(csms)
    assert await csms.server.call(CP, "GetBaseReport", {"requestId": 7, "reportBase": "FullInventory"}) == {
        "status": "Accepted"
    }
    await wait_call(csms, "NotifyReport", after=after, where=lambda p: not p.get("tbc", False), timeout=20)
    parts = _frames(csms, "NotifyReport", after)
    assert all(len(f.raw.encode()) <= LIMIT and len(f.payload["reportData"]) <= 2 for f in parts)
    assert [f.payload["seqNo"] for f in parts] == list(range(len(parts)))
    assert [f.payload["tbc"] for f in parts] == [True] * (len(parts) - 1) + [False]
    assert [d for f in parts for d in f.payload["reportData"]] == want
    still_connected(a)


async def test_notify_event_is_split_into_numbered_parts_that_fit(
    csms: Csms, start_agent: StartAgent
) -> None:
    """Four EVSEs made Inoperative at once change 18 availability variables (~4 KB of eventData): NotifyEvent goes
    in parts under the limit, seqNo from 0, tbc on all but the last, every change told once."""
    a = await _limited(csms, start_agent, connectors=4)
    after = mark(csms)

    def told() -> list[tuple[str, str, str]]:
        return [
            (e["component"]["name"], str(e["component"].get("evse")), e["variable"]["name"])
            for f in _frames(csms, "NotifyEvent", after)
            for e in f.payload["eventData"]
        ]

    answer = await csms.server.call(CP, "ChangeAvailability", {"operationalStatus": "Inoperative"})
    assert answer["status"] == "Accepted"
    # (Available, AvailabilityState) x (4 connectors, 4 EVSEs, the station)
    await until(lambda: len(told()) >= 18, 10, "not every change was told")
    assert len(told()) == len(set(told())) == 18
    parts = _frames(csms, "NotifyEvent", after)
    assert all(len(f.raw.encode()) <= LIMIT for f in parts)
    # One NotifyEvent per snapshot of changes, each in parts numbered from 0 (they may come in more than one).
    messages: list[list[Any]] = []
    for f in parts:
        if f.payload["seqNo"] == 0:
            messages.append([])
        messages[-1].append(f)
    assert any(len(m) > 1 for m in messages)
    for m in messages:
        assert [f.payload["seqNo"] for f in m] == list(range(len(m)))
        assert [f.payload.get("tbc", False) for f in m] == [True] * (len(m) - 1) + [False]
    still_connected(a)


async def test_a_message_that_cannot_fit_is_a_dead_letter(
    csms: Csms, start_agent: StartAgent, caplog: pytest.LogCaptureFixture
) -> None:
    """Under a limit smaller than a MeterValuesRequest with one value the queued message is never sent: a dead
    letter at once, said so in the log, and the link stays up."""
    a = await start_agent()
    store, link = a.agent.store, a.agent.link
    assert store is not None and link is not None
    _set_limit(a, 200)
    after = mark(csms)
    with caplog.at_level(logging.ERROR, logger="chargepoint.csms.outbox"):
        store.queue(MeterReadings(1, (phase_sample(FIRST),)))
        link.outbox.changed()
        await until(
            lambda: any("too large" in d["reason"] for d in store.dead_letters()), 10, "no dead letter"
        )
    assert "cannot be made to fit in one frame" in caplog.text
    assert _frames(csms, "MeterValues", after) == []
    still_connected(a)


async def test_answers_replaced_by_internal_error_start_no_follow_up(
    csms: Csms, start_agent: StartAgent
) -> None:
    """GetBaseReport and Reset answered Accepted over a 40-byte limit become InternalError: no NotifyReport
    follows and the station does not restart; under the normal limit the same GetBaseReport is followed by its
    report."""
    a = await start_agent()
    _set_limit(a, 40)
    after = mark(csms)
    assert (
        await call_error(csms, "GetBaseReport", {"requestId": 9, "reportBase": "SummaryInventory"})
        == "InternalError"
    )
    assert await call_error(csms, "Reset", {"type": "Immediate"}) == "InternalError"
    _set_limit(a, 65_000)
    # A later CALL is routed once the earlier ones were handled, their follow-ups included.
    assert await csms.server.call(
        CP, "GetBaseReport", {"requestId": 10, "reportBase": "SummaryInventory"}
    ) == {"status": "Accepted"}
    await wait_call(csms, "NotifyReport", after=after, where=lambda p: p["requestId"] == 10)
    assert {p["requestId"] for p in calls(csms, "NotifyReport", after)} == {10}
    requested = a.station.reset_requested
    assert requested is None or not requested.done()
    still_connected(a)


async def test_charging_profiles_are_reported_in_parts_that_fit(csms: Csms, start_agent: StartAgent) -> None:
    """Three TxDefaultProfiles of 16 periods each (~2.4 KB) on one EVSE under a 1,024-byte limit: one
    ReportChargingProfiles per profile, each under the limit, tbc on all but the last, every profile once."""
    a = await _limited(csms, start_agent)
    for n in range(3):
        periods = [{"startPeriod": 60 * p, "limit": 6.0 + p} for p in range(16)]
        body = profile(10 + n, "TxDefaultProfile", 0, stack_level=n, periods=periods, schedule_id=20 + n)
        assert await set_profile(csms, 1, body) == "Accepted"
    after = mark(csms)
    answer = await csms.server.call(CP, "GetChargingProfiles", {"requestId": 8, "chargingProfile": {}})
    assert answer == {"status": "Accepted"}
    await wait_call(csms, "ReportChargingProfiles", after=after, where=lambda p: not p["tbc"])
    parts = _frames(csms, "ReportChargingProfiles", after)
    assert len(parts) == 3 and all(len(f.raw.encode()) <= LIMIT for f in parts)
    assert [f.payload["tbc"] for f in parts] == [True, True, False]
    assert sorted(p["id"] for f in parts for p in f.payload["chargingProfile"]) == [10, 11, 12]
    assert all(
        len(p["chargingSchedule"][0]["chargingSchedulePeriod"]) == 16
        for f in parts
        for p in f.payload["chargingProfile"]
    )
    still_connected(a)


async def test_at_the_least_configurable_limit_a_full_charging_profile_is_still_reported(
    csms: Csms, start_agent: StartAgent
) -> None:
    """``csms.bytes_per_message`` at its least (MIN_BYTES_PER_MESSAGE) still holds a ReportChargingProfiles with
    one profile of PeriodsPerSchedule periods: below that, a GetChargingProfiles answered Accepted was followed by
    no report at all (the only profile left out as too big). The configured value is what the CSMS is told, and
    it cannot change it (DeviceDataCtrlr.BytesPerMessage is read-only)."""
    csms.server.max_message_bytes = MIN_BYTES_PER_MESSAGE
    a = await start_agent(csms={"bytes_per_message": MIN_BYTES_PER_MESSAGE})
    told = await get_value(csms, "DeviceDataCtrlr", "BytesPerMessage")
    assert (told["attributeStatus"], told["attributeValue"]) == ("Accepted", str(MIN_BYTES_PER_MESSAGE))
    refused = await set_value(csms, "DeviceDataCtrlr", "BytesPerMessage", "65000")
    assert refused["attributeStatus"] == "Rejected"
    # The 2.0.1 device model names it per message (BytesPerMessage instance GetReport / GetVariables /
    # SetVariables, B06.FR.05): the one limit answers for each, which is what a CSMS sizing its requests reads.
    for instance in ("GetReport", "GetVariables", "SetVariables"):
        data = {
            "component": {"name": "DeviceDataCtrlr"},
            "variable": {"name": "BytesPerMessage", "instance": instance},
        }
        [result] = (await csms.server.call(CP, "GetVariables", {"getVariableData": [data]}))[
            "getVariableResult"
        ]
        assert (result["attributeStatus"], result.get("attributeValue")) == (
            "Accepted",
            str(MIN_BYTES_PER_MESSAGE),
        )
        assert result["variable"] == data["variable"]
    periods = SPECS["charging_schedule_max_periods"].default
    body = profile(
        2_000_000_000,
        "TxDefaultProfile",
        0,
        kind="Absolute",
        stack_level=8,
        periods=[{"startPeriod": 3600 * p, "limit": 16.5, "numberPhases": 3} for p in range(periods)],
        schedule_id=2_000_000_001,
        startSchedule="2026-01-01T00:00:00.000Z",
        duration=86_400 * 7,
        minChargingRate=6.1,
    )
    body.update(validFrom="2026-01-01T00:00:00.000Z", validTo="2036-01-01T00:00:00.000Z")
    assert await set_profile(csms, 1, body) == "Accepted"
    after = mark(csms)
    answer = await csms.server.call(CP, "GetChargingProfiles", {"requestId": 9, "chargingProfile": {}})
    assert answer == {"status": "Accepted"}
    report = await wait_call(csms, "ReportChargingProfiles", after=after, where=lambda p: not p["tbc"])
    assert [p["id"] for p in report.payload["chargingProfile"]] == [2_000_000_000]
    assert len(report.raw.encode()) <= MIN_BYTES_PER_MESSAGE
    still_connected(a)
