"""Command line: `python -m backend_stub serve --db FILE --host 127.0.0.1 --port 9000 [--log FILE]`, and
`python -m backend_stub backup --db FILE --to FILE` (an online backup of the store).

The first line printed is the OCPP base URL (chargers connect to `{url}/{chargePointId}`); with --db the next
lines give the dashboard URL and, at the first start without CSMS_ADMIN_TOKEN, the generated admin token.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import socket
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from backend_stub import logs
from backend_stub.domain.ca import CSR_PER_HOUR
from backend_stub.domain.payments import PROVIDER_CHOICES
from backend_stub.logs import LOG_FORMATS
from backend_stub.ocpi.config import OcpiConfig
from backend_stub.ocpp.guard import AuthThrottle, ConnectionGuard, RateLimitFilter, default_max_connections
from backend_stub.ocpp.overload import BOOT_STORM_DEFAULTS, BootGate
from backend_stub.ocpp.server import CentralSystem, tls_context
from backend_stub.testing.server import ScriptedCentralSystem


def _ocpi_config(args: argparse.Namespace) -> OcpiConfig | None:
    """The OCPI settings of ``serve --ocpi-party CC/PID``, None without the flag."""
    if not args.ocpi_party:
        return None
    country, _, party = args.ocpi_party.partition("/")
    try:
        return OcpiConfig(
            country_code=country.upper(),
            party_id=party.upper(),
            public_url=args.ocpi_public_url,
            allow_private_urls=args.ocpi_allow_private_urls,
        )
    except ValueError as exc:
        raise SystemExit(f"--ocpi-party: {exc}") from None


def _key_value(text: str) -> tuple[str, str]:
    """Parse a `KEY=VALUE` command line argument."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    """Return the command line parser."""
    parser = argparse.ArgumentParser(prog="python -m backend_stub", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('opencharge-stack')}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the OCPP central system until SIGINT/SIGTERM")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument(
        "--port", type=int, default=9000, help="TCP port, 0 for a free one (default: %(default)s)"
    )
    serve.add_argument(
        "--log", metavar="FILE", help="append every frame and connection event to FILE as JSON lines"
    )
    serve.add_argument(
        "--heartbeat-interval", type=int, default=300, help="interval in BootNotification answers (s)"
    )
    serve.add_argument(
        "--password",
        type=_key_value,
        action="append",
        default=[],
        metavar="CP_ID=PASSWORD",
        help="require HTTP Basic auth for a charger (repeatable)",
    )
    serve.add_argument(
        "--id-tag",
        type=_key_value,
        action="append",
        default=[],
        metavar="TAG=STATUS",
        help="authorization status of an idTag, e.g. DEADBEEF=Blocked (repeatable)",
    )
    serve.add_argument(
        "--default-auth-status", default="Accepted", help="status of unlisted idTags (default: %(default)s)"
    )
    serve.add_argument(
        "--db",
        metavar="FILE",
        help="run the central system on this SQLite store (chargers, cards, tariffs, billing); without it, a "
        "test server that accepts every charger and card",
    )
    serve.add_argument(
        "--payment-provider",
        choices=PROVIDER_CHOICES,
        default="none",
        help="with --db: card payment on the QR pay pages; 'none' takes none (the pages say so), 'test' is a "
        "simulated provider for development and demos (default: %(default)s)",
    )
    serve.add_argument(
        "--admit-unknown", action="store_true", help="with --db: admit unknown chargers as pending"
    )
    serve.add_argument(
        "--durable",
        action="store_true",
        help="with --db: fsync every commit (SQLite synchronous=FULL), so that not even a power cut undoes an "
        "acknowledged message; the default (NORMAL) survives process crashes and restarts",
    )
    serve.add_argument(
        "--max-message-bytes",
        type=int,
        default=64 * 1024,
        help="a larger OCPP frame closes that connection with 1009 (default: %(default)s)",
    )
    serve.add_argument(
        "--tls-cert", metavar="PEM", help="serve wss:// with this certificate (security profile 2)"
    )
    serve.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    serve.add_argument(
        "--tls-client-ca",
        metavar="PEM",
        help="require charger certificates signed by this CA (security profile 3)",
    )
    serve.add_argument(
        "--ca-cert",
        metavar="PEM",
        help="with --db: the certificate authority that signs the chargers' CSRs (SignCertificate); without it, "
        "one is generated at the first start and kept next to the db (FILE.ca.pem, key FILE.ca-key.pem, mode 0600)",
    )
    serve.add_argument("--ca-key", metavar="PEM", help="the CA's private key (unencrypted PEM)")
    serve.add_argument(
        "--csr-per-hour",
        type=int,
        default=CSR_PER_HOUR,
        metavar="N",
        help="with --db: CSRs (SignCertificate) one charger may have signed an hour, N at once at most; beyond it "
        "they are Rejected (2.0.1: reasonCode RateLimited) (default: %(default)s)",
    )
    serve.add_argument(
        "--ocpi-party",
        metavar="CC/PID",
        help="serve OCPI 2.2.1 as the CPO with this country code and party id (e.g. DE/OCS) under /ocpi/",
    )
    serve.add_argument(
        "--ocpi-public-url",
        metavar="URL",
        help="the base URL roaming partners reach this server at (default: the listening address)",
    )
    serve.add_argument(
        "--ocpi-allow-private-urls",
        action="store_true",
        help="let partners' URLs (endpoints, response_url) name private, loopback or link-local addresses "
        "(a test bed or a private network); by default such URLs are refused before any request",
    )
    limits = serve.add_argument_group("limits on connections and password guessing")
    limits.add_argument(
        "--handshake-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="close a connection that has not completed its TLS handshake and HTTP request head within S seconds "
        "(also an idle keep-alive connection) (default: %(default)s)",
    )
    limits.add_argument(
        "--boot-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="close a charger WebSocket that sends no BootNotification within S seconds, unless the charger is "
        "known to have booted before; 0 disables (default: %(default)s)",
    )
    limits.add_argument(
        "--max-connections",
        type=int,
        default=None,
        metavar="N",
        help="TCP connections open at once; when full, the oldest connection without a request is closed for a "
        f"new one (default: the open-files limit minus 256 (or a quarter of it), here {default_max_connections()})",
    )
    limits.add_argument(
        "--max-connections-per-address",
        type=int,
        default=1000,
        metavar="N",
        help="TCP connections open at once from one IP address; 0 for no cap (default: %(default)s)",
    )
    limits.add_argument(
        "--api-reserve",
        type=int,
        default=64,
        metavar="N",
        help="connections charger WebSockets never take, kept for the REST API and dashboard (default: "
        "%(default)s)",
    )
    limits.add_argument(
        "--auth-failures-per-id",
        type=int,
        default=5,
        metavar="N",
        help="failed charger authentications of one id before it is locked out (429 with Retry-After, 1 s "
        "doubling per further failure) (default: %(default)s)",
    )
    limits.add_argument(
        "--auth-failures-per-address",
        type=int,
        default=50,
        metavar="N",
        help="failed charger authentications from one IP address before it is locked out (default: "
        "%(default)s)",
    )
    limits.add_argument(
        "--auth-max-lockout",
        type=float,
        default=900.0,
        metavar="S",
        help="longest lock-out in seconds (default: %(default)s)",
    )
    limits.add_argument(
        "--max-pending",
        type=int,
        default=1000,
        metavar="N",
        help="with --admit-unknown: pending chargers kept at most; more unknown ones are refused (404) "
        "(default: %(default)s)",
    )
    limits.add_argument(
        "--pending-ttl",
        type=float,
        default=86400.0,
        metavar="S",
        help="with --admit-unknown: delete a pending charger (no password, no transactions) that has not "
        "booted for S seconds (default: %(default)s)",
    )
    storm = serve.add_argument_group(
        "boot storms: while overloaded, BootNotification is answered Pending with a retry appointment"
    )
    storm.add_argument(
        "--boot-storm-in-flight",
        type=int,
        default=BOOT_STORM_DEFAULTS[0],
        metavar="N",
        help="overloaded above N BootNotifications received and not answered yet; 0 turns the gate off "
        "(default: %(default)s)",
    )
    storm.add_argument(
        "--boot-storm-lag",
        type=float,
        default=BOOT_STORM_DEFAULTS[1],
        metavar="S",
        help="overloaded above S seconds of event-loop lag (default: %(default)s)",
    )
    storm.add_argument(
        "--boot-storm-rate",
        type=float,
        default=BOOT_STORM_DEFAULTS[2],
        metavar="N",
        help="deferred chargers get retry appointments N per second apart (default: %(default)s)",
    )
    storm.add_argument(
        "--boot-storm-interval",
        type=_interval_range,
        default=BOOT_STORM_DEFAULTS[3:],
        metavar="MIN:MAX",
        help="the soonest and latest retry interval given, in seconds "
        f"(default: {BOOT_STORM_DEFAULTS[3]}:{BOOT_STORM_DEFAULTS[4]})",
    )
    scale = serve.add_argument_group("scale: several worker processes (the test server only, without --db)")
    scale.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="K",
        help="K processes share the port (SO_REUSEPORT; the kernel spreads connections over them). Not with "
        "--db: the workers would share the store but not the connection registry, so a command for a charger "
        "connected to another worker could not reach it (default: %(default)s)",
    )
    scale.add_argument(
        "--also-listen",
        type=lambda text: tuple(h.strip() for h in text.split(",") if h.strip()),
        default=(),
        metavar="HOST,HOST",
        help="also listen on these addresses (same port): one client address can open at most ~28,000 "
        "connections to one address and port (the ephemeral range), so 100,000 chargers need several "
        "(e.g. 127.0.0.2,127.0.0.3,127.0.0.4)",
    )
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    serve.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    serve.add_argument("--workers-total", type=int, default=1, help=argparse.SUPPRESS)
    serve.add_argument("-v", "--verbose", action="store_true", help="log every frame to stderr")
    serve.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="stderr log lines: text, or json (one object per line: ts, level, logger, message, and fields such "
        "as cp_id) (default: %(default)s)",
    )
    backup = commands.add_parser(
        "backup",
        help="copy a store to a file while the server runs (SQLite's online backup API), then check the copy",
    )
    backup.add_argument("--db", metavar="FILE", required=True, help="the store (serve --db FILE)")
    backup.add_argument("--to", metavar="FILE", required=True, help="the backup file (replaced if it exists)")
    return parser


def _interval_range(text: str) -> tuple[int, int]:
    """``MIN:MAX`` seconds, 1 <= MIN <= MAX <= 3600."""
    low, _, high = text.partition(":")
    try:
        lo, hi = int(low), int(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN:MAX in whole seconds, got {text!r}") from None
    if not 1 <= lo <= hi <= 3600:
        raise argparse.ArgumentTypeError(f"need 1 <= MIN <= MAX <= 3600, got {text!r}")
    return lo, hi


def run_backup(args: argparse.Namespace) -> int:
    """Write the backup, print a JSON summary; exit status 1 when it failed or the copy is not intact."""
    from backend_stub.store.backup import backup
    from backend_stub.store.records import StoreError

    try:
        result = backup(args.db, args.to)
    except StoreError as exc:
        print(f"backup failed: {exc}", file=sys.stderr)
        return 1
    summary = {"backup": str(result.path), "bytes": result.size_bytes, "pages": result.pages}
    print(json.dumps({**summary, "integrity": result.integrity}), flush=True)
    return 0 if result.integrity == "ok" else 1


def _check_limits(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse limits outside their ranges, naming the flag."""
    fd_cap = default_max_connections()
    checks: list[tuple[str, float | int | None, float, float]] = [
        ("--handshake-timeout", args.handshake_timeout, 0.1, 3600),
        ("--boot-timeout", args.boot_timeout, 0, 86400),
        ("--max-connections", args.max_connections, 2, fd_cap),
        ("--max-connections-per-address", args.max_connections_per_address, 0, 10**6),
        ("--api-reserve", args.api_reserve, 1, 10**6),
        ("--auth-failures-per-id", args.auth_failures_per_id, 1, 10**6),
        ("--auth-failures-per-address", args.auth_failures_per_address, 1, 10**6),
        ("--auth-max-lockout", args.auth_max_lockout, 1, 86400),
        ("--max-pending", args.max_pending, 0, 10**7),
        ("--pending-ttl", args.pending_ttl, 1, 10**8),
        ("--boot-storm-in-flight", args.boot_storm_in_flight, 0, 10**7),
        ("--boot-storm-lag", args.boot_storm_lag, 0.001, 3600),
        ("--boot-storm-rate", args.boot_storm_rate, 0.001, 10**6),
        ("--workers", args.workers, 1, 64),
    ]
    for flag, value, low, high in checks:
        if value is not None and not low <= value <= high:  # also refuses NaN
            parser.error(f"{flag} must be in [{low:g}, {high:g}], got {value}")
    if args.api_reserve >= (args.max_connections or fd_cap):
        parser.error("--api-reserve must be below --max-connections")
    if args.workers > 1 and args.db:
        parser.error(
            "--workers needs the test server (no --db): workers of the central system would share the store but "
            "not the connection registry, so a remote command or the REST API could not reach a charger "
            "connected to another worker"
        )


def _limits(server: CentralSystem, args: argparse.Namespace) -> None:
    """Apply the connection and authentication limits of the command line to ``server``."""
    server.handshake_timeout_s = args.handshake_timeout
    server.boot_timeout_s = args.boot_timeout or None
    server.guard = ConnectionGuard(
        args.max_connections, args.max_connections_per_address or None, args.api_reserve
    )
    server.auth_throttle = AuthThrottle(
        free_per_id=args.auth_failures_per_id,
        free_per_address=args.auth_failures_per_address,
        max_lockout_s=args.auth_max_lockout,
    )
    if args.boot_storm_in_flight:
        server.boot_gate = BootGate(
            max_in_flight=args.boot_storm_in_flight,
            max_lag_s=args.boot_storm_lag,
            boots_per_s=args.boot_storm_rate,
            min_interval_s=args.boot_storm_interval[0],
            max_interval_s=args.boot_storm_interval[1],
        )
    server.reuse_port = args.reuse_port
    server.extra_hosts = args.also_listen


def _configure(server: CentralSystem, args: argparse.Namespace) -> None:
    """Settings common to both servers: frame size limit, TLS, and frames kept in the log file only."""
    server.keep_frames = False  # a server that runs for months keeps frames in the log file only
    server.max_message_bytes = args.max_message_bytes
    _limits(server, args)
    if args.tls_cert:
        server.ssl_context = tls_context(args.tls_cert, args.tls_key or args.tls_cert, args.tls_client_ca)


async def serve(args: argparse.Namespace) -> None:
    """Run the central system until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if args.db:
        from backend_stub.app import Csms
        from backend_stub.domain.ca import CertificateAuthority
        from backend_stub.store import CsmsStore

        db = Path(args.db)
        try:
            if args.ca_cert:
                ca = CertificateAuthority.load(args.ca_cert, args.ca_key)
            else:
                ca = CertificateAuthority.load_or_create(
                    db.with_name(db.name + ".ca.pem"),
                    db.with_name(db.name + ".ca-key.pem"),
                    "OpenCharge central system CA",
                    datetime.now(UTC),
                )
        except (ValueError, OSError) as exc:
            raise SystemExit(f"certificate authority: {exc}") from None
        with CsmsStore(args.db, durable=args.durable) as store:
            app = Csms(
                store,
                host=args.host,
                port=args.port,
                admit_unknown=args.admit_unknown,
                heartbeat_interval_s=args.heartbeat_interval,
                log_path=args.log,
                max_pending=args.max_pending,
                pending_ttl_s=args.pending_ttl,
                payment_provider=args.payment_provider,
                ca=ca,
                ocpi=_ocpi_config(args),
                csr_per_hour=args.csr_per_hour,
            )
            _configure(app.server, args)
            await app.start()
            try:
                print(app.url, flush=True)
                print(f"dashboard and REST API: {app.http_url}/  (OpenAPI: {app.http_url}/api/openapi.json)")
                if app.ocpi is not None:
                    print(f"OCPI 2.2.1 versions: {app.ocpi.versions_url}")
                if app.new_admin_token is not None:
                    print(
                        f"admin token (shown once; set CSMS_ADMIN_TOKEN to choose one): {app.new_admin_token}"
                    )
                sys.stdout.flush()
                await stop.wait()
            finally:
                await app.stop()
        return
    if args.workers > 1:
        await _serve_workers(args, stop)
        return
    cs = ScriptedCentralSystem(args.host, args.port, log_path=args.log)
    # Workers hand out distinct transaction ids: worker i of K gives i+1, i+1+K, ...
    cs.transaction_ids(start=args.worker_index + 1, step=max(1, args.workers_total))
    _configure(cs, args)
    cs.heartbeat_interval = args.heartbeat_interval
    cs.passwords.update(args.password)
    cs.id_tags.update(args.id_tag)
    cs.default_auth_status = args.default_auth_status
    async with cs:
        print(cs.url, flush=True)
        await stop.wait()


async def _serve_workers(args: argparse.Namespace, stop: asyncio.Event) -> None:
    """``serve --workers K``: K test servers on one port (SO_REUSEPORT), until SIGINT or SIGTERM.

    The parent holds the port (bound with SO_REUSEPORT, never listening, so it takes no connection) while the
    workers start, so that port 0 means one free port for all of them.
    """
    holder = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((args.host, args.port))
    port = holder.getsockname()[1]
    argv = [a for a in sys.argv[1:] if a not in ("serve",)]
    base = [
        sys.executable,
        "-m",
        "backend_stub",
        "serve",
        *_without(argv, ("--port", "--workers")),
        "--port",
        str(port),
    ]
    procs: list[asyncio.subprocess.Process] = []
    try:
        for index in range(args.workers):
            cmd = [*base, "--reuse-port", "--worker-index", str(index), "--workers-total", str(args.workers)]
            procs.append(await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE))
        urls = []
        for proc in procs:
            assert proc.stdout is not None
            urls.append((await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip())
        if not all(url.startswith("ws") for url in urls):
            raise SystemExit(f"a worker did not start: {urls}")
        print(urls[0], flush=True)
        print(
            f"{args.workers} workers (pids {' '.join(str(p.pid) for p in procs)}) on port {port}", flush=True
        )
        waiting = asyncio.ensure_future(stop.wait())
        exits = [asyncio.ensure_future(p.wait()) for p in procs]
        await asyncio.wait([waiting, *exits], return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
        holder.close()


def _without(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    """``argv`` without ``flags`` and their values (``--flag V`` or ``--flag=V``)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in flags:
            skip = True
            continue
        if any(arg.startswith(f + "=") for f in flags):
            continue
        out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve" and args.max_message_bytes < 1024:
        parser.error("--max-message-bytes must be at least 1024")
    if args.command == "serve" and (args.tls_key or args.tls_client_ca) and not args.tls_cert:
        parser.error("--tls-key and --tls-client-ca need --tls-cert")
    if args.command == "serve":
        _check_limits(parser, args)
        if bool(args.ca_cert) != bool(args.ca_key):
            parser.error("--ca-cert and --ca-key go together")
        if args.csr_per_hour < 1:
            parser.error(f"--csr-per-hour must be at least 1, got {args.csr_per_hour}")
    logs.configure(getattr(args, "log_format", "text"))
    # asyncio logs "socket.accept() out of system resource" with a traceback each time accept() hits EMFILE, aiohttp
    # logs bad requests, the registry logs refused chargers: a flood must cost a few lines per second per kind.
    rate_limited = ("asyncio", "aiohttp.server", "aiohttp.web", "aiohttp.websocket", "backend_stub.ocpp.v16")
    domain = ("authorization", "chargers", "prepaid", "security", "sessions")
    for name in rate_limited + tuple(f"backend_stub.domain.{module}" for module in domain):
        logging.getLogger(name).addFilter(RateLimitFilter())
    if args.command == "backup":
        return run_backup(args)
    if args.verbose:
        logging.getLogger("backend_stub").setLevel(logging.DEBUG)
    if args.command == "serve":
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
