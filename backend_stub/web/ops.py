"""What an operator watches: ``GET /healthz`` (store writable, event-loop lag) and ``GET /metrics`` (Prometheus).

`Metrics` keeps its own `CollectorRegistry` (one per application: tests run many servers in one process) and is
the OCPP server's observer (connections, answered CALLs, refused handshakes); sessions, energy and revenue are
read from the store at scrape time, so they are right after a restart. ``/metrics`` needs the admin token
(Prometheus: ``authorization: {credentials: <token>}``); ``/healthz`` is open and runs one check at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from backend_stub.store import CsmsStore, StoreError
from backend_stub.web import common

log = logging.getLogger(__name__)

LAG_PROBE_INTERVAL_S = 0.25
LAG_WINDOW = 8  # probes: the lag reported is the worst of the last ~2 s
MAX_LOOP_LAG_S = 1.0  # /healthz answers 503 above this
STORE_CHECK_TIMEOUT_S = 5.0
# Refusal reasons that are a limit of the hardening issue being hit (the rest are bad credentials or requests).
LIMITS = frozenset({"auth_lockout", "connection_cap", "websocket_cap", "boot_timeout"})
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

METRICS: web.AppKey[Metrics] = web.AppKey("metrics")


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


class _StoreCollector(Collector):
    """Sessions, energy and revenue from the store, and limit counters kept elsewhere, read at scrape time."""

    def __init__(self, store: CsmsStore, limits: Callable[[], Mapping[str, int]]) -> None:
        self.store = store
        self.limits = limits

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        try:
            active, energy_wh, revenue_minor = self.store.operating_totals()
        except StoreError:
            log.exception("metrics: cannot read the store")
            return
        yield GaugeMetricFamily("csms_active_sessions", "Transactions started and not stopped", value=active)
        yield CounterMetricFamily("csms_energy_wh", "Energy of finished sessions (Wh)", value=energy_wh)
        yield CounterMetricFamily(
            "csms_revenue_minor", "Cost of finished sessions (minor currency units)", value=revenue_minor
        )
        evictions = CounterMetricFamily(
            "csms_limit_events",
            "Limits enforced outside handshakes (e.g. idle connections evicted)",
            labels=["kind"],
        )
        for kind, count in self.limits().items():
            evictions.add_metric([kind], count)
        yield evictions


class Metrics:
    """The Prometheus metrics of one central system; also the OCPP server's observer."""

    def __init__(self, store: CsmsStore, limits: Callable[[], Mapping[str, int]] = dict) -> None:
        """Register every metric in a new registry; ``limits`` returns counters such as idle evictions."""
        self.registry = CollectorRegistry()
        self.loop_lag = LoopLag()
        self.connections = Gauge(
            "csms_connections", "Charger WebSockets open", ["version"], registry=self.registry
        )
        self.messages = Counter(
            "csms_messages",
            "Charger CALLs answered, by result",
            ["version", "action", "result"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "csms_handler_seconds",
            "Time from a charger CALL to its answer",
            ["version", "action"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        # The labelled children used per message, kept instead of looked up each time (`labels()` took about 2 %
        # of the server's CPU at 2,000 messages/s). Bounded: the transport passes known actions and results only.
        self._per_message: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
        self.refusals = Counter(
            "csms_handshakes_refused",
            "Charger connections refused or closed, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.limits_hit = Counter(
            "csms_limits_hit",
            "Rate limits and caps hit (429s, connection caps, boot timeouts)",
            ["limit"],
            registry=self.registry,
        )
        Gauge(
            "csms_event_loop_lag_seconds",
            "How late the event loop woke a timer (worst of the last ~2 s)",
            registry=self.registry,
        ).set_function(lambda: self.loop_lag.lag_s)
        self.registry.register(_StoreCollector(store, limits))

    def connection(self, subprotocol: str, delta: int) -> None:
        """A charger WebSocket opened (+1) or closed (-1)."""
        self.connections.labels(subprotocol).inc(delta)

    def message(self, subprotocol: str, action: str, result: str, duration_s: float) -> None:
        """A charger CALL answered."""
        key = (subprotocol, action, result)
        children = self._per_message.get(key)
        if children is None:
            children = (self.messages.labels(*key), self.latency.labels(subprotocol, action))
            self._per_message[key] = children
        children[0].inc()
        children[1].observe(duration_s)

    def refused(self, reason: str) -> None:
        """A handshake refused or a connection closed by a limit."""
        self.refusals.labels(reason).inc()
        if reason in LIMITS:
            self.limits_hit.labels(reason).inc()

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


class Health:
    """``/healthz``: one store write check at a time (a flood of probes shares it) and the loop lag."""

    def __init__(self, store: CsmsStore, loop_lag: LoopLag, max_lag_s: float = MAX_LOOP_LAG_S) -> None:
        """Check ``store`` and ``loop_lag``; above ``max_lag_s`` the loop counts as unhealthy."""
        self.store = store
        self.loop_lag = loop_lag
        self.max_lag_s = max_lag_s
        self._check: asyncio.Task[str | None] | None = None

    async def _store_problem(self) -> str | None:
        # In a thread: with --durable the commit fsyncs, and the event loop never waits on fsync.
        try:
            await asyncio.to_thread(self.store.check_writable)
        except StoreError as exc:
            return f"store not writable: {exc}"
        return None

    async def report(self) -> tuple[int, dict[str, object]]:
        """(HTTP status, JSON body): 200 when the store takes a write and the loop lag is small, else 503."""
        if self._check is None or self._check.done():
            self._check = asyncio.get_running_loop().create_task(self._store_problem(), name="health-store")
        reasons: list[str] = []
        try:
            problem = await asyncio.wait_for(asyncio.shield(self._check), STORE_CHECK_TIMEOUT_S)
        except TimeoutError:
            problem = f"store write took over {STORE_CHECK_TIMEOUT_S} s"
        if problem is not None:
            reasons.append(problem)
        lag_s = self.loop_lag.lag_s
        if lag_s > self.max_lag_s:
            reasons.append(f"event loop lag {lag_s:.3f} s over {self.max_lag_s} s")
        body: dict[str, object] = {
            "status": "fail" if reasons else "ok",
            "store_writable": problem is None,
            "loop_lag_s": round(lag_s, 6),
            "reasons": reasons,
        }
        return (503 if reasons else 200), body


def setup(app: web.Application, metrics: Metrics) -> None:
    """Serve ``/healthz`` and ``/metrics`` for ``metrics``; probe the loop lag while the application runs."""
    csms = app[common.CSMS]
    app[METRICS] = metrics
    health = Health(csms.store, metrics.loop_lag)

    async def healthz(request: web.Request) -> web.Response:
        status, body = await health.report()
        return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})

    async def metrics_page(request: web.Request) -> web.Response:
        if not common.is_admin(request):
            return common.unauthorized()
        # In a thread: the store's totals are a SQL aggregate, and the loop must not wait on a slow scrape.
        response = web.Response(body=await asyncio.to_thread(metrics.exposition))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def on_startup(_: web.Application) -> None:
        metrics.loop_lag.start()

    async def on_cleanup(_: web.Application) -> None:
        await metrics.loop_lag.stop()

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_page)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
