"""Command line: ``python -m conformance csms ...`` (we play the charger) and ``python -m conformance charger ...``
(we play the central system). Exit status: 0 all passed, 1 a case failed, 2 a setup error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
import sys
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

from conformance.drivers import (
    Actuator,
    InteractiveActuator,
    InteractiveTrigger,
    ProfileError,
    Trigger,
    load_actuator,
    load_trigger,
)
from conformance.engine import Progress, select_cases
from conformance.model import Case
from conformance.report import EXIT_SETUP, Report
from conformance.versions import VERSIONS

__all__ = ["build_parser", "main", "run_cli"]


def _key_value(text: str) -> tuple[str, str]:
    """Parse ``KEY=VALUE``."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _common(p: argparse.ArgumentParser) -> None:
    """Options both runners have."""
    p.add_argument(
        "--version", dest="ocpp_version", choices=sorted(VERSIONS), default="1.6", help="OCPP version"
    )
    p.add_argument(
        "--cases", metavar="PATTERN", help="comma-separated ids or blocks, shell patterns: TC_00*,Core"
    )
    p.add_argument(
        "--list", action="store_true", help="list the selected cases and their setup needs, then exit"
    )
    p.add_argument("--junit", metavar="FILE", help="write a JUnit XML report")
    p.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    p.add_argument("--json", metavar="FILE", help="write a JSON report")
    p.add_argument(
        "--timeout-scale", type=float, default=1.0, help="multiply every case timeout and wait (default: 1)"
    )
    p.add_argument(
        "--call-timeout", type=float, default=10.0, help="seconds to wait for an answer (default: 10)"
    )
    p.add_argument(
        "--var",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a profile template variable",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


def build_parser() -> argparse.ArgumentParser:
    """The command line parser."""
    parser = argparse.ArgumentParser(prog="python -m conformance", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('opencharge-stack')}")
    sub = parser.add_subparsers(dest="command", required=True)

    csms = sub.add_parser("csms", help="test a central system (this side plays the charger)")
    csms.add_argument("--url", required=True, help="the central system's OCPP base URL, ws://host:port/path")
    csms.add_argument("--charger-id", required=True, help="a charger id the central system knows")
    csms.add_argument("--password", help="that charger's HTTP Basic password (security profile 1)")
    csms.add_argument("--tls-ca", metavar="PEM", help="CA to verify a wss:// central system")
    csms.add_argument("--tls-cert", metavar="PEM", help="client certificate (security profile 3)")
    csms.add_argument("--tls-key", metavar="PEM", help="the client certificate's key")
    how = csms.add_mutually_exclusive_group()
    how.add_argument(
        "--trigger", metavar="FILE", help="trigger profile (TOML) or a shipped one: bundled-csms, tzi-octt"
    )
    how.add_argument(
        "--interactive", action="store_true", help="ask the operator to make the central system act"
    )
    for kind, text in (
        ("accepted", "a card the central system accepts"),
        ("blocked", "a card it knows as blocked"),
        ("expired", "a card it knows as expired"),
        ("invalid", "a card it does not know"),
    ):
        csms.add_argument(f"--id-tag-{kind}", metavar="TAG", help=text)
    csms.add_argument("--second-charger-id", help="another registered charger (with a different password)")
    csms.add_argument("--second-password", help="the second charger's password")
    csms.add_argument(
        "--pending-charger-id", help="a charger the central system answers BootNotification Pending"
    )
    csms.add_argument("--pending-password", help="the pending charger's password")
    csms.add_argument(
        "--upgrade-charger-id",
        help="a registered charger only the security profile upgrade cases use (TC_083_CSMS, TC_A_19_CSMS: one "
        "profile up, 1 to 2 from a ws:// --url, 2 to 3 from wss://; they leave it there: a fresh one per run)",
    )
    csms.add_argument("--upgrade-password", help="the upgrade charger's password (profiles 1 and 2)")
    csms.add_argument(
        "--upgrade-url", help="the higher profile's endpoint, e.g. wss://host:port/ocpp (default: --url)"
    )
    csms.add_argument("--upgrade-tls-cert", metavar="PEM", help="the upgrade charger's client certificate")
    csms.add_argument("--upgrade-tls-key", metavar="PEM", help="its key")
    csms.add_argument(
        "--profiles",
        help="feature profiles the central system offers, e.g. Core,SmartCharging,Security (default: all); "
        "the cases of the others are not applicable",
    )
    csms.add_argument("--trigger-wait", type=float, default=30.0, help="seconds to wait for a triggered CALL")
    csms.add_argument(
        "--heartbeat-wait-max",
        type=float,
        default=0.0,
        help="wait out a heartbeat interval up to this long (s)",
    )
    _common(csms)

    charger = sub.add_parser("charger", help="test a charger (this side plays the central system)")
    charger.add_argument(
        "--listen", default="127.0.0.1:9000", help="HOST:PORT to listen on (default: %(default)s)"
    )
    charger.add_argument("--charger-id", help="the charger id to wait for (default: the first to connect)")
    act = charger.add_mutually_exclusive_group()
    act.add_argument(
        "--actuate", metavar="FILE", help="actuation profile (TOML) or: chargepoint-agent, simulator-fleet"
    )
    act.add_argument("--interactive", action="store_true", help="ask the operator for physical steps")
    charger.add_argument("--connector", type=int, default=1, help="connector to test (default: 1)")
    charger.add_argument(
        "--id-tag", default="CONFTAG01", help="the card the actuation presents (default: %(default)s)"
    )
    charger.add_argument(
        "--connect-timeout", type=float, default=60.0, help="seconds to wait for the charger"
    )
    charger.add_argument(
        "--prompt-wait",
        type=float,
        default=60.0,
        help="--interactive: seconds to wait for Enter before the case is inconclusive (default: 60)",
    )
    charger.add_argument(
        "--backup-power",
        action="store_true",
        help="the charger has back-up power and stops transactions before going down (TC_032_1)",
    )
    tls = charger.add_argument_group(
        "TLS (security profiles 2 and 3: TC_086/TC_087, TC_A_04/TC_A_07; not applicable without)"
    )
    tls.add_argument("--tls-cert", metavar="PEM", help="serve wss:// with this server certificate (chain)")
    tls.add_argument("--tls-key", metavar="PEM", help="the server certificate's key")
    tls.add_argument(
        "--tls-self-signed",
        metavar="DIR",
        help="serve wss:// with a throwaway CA and server certificate for the --listen host, written to DIR "
        "(install DIR/ca.pem on the charger as its central system root)",
    )
    tls.add_argument("--tls-ca", metavar="PEM", help="CA of charger client certificates (security profile 3)")
    _common(charger)
    return parser


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """Client TLS for a wss:// central system (profiles 2 and 3)."""
    if not args.url.startswith("wss://"):
        return None
    context = ssl.create_default_context(cafile=args.tls_ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if args.tls_cert:
        context.load_cert_chain(args.tls_cert, args.tls_key)
    return context


def _upgrade_tls(args: argparse.Namespace) -> dict[int, ssl.SSLContext]:
    """Client TLS of the upgrade charger on wss:// endpoints: 2 without a client certificate, 3 with its own (when
    --upgrade-tls-cert gives one)."""
    if not any(u and u.startswith("wss://") for u in (args.url, args.upgrade_url)):
        return {}
    contexts = {}
    for profile in (2, 3) if args.upgrade_tls_cert else (2,):
        context = ssl.create_default_context(cafile=args.tls_ca)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if profile == 3:
            context.load_cert_chain(args.upgrade_tls_cert, args.upgrade_tls_key)
        contexts[profile] = context
    return contexts


def _print_plan(cases: Sequence[Case[Any]], unmet: dict[str, str], stream: Any) -> None:
    """Say before the run which cases lack setup, and what would provide it."""
    lacking: dict[str, list[str]] = {}
    for c in cases:
        for need in sorted(c.needs):
            if need in unmet:
                lacking.setdefault(need, []).append(c.id)
    for need, ids in lacking.items():
        print(
            f"setup: {len(ids)} case(s) need {unmet[need]}; they will be inconclusive: {', '.join(ids)}",
            file=stream,
        )


async def _csms(args: argparse.Namespace, report: Report, cases: Sequence[Case[Any]]) -> None:
    from conformance.csms_runner import NEED_OPTIONS, CsmsContext, CsmsSetup, preflight
    from conformance.engine import run_cases

    trigger: Trigger | None = None
    if args.interactive:
        trigger = InteractiveTrigger()
    elif args.trigger:
        # {ocpp_version} in a profile's templates is the version under test (tzi-OCTT: /api/octt/{version}/...).
        trigger = load_trigger(args.trigger, {"ocpp_version": args.ocpp_version, **dict(args.var)})
    v = VERSIONS[args.ocpp_version]
    setup = CsmsSetup(
        url=args.url,
        charger_id=args.charger_id,
        password=args.password,
        ssl_context=_ssl_context(args),
        schema_version=v.schema_version,
        subprotocol=v.subprotocol,
        id_tags={k: getattr(args, f"id_tag_{k}") for k in ("accepted", "blocked", "expired", "invalid")},
        second_charger_id=args.second_charger_id,
        second_password=args.second_password,
        pending_charger_id=args.pending_charger_id,
        pending_password=args.pending_password,
        upgrade_charger_id=args.upgrade_charger_id,
        upgrade_password=args.upgrade_password,
        upgrade_url=args.upgrade_url,
        upgrade_tls=_upgrade_tls(args),
        trigger=trigger,
        call_timeout_s=args.call_timeout,
        trigger_wait_s=args.trigger_wait,
        heartbeat_wait_max_s=args.heartbeat_wait_max,
        profiles=frozenset(p.strip() for p in args.profiles.split(",")) if args.profiles else None,
        client_certificate=bool(args.tls_cert),
    )
    unmet = {n: t for n, t in NEED_OPTIONS.items() if n not in setup.needs_available()}
    _print_plan(cases, unmet, sys.stderr)
    ctx = CsmsContext(timeout_scale=args.timeout_scale, setup=setup)
    problem = await preflight(ctx)
    if problem:
        report.setup_error = problem
        return
    await run_cases(ctx, cases, report, unmet=unmet, progress=Progress(len(cases), quiet=args.quiet))


async def _charger(args: argparse.Namespace, report: Report, cases: Sequence[Case[Any]]) -> None:
    from conformance.charger_runner import ChargerSetup, run_charger_suite

    actuator: Actuator | None = None
    if args.interactive:
        actuator = InteractiveActuator(wait_s=args.prompt_wait)
    elif args.actuate:
        actuator = load_actuator(
            args.actuate, {**dict(args.var), **({"cp": args.charger_id} if args.charger_id else {})}
        )
    host, _, port = args.listen.rpartition(":")
    v = VERSIONS[args.ocpp_version]
    try:
        tls, tls_files = _server_tls(args, host or "127.0.0.1")
    except (OSError, ssl.SSLError, ValueError) as exc:
        report.setup_error = f"TLS set-up: {exc}"
        return
    setup = ChargerSetup(
        host=host or "127.0.0.1",
        port=int(port),
        charger_id=args.charger_id,
        schema_version=v.schema_version,
        subprotocol=v.subprotocol,
        actuator=actuator,
        connector=args.connector,
        id_tag=args.id_tag,
        connect_timeout_s=args.connect_timeout,
        call_timeout_s=args.call_timeout,
        backup_power=args.backup_power,
        tls=tls,
        tls_client_ca=tls is not None and args.tls_ca is not None,
        tls_files=tls_files,
    )
    await run_charger_suite(setup, cases, report, timeout_scale=args.timeout_scale, quiet=args.quiet)


def _server_tls(args: argparse.Namespace, host: str) -> tuple[ssl.SSLContext | None, tuple[str, str] | None]:
    """The charger runner's server TLS from --tls-cert/--tls-key or --tls-self-signed, and its certificate and key
    files (None: plain ws://)."""
    from backend_stub.ocpp_server import tls_context
    from conformance.pki import write_server_pki

    if args.tls_self_signed and (args.tls_cert or args.tls_key):
        raise ValueError("--tls-self-signed and --tls-cert/--tls-key exclude each other")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    if args.tls_self_signed:
        cert, key, ca = write_server_pki(args.tls_self_signed, host)
        if not args.quiet:
            print(
                f"TLS: throwaway CA {ca} (install it on the charger), server certificate for {host}",
                flush=True,
            )
        return tls_context(cert, key, args.tls_ca), (str(cert), str(key))
    if args.tls_cert:
        return tls_context(args.tls_cert, args.tls_key, args.tls_ca), (args.tls_cert, args.tls_key)
    if args.tls_ca:
        raise ValueError(
            "--tls-ca needs --tls-cert/--tls-key or --tls-self-signed (client certificates need TLS)"
        )
    return None, None


async def _run(args: argparse.Namespace, report: Report, cases: Sequence[Case[Any]]) -> None:
    """Run the suite; the reports are written whatever happens (a Ctrl-C leaves a partial one)."""
    try:
        if args.command == "csms":
            await _csms(args, report, cases)
        else:
            await _charger(args, report, cases)
    except ProfileError as exc:
        report.setup_error = str(exc)
    finally:
        report.write(junit=args.junit, html_path=args.html, json_path=args.json)


def _prepare(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[Case[Any]]] | int:
    """Parse the command line and select cases; an int is an exit status (listing done, or nothing selected)."""
    args = build_parser().parse_args(argv)
    v = VERSIONS[args.ocpp_version]
    catalogue = v.csms_cases() if args.command == "csms" else v.charger_cases()
    if not catalogue:
        print(f"error: no {args.command} cases for OCPP {args.ocpp_version} yet", file=sys.stderr)
        return EXIT_SETUP
    cases = select_cases(catalogue, args.cases)
    if not cases:
        print(f"error: no case matches {args.cases!r}", file=sys.stderr)
        return EXIT_SETUP
    if args.list:
        for c in cases:
            needs = f"  needs: {', '.join(sorted(c.needs))}" if c.needs else ""
            unconfirmed = "  (id unconfirmed)" if c.id_unconfirmed else ""
            print(f"{c.id:<16} {c.block:<14} {c.title}{unconfirmed}{needs}")
        return 0
    return args, cases


def _finish(report: Report) -> int:
    """Print the outcome; return the exit status."""
    if report.setup_error:
        print(f"setup error: {report.setup_error}", file=sys.stderr)
    print(report.summary_line(), file=sys.stderr)
    return report.exit_status()


def _new_report(args: argparse.Namespace) -> Report:
    return Report(args.command, args.ocpp_version, args.url if args.command == "csms" else args.listen)


async def run_cli(argv: Sequence[str]) -> tuple[int, Report | None]:
    """Like `main`, inside a running event loop (for tests): the exit status and the report."""
    prepared = _prepare(argv)
    if isinstance(prepared, int):
        return prepared, None
    args, cases = prepared
    report = _new_report(args)
    await _run(args, report, cases)
    return _finish(report), report


async def _run_until_terminated(args: argparse.Namespace, report: Report, cases: Sequence[Case[Any]]) -> None:
    """`_run`, which SIGTERM ends like Ctrl-C: the cases stop, the charger the suite started is stopped (its whole
    process group), and the partial report is written."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await _run(args, report, cases)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    prepared = _prepare(argv)
    if isinstance(prepared, int):
        return prepared
    args, cases = prepared
    report = _new_report(args)
    try:
        asyncio.run(_run_until_terminated(args, report, cases))
    except (KeyboardInterrupt, asyncio.CancelledError):
        report.interrupted = True
        report.write(junit=args.junit, html_path=args.html, json_path=args.json)
    return _finish(report)


if __name__ == "__main__":
    sys.exit(main())
