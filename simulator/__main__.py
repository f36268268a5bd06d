"""``python -m simulator run --scenario FILE ...`` runs a fleet; ``python -m simulator ctl ...`` drives one."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

from simulator import control
from simulator.fleet import ChargerLogFilter, CsmsProcess, Fleet, dump_samples, raise_fd_limit, shard_range
from simulator.live import show
from simulator.metrics import merge_reports, write_report
from simulator.scenario import PACKAGED_SCENARIOS, Scenario, ScenarioError, load

log = logging.getLogger("simulator")
PACKAGED = ", ".join(sorted(p.stem for p in PACKAGED_SCENARIOS.glob("*.toml")))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('opencharge-stack')}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a fleet of virtual chargers")
    run.add_argument(
        "--scenario", required=True, type=Path, help="a scenario file, or a packaged one by name: " + PACKAGED
    )
    run.add_argument("--csms", help="central system URL (overrides the scenario's)")
    run.add_argument("--count", type=int, help="number of chargers (overrides the scenario's)")
    run.add_argument("--duration", type=float, help="real seconds to run (overrides the scenario's)")
    run.add_argument("--processes", type=int, default=1, help="split the fleet across K processes")
    run.add_argument("--report-dir", type=Path, default=Path("fleet-report"))
    run.add_argument("--no-live", action="store_true", help="no live terminal view")
    run.add_argument("--control-socket", type=Path, default=None, help="Unix socket for `ctl`")
    run.add_argument("--log-level", default="WARNING", help="INFO shows the fleet's progress")
    run.add_argument(
        "--fail-on-booted-below",
        type=float,
        metavar="SHARE",
        help="exit 1 when fewer than this share (0..1) of chargers booted (scenario [checks] "
        "min_booted_share; a run where no charger booted always exits 1)",
    )
    run.add_argument(
        "--fail-on-errors",
        type=int,
        metavar="N",
        help="exit 1 when the report counts more than N errors (scenario [checks] max_errors)",
    )
    run.add_argument("--shard", type=int, default=0, help=argparse.SUPPRESS)
    run.add_argument("--shards", type=int, default=1, help=argparse.SUPPRESS)
    ctl = sub.add_parser("ctl", help="drive one charger of a running fleet")
    ctl.add_argument("--socket", type=Path, default=None)
    ctl.add_argument("action", choices=["plug", "unplug", "swipe", "status"])
    ctl.add_argument("charger", nargs="?")
    ctl.add_argument("arg", nargs="?", help="connector (plug/unplug) or idTag (swipe)")
    ctl.add_argument("connector", nargs="?", type=int, help="swipe: connector (default: the plugged one)")
    seed = sub.add_parser(
        "seed",
        help="register the scenario's chargers (with their passwords) and idTags in the bundled central "
        "system's store, so that a fleet can run against `python -m backend_stub serve --db FILE`",
    )
    seed.add_argument("--scenario", required=True, type=Path, help="a file, or a name: " + PACKAGED)
    seed.add_argument("--db", required=True, type=Path, help="the central system's SQLite store")
    seed.add_argument("--count", type=int, help="number of chargers (as on run)")
    check = sub.add_parser("check", help="validate a scenario file and exit")
    check.add_argument("--scenario", required=True, type=Path, help="a file, or a name: " + PACKAGED)
    return parser


async def _run_single(args: argparse.Namespace, scenario: Scenario) -> dict[str, Any]:
    """One process: the whole fleet or one shard of it."""
    work = args.report_dir
    fleet = Fleet(scenario, work_dir=work, shard=args.shard, shards=args.shards)
    sock = args.control_socket or control.default_socket()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = None
    view = None
    try:
        try:
            await fleet.start()
            server = await control.serve(sock, control.fleet_handler(fleet))
            if args.shards == 1:
                print(
                    f"fleet of {len(fleet.chargers)} chargers running; control socket {sock}", file=sys.stderr
                )
            view = asyncio.create_task(show(fleet.summary, scenario.name, live=not args.no_live))
            runner = asyncio.create_task(fleet.run())
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
            runner.cancel()
            stopper.cancel()
            await fleet.wind_down()
        finally:
            if view is not None:
                view.cancel()
            if server is not None:
                server.close()
                with contextlib.suppress(FileNotFoundError):
                    sock.unlink()
            await fleet.stop()
        report = fleet.report()
        report["processes"] = 1
        write_report(report, work)
        dump_samples(fleet, work / "latency-samples.json")
    finally:
        # Also when the run failed: the central system this fleet started must not outlive it.
        await fleet.close()
    return report


async def _run_sharded(args: argparse.Namespace, scenario: Scenario) -> dict[str, Any]:
    """``--processes K``: K child processes, one shard each; the parent routes control and merges reports."""
    k = args.processes
    csms: CsmsProcess | None = None
    url = args.csms
    if url is None and scenario.spawn_csms:
        csms = CsmsProcess(heartbeat_interval_s=scenario.fleet.heartbeat_interval_s)
        url = await csms.start()
    sock = args.control_socket or control.default_socket()
    shard_socks = [sock.with_name(f"{sock.name}.{i}") for i in range(k)]
    procs: list[asyncio.subprocess.Process] = []

    def forward_stop() -> None:
        # Ctrl-C or SIGTERM: every shard winds down and writes its report, which are then merged as usual (a
        # KeyboardInterrupt here would stop the central system under the shards' feet and merge nothing).
        for p in procs:
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGINT)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, forward_stop)
    try:
        for i in range(k):
            cmd = [
                sys.executable, "-m", "simulator", "run", "--scenario", str(args.scenario),
                "--report-dir", str(args.report_dir / f"shard-{i}"), "--no-live",
                "--control-socket", str(shard_socks[i]), "--shard", str(i), "--shards", str(k),
                "--log-level", args.log_level,
            ]  # fmt: skip
            if url:
                cmd += ["--csms", url]
            if args.count:
                cmd += ["--count", str(args.count)]
            if args.duration:
                cmd += ["--duration", str(args.duration)]
            procs.append(await asyncio.create_subprocess_exec(*cmd))
        count = scenario.fleet.count
        ids = {scenario.fleet.charger_id(i): s for s in range(k) for i in shard_range(count, s, k)}
        server = await control.serve(sock, control.router(shard_socks, ids.get))
        print(f"fleet of {count} chargers in {k} processes; control socket {sock}", file=sys.stderr)
        try:
            codes = await asyncio.gather(*(p.wait() for p in procs))
        finally:
            server.close()
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()
        if any(codes):
            raise SystemExit(f"a fleet process failed (exit codes {codes})")
    finally:
        for p in procs:
            if p.returncode is None:
                p.terminate()
        for p in procs:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(p.wait(), 60)
        if csms is not None:
            await csms.stop()
    parts = [json.loads((args.report_dir / f"shard-{i}" / "report.json").read_text()) for i in range(k)]
    samples = [
        json.loads((args.report_dir / f"shard-{i}" / "latency-samples.json").read_text()) for i in range(k)
    ]
    report = merge_reports(parts, samples)
    write_report(report, args.report_dir)
    return report


async def _ctl(args: argparse.Namespace) -> int:
    sock = args.socket or control.default_socket()
    req: dict[str, Any] = {"cmd": args.action}
    if args.charger:
        req["charger"] = args.charger
    if args.action in ("plug", "unplug"):
        if not args.charger:
            print(f"error: {args.action} needs a charger id and a connector", file=sys.stderr)
            return 2
        try:
            req["connector"] = int(args.arg or 1)
        except ValueError:
            print(f"error: {args.action}: the connector must be a number, got {args.arg!r}", file=sys.stderr)
            return 2
    elif args.action == "swipe":
        if not args.charger or not args.arg:
            print("error: swipe needs a charger id and an idTag", file=sys.stderr)
            return 2
        req["id_tag"] = args.arg
        if args.connector is not None:
            req["connector"] = args.connector
    try:
        answer = await control.request(sock, req)
    except (OSError, TimeoutError) as exc:
        print(f"error: no fleet at {sock}: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: the fleet at {sock} gave an unreadable answer: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer.get("status", answer), indent=2))
    return 0 if answer.get("ok") else 1


def _seed(scenario: Scenario, db: Path) -> int:
    """Register the fleet's chargers and known idTags (personal cards) in the central system's store."""
    from loadtests.credentials import Credential
    from loadtests.seed import seed_store

    tags = scenario.drivers.id_tags
    rows = [Credential(cp_id, password, tags) for cp_id, password in scenario.identities()]
    result = seed_store(db, rows, tariff=False)
    print(
        f"seeded {db}: {result.chargers_added} chargers added, {result.chargers_updated} updated "
        f"(passwords set), {result.cards_added} cards added"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = _parser().parse_args(argv)
    if args.command == "ctl":
        return asyncio.run(_ctl(args))
    try:
        scenario = load(args.scenario)
        if args.command == "check":
            print(f"{args.scenario}: ok ({scenario.fleet.count} chargers)")
            return 0
        if args.command == "seed":
            return _seed(scenario.with_overrides(count=args.count), args.db)
        scenario = scenario.with_overrides(
            csms_url=args.csms,
            count=args.count,
            duration_s=args.duration,
            min_booted_share=args.fail_on_booted_below,
            max_errors=args.fail_on_errors,
        )
        if args.processes < 1:
            raise ScenarioError("--processes", f"must be >= 1, got {args.processes}")
        if args.processes > 1 and any(f.kind == "csms_restart" for f in scenario.faults):
            raise ScenarioError("faults.kind", "csms_restart runs with --processes 1 only")
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s [%(charger)s] %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(ChargerLogFilter())
    raise_fd_limit()
    if args.processes > 1:
        report = asyncio.run(_run_sharded(args, scenario))
    else:
        report = asyncio.run(_run_single(args, scenario))
    print(
        f"report: {args.report_dir / 'report.json'} and report.md; sessions {report['sessions_by_outcome']}, "
        f"energy {report['energy_wh']} Wh, CALLs {report['messages']}, errors {report['errors']}"
    )
    # A shard process (--shard/--shards, started by --processes) leaves the verdict to its parent's merged report.
    failures = scenario.checks.failures(report) if args.shards == 1 else []
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
