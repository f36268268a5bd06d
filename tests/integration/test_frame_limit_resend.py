"""A MeterValues message cut in parts (BytesPerMessage) is one outbox message: when a part fails, the whole
message is sent again, earlier parts included (at least once, as for any message whose answer was lost). Against
the bundled central system with a 1.6 station: a resent part is stored once (samples are keyed by what identifies
them), and the energy billed is the registers' difference, never a sum of samples."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from backend_stub.app import Csms
from backend_stub.ocpp.server import CallErrorReply
from tests.integration.conftest import until
from tests.integration.octt_support import start_session
from tests.integration.test_frame_limit import FIRST, LIMIT, _queue_samples, _set_limit, phase_sample
from tests.integration.v201_support import StartAgent, csms, mark, start_agent

__all__ = ["csms", "start_agent"]  # the fixtures


async def test_a_split_meter_values_resent_after_a_failed_part_is_stored_once(
    csms: Csms, start_agent: StartAgent
) -> None:
    csms.server.max_message_bytes = LIMIT
    csms.store.add_card("CARD1", user_id=csms.store.add_user("user-CARD1").id, mode="personal")
    a = await start_agent(boot=False, csms={"ocpp_versions": ["1.6"]})
    _set_limit(a, LIMIT)
    await a.wait_booted()
    _, tx_id = await start_session(a, csms.server, "CARD1")  # type: ignore[arg-type]
    table = csms.server.handlers_by_subprotocol["ocpp1.6"]
    plain = table["MeterValues"]
    ours = 0

    def second_part_fails_once(cp_id: str, payload: dict[str, Any]) -> Any:
        nonlocal ours
        if payload["meterValue"][0]["timestamp"].startswith("2026-01-01"):
            ours += 1
            if ours == 2:  # the first part is stored, the second refused: the message is sent again
                raise CallErrorReply("InternalError", "a hiccup")
        return plain(cp_id, payload)

    table["MeterValues"] = second_part_fails_once
    after = mark(csms)
    samples = [phase_sample(FIRST + timedelta(minutes=n)) for n in range(2)]
    _queue_samples(a, samples)
    store = a.agent.store
    assert store is not None
    await until(lambda: store.outbox_size() == 0, 10, "the samples were not delivered")
    sent = [
        f.payload["meterValue"]
        for f in csms.server.log[after:]
        if f.direction == "in" and f.action == "MeterValues" and f.message_type == 2
    ]
    first = sent[0]
    assert sent.count(first) == 2  # the first part did go twice
    assert store.dead_letters() == []
    stored = [
        (s.timestamp, s.measurand, s.phase, s.location, s.context, s.unit)
        for s in csms.store.meter_values(tx_id)
        if s.timestamp.date() == FIRST.date()
    ]
    want = sum(len(s.values) for s in samples)
    assert len(stored) == want and max(Counter(stored).values()) == 1  # every value once, none twice
