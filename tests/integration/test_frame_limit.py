"""Every frame the 1.6 agent sends fits BytesPerMessage, against the scripted central system configured with the
same frame limit (a frame over it closes the connection, as real servers do): what can be cut is sent in parts,
what cannot is kept as a dead letter, and an answer replaced by InternalError does not run its follow-up."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from backend_stub.ocpp.server import CallErrorReply
from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from chargepoint.core.events import TransactionUpdated
from chargepoint.core.model import Sample
from tests.integration.conftest import RunningAgent, StartAgent, until
from tests.integration.octt_support import mark, start_session
from tests.integration.test_robustness import _phase_sample as phase_sample  # 12 values, ~1.2 KB as 1.6 JSON

LIMIT = 1024  # below the least a configuration allows (4,096), set at runtime; one sample below is bigger
FIRST = datetime(2026, 1, 1, tzinfo=UTC)


def _set_limit(a: RunningAgent, limit: int) -> None:
    """BytesPerMessage changed under a running station (read-only to the CSMS; ``csms.bytes_per_message`` sets
    it at start): for limits below what a configuration allows, and changes mid-test."""
    settings = a.station.settings
    settings._own = {**(settings._own or {}), "bytes_per_message": limit}


def _queue_samples(a: RunningAgent, samples: list[Sample]) -> None:
    """Queue the running transaction's samples as one outbox message (a TransactionUpdated)."""
    tx = a.station.connectors[1].transaction
    store, link = a.agent.store, a.agent.link
    assert tx is not None and store is not None and link is not None
    update = TransactionUpdated(tx.transaction_id, 1, tuple(samples))
    store.record_meter(tx.local_id, 2000, samples[-1].timestamp, message=update)
    link.outbox.changed()


def _connected_once(a: RunningAgent) -> None:
    link = a.agent.link
    assert link is not None and link.online and link.connections == 1


async def test_meter_values_over_the_frame_limit_arrive_as_several_that_fit(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """Three samples of 12 values each (~3.6 KB) under a 1,024-byte limit on both sides: several MeterValues, each
    under the limit, each value once with its own timestamp, and the connection never dropped."""
    cs.max_message_bytes = LIMIT
    a = await start_agent(boot=False)
    _set_limit(a, LIMIT)
    await a.wait_booted()
    _, tx_id = await start_session(a, cs)
    samples = [phase_sample(FIRST + timedelta(minutes=n)) for n in range(3)]
    after = mark(cs)
    _queue_samples(a, samples)
    store = a.agent.store
    assert store is not None
    await until(lambda: store.outbox_size() == 0, 10, "the samples were not delivered")
    parts = [
        f
        for f in cs.log[after:]
        if f.direction == "in"
        and f.action == "MeterValues"
        and all(mv["timestamp"].startswith("2026-01-01") for mv in f.payload["meterValue"])
    ]
    assert len(parts) > 3  # each sample alone is over the limit: cut within the sample too
    assert all(len(f.raw.encode()) <= LIMIT for f in parts)
    assert all(f.payload["transactionId"] == tx_id and f.payload["connectorId"] == 1 for f in parts)
    got = [
        (mv["timestamp"], v["measurand"], v.get("phase"))
        for f in parts
        for mv in f.payload["meterValue"]
        for v in mv["sampledValue"]
    ]
    want = [
        (f"2026-01-01T00:0{n}:00.000Z", v.measurand.value, v.phase)
        for n, s in enumerate(samples)
        for v in s.values
    ]
    assert got == want  # nothing lost, nothing repeated, in order, every value under its own timestamp
    assert store.dead_letters() == []
    _connected_once(a)


async def test_a_message_that_cannot_fit_is_a_dead_letter_and_the_queue_moves_on(
    cs: CentralSystem, start_agent: StartAgent, caplog: pytest.LogCaptureFixture
) -> None:
    """Under a limit smaller than a MeterValues with one value, the queued message is never sent (it would drop
    the link and come back after every reconnect): it is a dead letter at once, said so in the log, and the
    StopTransaction behind it goes through on the same connection."""
    a = await start_agent()
    _, tx_id = await start_session(a, cs)
    store = a.agent.store
    assert store is not None
    _set_limit(a, 200)
    after = mark(cs)
    with caplog.at_level(logging.ERROR, logger="chargepoint.csms.outbox"):
        _queue_samples(a, [phase_sample(FIRST)])
        await until(
            lambda: any("too large" in d["reason"] for d in store.dead_letters()), 10, "no dead letter"
        )
    assert "cannot be made to fit in one frame" in caplog.text
    [dead] = [d for d in store.dead_letters() if "too large" in d["reason"]]
    assert dead["kind"] == "meter" and "BytesPerMessage (200)" in dead["reason"]
    assert not [f for f in cs.log[after:] if f.direction == "in" and f.action == "MeterValues"]
    _set_limit(a, 65_000)
    a.unplug()
    stop = await cs.wait_for_call("StopTransaction", after=after)
    assert stop.payload["transactionId"] == tx_id
    _connected_once(a)


async def test_a_reset_whose_answer_was_replaced_is_not_carried_out(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """The size guard turns a Reset.conf over BytesPerMessage into InternalError: the CSMS never heard Accepted,
    so the station does not restart behind its back. The same Reset under the normal limit is carried out."""
    a = await start_agent()
    _set_limit(a, 40)  # [3,"<id>",{"status":"Accepted"}] is longer
    with pytest.raises(CallErrorReply) as err:
        await cs.call("CP-1", "Reset", {"type": "Soft"})
    assert err.value.code == "InternalError"
    _set_limit(a, 65_000)
    # A later CALL is routed after the Reset's handling ended, follow-up included: then nothing was requested.
    assert (await cs.call("CP-1", "GetConfiguration", {"key": ["HeartbeatInterval"]}))["configurationKey"]
    requested = a.station.reset_requested
    assert requested is None or not requested.done()
    _connected_once(a)
    assert await cs.call("CP-1", "Reset", {"type": "Soft"}) == {"status": "Accepted"}
    await until(lambda: (r := a.station.reset_requested) is not None and r.done(), 5, "no reset")
