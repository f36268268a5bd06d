"""CPU cost of one CALL the agent sends (``OcppSession.request``: build, validate, size guard, send, match the
answer), MeterValues and Heartbeat, over an in-process connection that answers at once: no socket, no CSMS, so
the figure is the session's own work. Compare two checkouts side by side (the machine is shared: absolute
numbers drift, ratios taken in one sitting hold).

Run: ``.venv/bin/python benchmarks/call_cost.py [--calls 20000] [--rounds 5]``; prints microseconds per CALL
(the best round, and the median).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chargepoint.core.settings import Settings
from chargepoint.csms.session import SessionDeps
from chargepoint.csms.v16.adapter import V16Session

METER_VALUES = {
    "connectorId": 1,
    "transactionId": 123,
    "meterValue": [
        {
            "timestamp": "2026-01-01T00:00:00.000Z",
            "sampledValue": [
                {
                    "value": "12345",
                    "context": "Sample.Periodic",
                    "measurand": "Energy.Active.Import.Register",
                    "unit": "Wh",
                },
                {
                    "value": "7400",
                    "context": "Sample.Periodic",
                    "measurand": "Power.Active.Import",
                    "unit": "W",
                },
            ],
        }
    ],
}


class _Echo:
    """A connection whose CSMS answers every CALL at once with ``answer``."""

    def __init__(self) -> None:
        self.session: V16Session | None = None
        self.answer: dict[str, Any] = {}

    async def send(self, message: str) -> None:
        unique_id = json.loads(message)[1]
        assert self.session is not None
        asyncio.get_running_loop().call_soon(
            self.session._answer_received, json.dumps([3, unique_id, self.answer])
        )


def _session() -> tuple[V16Session, _Echo]:
    counter = iter(range(1, 10**9))
    link = SimpleNamespace(
        identity=SimpleNamespace(id="BENCH-CP"),
        csms_config=SimpleNamespace(response_timeout_s=5.0),
        message_timeout_s=lambda: 5.0,
        ids=lambda: f"{next(counter):036d}",
        touch=lambda: None,
        call_observer=None,
    )
    conn = _Echo()
    deps = SessionDeps(link, station=None, store=None, settings=Settings(), security=None)  # type: ignore[arg-type]
    session = V16Session(deps, conn)
    conn.session = session
    return session, conn


async def _rounds(
    action: str, payload: dict[str, Any], answer: dict[str, Any], calls: int, rounds: int
) -> list[float]:
    session, conn = _session()
    conn.answer = answer
    out = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(calls):
            await session.request(action, payload)
        out.append((time.process_time() - started) / calls * 1e6)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for action, payload, answer in (
        ("MeterValues", METER_VALUES, {}),
        ("Heartbeat", {}, {"currentTime": "2026-01-01T00:00:00.000Z"}),
    ):
        per_call = asyncio.run(_rounds(action, payload, answer, args.calls, args.rounds))
        print(f"{action}: best {min(per_call):.1f} us/CALL, median {statistics.median(per_call):.1f} us/CALL")


if __name__ == "__main__":
    main()
