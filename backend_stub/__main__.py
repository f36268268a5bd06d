"""Command line: `python -m backend_stub serve --db FILE --host 127.0.0.1 --port 9000 [--log FILE]`.

The first line printed is the OCPP base URL (chargers connect to `{url}/{chargePointId}`); with --db the next
lines give the dashboard URL and, at the first start without CSMS_ADMIN_TOKEN, the generated admin token.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import version

from backend_stub.ocpp_server import CentralSystem, tls_context


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
    serve.add_argument("-v", "--verbose", action="store_true", help="log every frame to stderr")
    return parser


def _configure(server: CentralSystem, args: argparse.Namespace) -> None:
    """Settings common to both servers: frame size limit, TLS, and frames kept in the log file only."""
    server.keep_frames = False  # a server that runs for months keeps frames in the log file only
    server.max_message_bytes = args.max_message_bytes
    if args.tls_cert:
        server.ssl_context = tls_context(args.tls_cert, args.tls_key or args.tls_cert, args.tls_client_ca)


async def serve(args: argparse.Namespace) -> None:
    """Run the central system until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if args.db:
        from backend_stub.csms import Csms
        from backend_stub.store import CsmsStore

        with CsmsStore(args.db, durable=args.durable) as store:
            app = Csms(
                store,
                host=args.host,
                port=args.port,
                admit_unknown=args.admit_unknown,
                heartbeat_interval_s=args.heartbeat_interval,
                log_path=args.log,
            )
            _configure(app.server, args)
            await app.start()
            try:
                print(app.url, flush=True)
                print(f"dashboard and REST API: {app.http_url}/  (OpenAPI: {app.http_url}/api/openapi.json)")
                if app.new_admin_token is not None:
                    print(
                        f"admin token (shown once; set CSMS_ADMIN_TOKEN to choose one): {app.new_admin_token}"
                    )
                sys.stdout.flush()
                await stop.wait()
            finally:
                await app.stop()
        return
    cs = CentralSystem(args.host, args.port, log_path=args.log)
    _configure(cs, args)
    cs.heartbeat_interval = args.heartbeat_interval
    cs.passwords.update(args.password)
    cs.id_tags.update(args.id_tag)
    cs.default_auth_status = args.default_auth_status
    async with cs:
        print(cs.url, flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve" and args.max_message_bytes < 1024:
        parser.error("--max-message-bytes must be at least 1024")
    if args.command == "serve" and (args.tls_key or args.tls_client_ca) and not args.tls_cert:
        parser.error("--tls-key and --tls-client-ca need --tls-cert")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.verbose:
        logging.getLogger("backend_stub").setLevel(logging.DEBUG)
    if args.command == "serve":
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
