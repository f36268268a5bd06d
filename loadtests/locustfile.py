"""Locust load test of an OCPP central system: one Locust user is one virtual charger.

    locust -f loadtests/locustfile.py --headless --host ws://127.0.0.1:9000/ocpp -u 100 -r 10 -t 5m \\
        --ocpp-shape steady --ocpp-credentials creds.csv --csv out --ocpp-metrics-json metrics.json

Every CALL -> CALLRESULT is a Locust request of type OCPP named after its action (BootNotification, Heartbeat,
Authorize, StartTransaction, MeterValues, StopTransaction, StatusNotification, ...), and each handshake a request
of type WebSocket named connect. A CALLERROR (its errorCode in the failure), a timeout, an invalid answer or an
answer that refuses (BootNotification not Accepted, idTag not Accepted) is a failure. The shape (-u chargers, -r
spawn rate, -t run time) is chosen by name with --ocpp-shape; see loadtests/profiles.py. --ocpp-version 2.0.1
speaks OCPP 2.0.1: the same shapes and metrics, with sessions as TransactionEvent requests.
"""

from __future__ import annotations

import itertools
import json
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent  # type: ignore[import-untyped]  # gevent ships no type information
from locust import LoadTestShape, User, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

try:
    import loadtests  # noqa: F401  # installed with the project (pip install -e .)
except ImportError:  # a plain checkout: Locust puts only this file's folder on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chargepoint.csms_url import template_error
from loadtests.charger import Charger, ChargerSettings
from loadtests.credentials import Credential, partition, read_credentials
from loadtests.metrics import ChargerMetrics, MetricsAggregate
from loadtests.profiles import PROFILES, shape_tick
from loadtests.protocol import VERSIONS

log = logging.getLogger("loadtests")

VERSION_BY_NAME = {version.schema_version: version for version in VERSIONS.values()}


def _listen(hook: Any, handler: Callable[..., None]) -> None:
    """Add an event listener (Locust's EventHook is untyped, so no decorator form here)."""
    hook.add_listener(handler)


def _add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("OCPP load test")
    group.add_argument(
        "--ocpp-shape",
        choices=sorted(PROFILES),
        default="steady",
        help="load shape and charger behaviour (default: steady)",
    )
    group.add_argument(
        "--ocpp-credentials",
        metavar="CSV",
        default="",
        help="charge_point_id,password,id_tags per charger (python -m loadtests seed|creds writes one); "
        "without it chargers are named --ocpp-cp-prefix + a number and connect without a password",
    )
    group.add_argument("--ocpp-cp-prefix", default="LOCUST-CP-", help="charger id prefix without credentials")
    group.add_argument("--ocpp-version", choices=sorted(VERSION_BY_NAME), default="1.6", help="OCPP version")
    group.add_argument(
        "--ocpp-speed",
        type=float,
        default=1.0,
        help="time compression of charger behaviour: 60 plays an hour of heartbeats and sessions per minute",
    )
    group.add_argument("--ocpp-timeout-s", type=float, default=30.0, help="response timeout of a CALL (s)")
    group.add_argument(
        "--ocpp-no-validation",
        action="store_true",
        default=False,
        help="do not schema-validate frames (more calls per core; answers are still parsed)",
    )
    group.add_argument(
        "--ocpp-metrics-json",
        metavar="FILE",
        default="",
        help="write the charger metrics (connections held, reconnects, ...) of all workers here at the end",
    )


class CredentialPool:
    """The credentials this process's users lease: its share of the file, or generated ids."""

    def __init__(self, environment: Environment) -> None:
        options = environment.parsed_options
        runner = environment.runner
        index, count = 0, 1
        if isinstance(runner, WorkerRunner):
            index = max(runner.worker_index, 0)
            count = max(int(getattr(options, "expect_workers", 1) or 1), index + 1)
            if index >= int(getattr(options, "expect_workers", 1) or 1):
                log.warning(
                    "worker index %s >= --expect-workers: its chargers may overlap another worker's", index
                )
        self.index = index
        path = getattr(options, "ocpp_credentials", "")
        self.free: list[Credential] = partition(read_credentials(path), index, count) if path else []
        self.generated = not path
        self.prefix = f"{getattr(options, 'ocpp_cp_prefix', 'LOCUST-CP-')}{index:03d}-"
        self.numbers = itertools.count()

    def lease(self) -> Credential | None:
        """A credential no other user of the run holds, or None when the file's share is used up."""
        if self.generated:
            n = next(self.numbers)
            return Credential(f"{self.prefix}{n:06d}", None, (f"LT{self.index:03X}{n:07X}",))
        return self.free.pop(0) if self.free else None

    def release(self, credential: Credential) -> None:
        """Give a credential back when its user stops."""
        if not self.generated:
            self.free.append(credential)


class _State:
    """Per-process state shared by the users (one Locust environment per process)."""

    metrics = ChargerMetrics()
    aggregate = MetricsAggregate()
    pool: CredentialPool | None = None


def host_problem(host: str | None) -> str | None:
    """Why ``host`` cannot be the chargers' central system URL (a one-line message), or None when it can."""
    if not host:
        return None  # a worker gets the host from its master; the users check again before connecting
    # The same base URLs and {station_id} templates as the agent's csms.url.
    error = template_error(host)
    return None if error is None else f"--host {error} (chargers speak OCPP-J, e.g. ws://127.0.0.1:9000/ocpp)"


def _quit_on_sigterm(environment: Environment) -> None:
    """End the run on SIGTERM the way its time limit does, so the stats and the metrics JSON are written.

    Locust installs its own SIGTERM handler only after a headless shape run's ramp loop returns (locust 2.47,
    main.py: `shape_greenlet.join()` comes first), and a run with a shape (`OcppShape`, always here) sits in that
    loop until its -t: a SIGTERM before then took the default action and killed the process with nothing written
    (a CI job's timeout, `kill`, a container stop). Quitting the runner ends the ramp loop; Locust then shuts down
    as at the end of -t (quitting event: `_on_quitting`) and installs its own handler for a later signal.
    """
    runner = environment.runner
    if runner is None or isinstance(runner, WorkerRunner):
        return  # a worker writes nothing; its master's quit message ends it

    def _terminate() -> None:
        log.info("SIGTERM: ending the run (stats and --ocpp-metrics-json are written)")
        runner.quit()

    gevent.signal_handler(signal.SIGTERM, _terminate)


def _on_init(environment: Environment, **_: Any) -> None:
    problem = host_problem(environment.host)
    if problem is not None:
        # A one-line error instead of a traceback per user from websocket-client ("scheme http is invalid").
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    _quit_on_sigterm(environment)
    runner = environment.runner
    if isinstance(runner, WorkerRunner):

        def _report(client_id: str, data: dict[str, Any]) -> None:
            data["ocpp_metrics"] = _State.metrics.snapshot()

        _listen(events.report_to_master, _report)

    if isinstance(runner, MasterRunner):

        def _collect(client_id: str, data: dict[str, Any]) -> None:
            if "ocpp_metrics" in data:
                _State.aggregate.update(client_id, data["ocpp_metrics"])

        _listen(events.worker_report, _collect)

    if isinstance(runner, LocalRunner):

        def _sample() -> None:
            while True:
                _State.aggregate.update("local", _State.metrics.snapshot())
                gevent.sleep(1.0)

        gevent.spawn(_sample)


def _on_quitting(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    if isinstance(environment.runner, LocalRunner):
        _State.aggregate.update("local", _State.metrics.snapshot())
    summary = _State.aggregate.summary()
    log.info(
        "OCPP metrics: connections held max %s (now %s), connects %s, reconnects %s, connect failures %s, "
        "boots %s, sessions %s/%s, server calls %s, from %s process(es)",
        summary["connections_held_max"],
        summary["connections_held"],
        summary["connects"],
        summary["reconnects"],
        summary["connect_failures"],
        summary["boots"],
        summary["sessions_started"],
        summary["sessions_completed"],
        summary["server_calls"],
        summary["processes"],
    )
    path = getattr(environment.parsed_options, "ocpp_metrics_json", "")
    if path:
        Path(path).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


_listen(events.init_command_line_parser, _add_arguments)
_listen(events.init, _on_init)
_listen(events.quitting, _on_quitting)


class ChargePointUser(User):
    """A virtual charger: connects to {--host}/{charge point id}, boots, heartbeats, charges, answers calls."""

    def on_start(self) -> None:
        """Lease a credential and build the charger."""
        self.charger: Charger | None = None
        self.credential: Credential | None = None
        options = self.environment.parsed_options
        if not self.host:
            raise ValueError("pass the central system's URL with --host, e.g. ws://127.0.0.1:9000/ocpp")
        problem = host_problem(self.host)
        if problem is not None:
            raise ValueError(problem)
        if _State.pool is None:
            _State.pool = CredentialPool(self.environment)
        self.credential = _State.pool.lease()
        if self.credential is None:
            self._report("Credentials", "lease", 0.0, 0, RuntimeError("no free row in --ocpp-credentials"))
            raise StopUser()
        settings = ChargerSettings(
            url=self.host,
            speed=float(getattr(options, "ocpp_speed", 1.0)),
            response_timeout_s=float(getattr(options, "ocpp_timeout_s", 30.0)),
            validate=not getattr(options, "ocpp_no_validation", False),
        )
        self.charger = Charger(
            self.credential,
            PROFILES[getattr(options, "ocpp_shape", "steady")],
            VERSION_BY_NAME[getattr(options, "ocpp_version", "1.6")],
            settings,
            self._report,
            _State.metrics,
        )

    @task
    def run_charger(self) -> None:
        """The charger's whole life (returns only when the user is stopped)."""
        assert self.charger is not None
        self.charger.run()

    def on_stop(self) -> None:
        """End a running session, disconnect, and give the credential back."""
        if self.charger is not None:
            self.charger.shutdown()
        if self.credential is not None and _State.pool is not None:
            _State.pool.release(self.credential)
            self.credential = None

    def _report(
        self, request_type: str, name: str, response_time_ms: float, length: int, exc: Exception | None
    ) -> None:
        self.environment.events.request.fire(
            request_type=request_type,
            name=name,
            response_time=response_time_ms,
            response_length=length,
            exception=exc,
            context={},
        )


class OcppShape(LoadTestShape):
    """The user count over time of the shape named by --ocpp-shape; reads -u, -r and -t."""

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        """(users, spawn rate) now, or None when the run time is over."""
        assert self.runner is not None
        options = self.runner.environment.parsed_options
        return shape_tick(
            PROFILES[getattr(options, "ocpp_shape", "steady")],
            int(getattr(options, "num_users", None) or 1),
            float(getattr(options, "spawn_rate", None) or 1.0),
            getattr(options, "run_time", None),
            time.perf_counter() - float(self.start_time),
        )
