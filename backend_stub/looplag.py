"""How late the event loop runs a timer: the health check and the boot-storm gate read the same measure."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

__all__ = ["LAG_PROBE_INTERVAL_S", "LAG_WINDOW", "LoopLag"]

LAG_PROBE_INTERVAL_S = 0.25
LAG_WINDOW = 8  # probes: the lag reported is the worst of the last ~2 s


class LoopLag:
    """Measures how late the event loop wakes a timer: the lag every other callback suffers too."""

    def __init__(self, interval_s: float = LAG_PROBE_INTERVAL_S, window: int = LAG_WINDOW) -> None:
        """Probe every ``interval_s`` once `start()`ed; `lag_s` is the worst of the last ``window`` probes."""
        self.interval_s = interval_s
        self._recent: deque[float] = deque([0.0], maxlen=window)
        self._task: asyncio.Task[None] | None = None

    @property
    def lag_s(self) -> float:
        """The worst lag of the last few probes (a stall is still seen by the next health check)."""
        return max(self._recent)

    async def _probe(self) -> None:
        while True:
            started_s = time.monotonic()
            await asyncio.sleep(self.interval_s)
            self._recent.append(max(0.0, time.monotonic() - started_s - self.interval_s))

    def start(self) -> None:
        """Start probing on the running loop (kept by reference)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._probe(), name="loop-lag")

    async def stop(self) -> None:
        """Stop probing."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
