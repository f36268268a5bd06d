"""A raw-frame OCPP 1.6 central system for benchmarks/agent.py: it answers what a charger sends and, on command,
floods the connected charger with ChangeConfiguration CALLs without waiting for answers (a misbehaving CSMS:
OCPP-J allows one outstanding CALL per direction).

Run by benchmarks/agent.py as a separate process. It prints its URL, then reads commands on stdin:
``flood N`` sends N CALLs, prints ``started`` after the first 100 and ``done <answered> <results> <errors>`` when
every one has been answered (or after 120 s), with the seconds that took. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.server import ServerConnection, serve


class FloodCsms:
    """Answers a charger's CALLs and floods it with ChangeConfiguration on request."""

    def __init__(self) -> None:
        self.ws: ServerConnection | None = None
        self.connected = asyncio.Event()
        self.answers: dict[str, int] = {}
        self.expected: set[str] = set()
        self.all_answered = asyncio.Event()
        self.tx_id = 0

    def _answer(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat()
        if action == "BootNotification":
            return {"status": "Accepted", "currentTime": now, "interval": 300}
        if action == "Heartbeat":
            return {"currentTime": now}
        if action in ("Authorize",):
            return {"idTagInfo": {"status": "Accepted"}}
        if action == "StartTransaction":
            self.tx_id += 1
            return {"transactionId": self.tx_id, "idTagInfo": {"status": "Accepted"}}
        return {}

    async def handler(self, ws: ServerConnection) -> None:
        """Serve one charger."""
        self.ws = ws
        self.connected.set()
        async for raw in ws:
            frame = json.loads(raw)
            if frame[0] == 2:
                await ws.send(json.dumps([3, frame[1], self._answer(frame[2], frame[3])]))
            elif frame[1] in self.expected:
                self.answers[frame[1]] = frame[0]
                if len(self.answers) == len(self.expected):
                    self.all_answered.set()

    async def flood(self, n: int, tag: str) -> tuple[int, int, int]:
        """Send ``n`` CALLs at once; returns (answered, CALLRESULTs, CallErrors)."""
        await self.connected.wait()
        assert self.ws is not None
        self.answers.clear()
        self.expected = {f"{tag}-{i}" for i in range(n)}
        self.all_answered.clear()
        for i in range(n):
            frame = [
                2,
                f"{tag}-{i}",
                "ChangeConfiguration",
                {"key": "ConnectionTimeOut", "value": str(60 + i % 2)},
            ]
            await self.ws.send(json.dumps(frame))
            if i == 100:
                print("started", flush=True)
        try:
            async with asyncio.timeout(120):
                await self.all_answered.wait()
        except TimeoutError:
            pass
        results = sum(1 for t in self.answers.values() if t == 3)
        return len(self.answers), results, len(self.answers) - results


async def main() -> None:
    csms = FloodCsms()
    async with serve(csms.handler, "127.0.0.1", 0, subprotocols=["ocpp1.6"], compression=None) as server:  # type: ignore[list-item]
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"ws://127.0.0.1:{port}", flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        trial = 0
        while line := (await reader.readline()).decode().split():
            if line[0] == "flood":
                trial += 1
                started = time.perf_counter()
                answered, results, errors = await csms.flood(int(line[1]), f"t{trial}")
                print(f"done {answered} {results} {errors} {time.perf_counter() - started:.3f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
