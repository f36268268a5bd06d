"""Side by side with the SAP e-mobility charging-stations simulator, same workload, same kind of central system.

``benchmarks/fleet.py --compare-sap DIR`` runs this. DIR is a built copy of
https://github.com/SAP/e-mobility-charging-stations-simulator (``pnpm install && pnpm build``: it needs Node >= 22
and pnpm; DIR/dist/start.js must exist). SAP is not a dependency: without DIR (or SAP_SIMULATOR_DIR) the comparison
is skipped and says so. The workload, for both: OCPP 1.6, one connector per station, 20 % of the stations charging
(SAP: its automatic transaction generator with Authorize, sessions of a day starting 1-20 s after boot; ours: the
benchmark's plug and swipe spread over 20 s), MeterValues (Energy.Active.Import.Register) every 10 s, Heartbeat at
the interval the central system gives (60 s). The central system is the bundled test server (accepts every
charger and card), a fresh one per run. SAP runs its default "workerSet" (worker threads in one process).

For each size (``--sap-counts``, default 1,000 and 2,000) each simulator is measured alone: process RSS once every
station is connected and the sessions have started, and CPU over the steady ``--window``. The cost of each added
station is the RSS slope between the sizes; its fixed cost the intercept.

    .venv/bin/python benchmarks/fleet.py --compare-sap /path/to/e-mobility-charging-stations-simulator --window 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from simulator.fleet import CsmsProcess

FLEET = Path(__file__).resolve().parent / "fleet.py"
SETTLE_S = 25.0  # after the last station connected: every session started (1-20 s delay) and sampling


def _template(charging: bool) -> dict[str, Any]:
    """A one-connector AC station; the charging kind starts one long session on its own."""
    template: dict[str, Any] = {
        "$schemaVersion": 1,
        "idTagsFile": "idtags.json",
        "baseName": "SAP-CHG" if charging else "SAP-IDLE",
        "chargePointModel": "bench",
        "chargePointVendor": "bench",
        "power": 7400,
        "powerUnit": "W",
        "currentOutType": "AC",
        "numberOfPhases": 1,
        "voltageOut": 230,
        "numberOfConnectors": 1,
        "randomConnectors": False,
        "ocppVersion": "1.6",
        "Configuration": {
            "configurationKey": [
                {
                    "key": "MeterValuesSampledData",
                    "readonly": False,
                    "value": "Energy.Active.Import.Register",
                },
                {"key": "MeterValueSampleInterval", "readonly": False, "value": "10"},
                # Our agents send no WebSocket pings in the benchmark either (WebSocketPingInterval unset).
                {"key": "WebSocketPingInterval", "readonly": False, "value": "0"},
                {"key": "SupportedFeatureProfiles", "readonly": True, "value": "Core"},
            ]
        },
        "Connectors": {
            "0": {},
            "1": {"bootStatus": "Available", "MeterValues": [{"unit": "Wh", "context": "Sample.Periodic"}]},
        },
    }
    if charging:
        template["AutomaticTransactionGenerator"] = {
            "enable": True,
            "minDuration": 86400,
            "maxDuration": 86400,
            "minDelayBetweenTwoTransactions": 1,
            "maxDelayBetweenTwoTransactions": 20,
            "probabilityOfStart": 1,
            "stopAfterHours": 24,
            "requireAuthorize": True,
        }
    return template


def _prepare(sap_dir: Path, work: Path, count: int, url: str) -> Path:
    """A copy of SAP's dist/ configured for ``count`` stations against ``url``; returns its start.js.

    The copy sits inside ``sap_dir`` so that Node resolves SAP's node_modules; the user's dist/ is not touched.
    """
    dist = sap_dir / ".opencharge-bench-dist"
    shutil.rmtree(dist, ignore_errors=True)
    shutil.copytree(sap_dir / "dist", dist)
    assets = dist / "assets"
    templates = assets / "station-templates"
    templates.mkdir(parents=True, exist_ok=True)
    (templates / "bench-charging.station-template.json").write_text(json.dumps(_template(True)))
    (templates / "bench-idle.station-template.json").write_text(json.dumps(_template(False)))
    charging = count // 5
    (assets / "idtags.json").write_text(json.dumps([f"BENCH-{n:05d}" for n in range(max(1, charging))]))
    config = {
        "$schemaVersion": 1,
        "supervisionUrls": [url],
        "supervisionUrlDistribution": "round-robin",
        "log": {
            "enabled": True,
            "level": "error",
            "file": str(work / "sap-combined.log"),
            "errorFile": str(work / "sap-error.log"),
            "statisticsInterval": 0,
        },
        "worker": {"processType": "workerSet"},
        "performanceStorage": {"enabled": False},
        "uiServer": {"enabled": False},
        "persistState": False,
        "stationTemplateUrls": [
            {"file": "bench-charging.station-template.json", "numberOfStations": charging},
            {"file": "bench-idle.station-template.json", "numberOfStations": count - charging},
        ],
    }
    (assets / "config.json").write_text(json.dumps(config, indent=1))
    return dist / "start.js"


def process_tree(pid: int) -> list[psutil.Process]:
    """A process and all its descendants (a simulator's or a central system's workers)."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def rss_mb_total(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            total += proc.memory_info().rss / 2**20
        except psutil.Error:
            continue
    return total


def _connected(procs: list[psutil.Process], port: int) -> int:
    """ESTABLISHED TCP connections of ``procs`` to the central system's port."""
    n = 0
    for proc in procs:
        try:
            conns = proc.net_connections(kind="tcp")
        except psutil.Error:
            continue
        n += sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr.port == port)
    return n


async def run_sap(node: str, sap_dir: Path, count: int, window_s: float, work: Path) -> dict[str, Any]:
    """SAP with ``count`` stations against a fresh test central system; its RSS and CPU."""
    work.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before anything runs
    # Every frame logged: the CALLs SAP really sent in the window (is its workload the one asked for?).
    frames = work / "frames.jsonl"
    frames.unlink(missing_ok=True)
    csms = CsmsProcess(None, heartbeat_interval_s=60, extra_args=("--log", str(frames)))
    url = await csms.start()
    try:
        start_js = _prepare(sap_dir, work, count, url)
        t0 = time.monotonic()
        with (work / "sap-stdout.log").open("w") as out:
            proc = subprocess.Popen(  # noqa: ASYNC220 - started once; psutil watches it
                [node, str(start_js)], cwd=sap_dir, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            deadline = t0 + 600
            connected = 0
            while time.monotonic() < deadline:
                connected = _connected(process_tree(proc.pid), csms.port)
                if connected >= count or proc.poll() is not None:
                    break
                await asyncio.sleep(1)
            # Connected is not booted: SAP opens every WebSocket first and boots and starts its sessions later, so
            # wait (from the frame log) until every station booted and a fifth started a transaction.
            wanted = {"BootNotification": count, "StartTransaction": count // 5}
            seen: dict[str, int] = {}
            tail = _Tail(frames)
            while time.monotonic() < deadline and proc.poll() is None:
                tail.count_calls(seen)
                if all(seen.get(action, 0) >= n for action, n in wanted.items()):
                    break
                await asyncio.sleep(1)
            ramp_s = time.monotonic() - t0
            await asyncio.sleep(SETTLE_S)
            procs = process_tree(proc.pid)
            rss = rss_mb_total(procs)
            cpu0, w0, since = cpu_seconds(procs), time.monotonic(), datetime.now(UTC)
            await asyncio.sleep(window_s)
            cpu1, wall, until = cpu_seconds(procs), time.monotonic() - w0, datetime.now(UTC)
            calls = _calls_in(frames, since, until)
            return {
                "calls": calls,
                "calls_per_s": round(sum(calls.values()) / wall, 1),
                "stations": count,
                "connected": _connected(procs, csms.port),
                "connected_after_ramp": connected,
                "booted_after_ramp": seen.get("BootNotification", 0),
                "sessions_after_ramp": seen.get("StartTransaction", 0),
                "ramp_s": round(ramp_s, 1),
                "rss_mb": round(rss, 1),
                "cpu_percent": round(100 * (cpu1 - cpu0) / wall, 1),
                "window_s": round(wall, 1),
            }
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        await csms.stop()


def run_ours(count: int, window_s: float, work: Path) -> dict[str, Any]:
    """Our fleet alone with ``count`` chargers against the test central system (benchmarks/fleet.py)."""
    argv = [sys.executable, str(FLEET), "--count", str(count), "--window", str(window_s), "--test-mode"]
    argv += ["--alone", "--work-dir", str(work)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    return {
        "stations": count,
        "connected": r["booted"],
        "in_transaction": r["in_transaction"],
        "ramp_s": r["ramp_s"],
        "rss_mb": r["rss_loaded_mb"],
        "cpu_percent": r["fleet_cpu_percent"],
        "window_s": r["window_s"],
        "calls": r["calls"],
        "calls_per_s": r["calls_per_s"],
    }


class _Tail:
    """Reads a growing frame log from where it stopped last time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def count_calls(self, into: dict[str, int]) -> None:
        """Add the CALLs received since the last read to ``into``, by action (whole lines only)."""
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1
        self.offset += end
        for line in chunk[:end].splitlines():
            rec = json.loads(line)
            if rec.get("event") == "frame" and rec.get("direction") == "in" and rec.get("message_type") == 2:
                into[rec["action"]] = into.get(rec["action"], 0) + 1


def _calls_in(frames: Path, since: datetime, until: datetime) -> dict[str, int]:
    """CALLs received by the central system between two instants, by action, from its frame log."""
    counts: dict[str, int] = {}
    with frames.open() as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("event") != "frame" or rec.get("direction") != "in" or rec.get("message_type") != 2:
                continue
            if since <= datetime.fromisoformat(rec["ts"]) < until:
                counts[rec["action"]] = counts.get(rec["action"], 0) + 1
    return counts


def _node(explicit: str | None) -> tuple[str | None, str]:
    """The node binary to use and why not, if none fits (SAP needs Node >= 22)."""
    node = explicit or shutil.which("node")
    if node is None:
        return None, "no node on PATH (give --node)"
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    try:
        major = int(version.lstrip("v").split(".")[0])
    except ValueError:
        return None, f"{node} --version said {version!r}"
    if major < 22:
        return None, f"{node} is {version}; SAP needs Node >= 22 (e.g. npm install node@22, then --node)"
    return node, version


def compare_sap(args: argparse.Namespace) -> None:
    """Run both simulators at each size and print per-station memory and CPU, and the ratios."""
    given = args.compare_sap or os.environ.get("SAP_SIMULATOR_DIR", "")
    if not given:
        print("SAP comparison skipped: no built copy given (--compare-sap DIR or SAP_SIMULATOR_DIR)")
        return
    sap_dir = Path(given)
    if not (sap_dir / "dist" / "start.js").is_file():
        print(
            f"SAP comparison skipped: {sap_dir}/dist/start.js not found (build it: pnpm install && pnpm build)"
        )
        return
    node, why = _node(args.node)
    if node is None:
        print(f"SAP comparison skipped: {why}")
        return
    counts = [int(c) for c in args.sap_counts.split(",")]
    work = Path(args.work_dir) / "sap-compare"
    rows: dict[str, list[dict[str, Any]]] = {"sap": [], "ours": []}
    for count in counts:
        rows["sap"].append(asyncio.run(run_sap(node, sap_dir, count, args.window, work / f"sap-{count}")))
        print(json.dumps({"sap": rows["sap"][-1]}), flush=True)
        rows["ours"].append(run_ours(count, args.window, work / f"ours-{count}"))
        print(json.dumps({"ours": rows["ours"][-1]}), flush=True)
    print(
        f"\nSAP {why} at {sap_dir}; ours: benchmarks/fleet.py --test-mode (each alone, window {args.window} s)"
    )
    print(f"{'':44} {'SAP':>10} {'ours':>10} {'ours/SAP':>9}")
    for i, count in enumerate(counts):
        s, o = rows["sap"][i], rows["ours"][i]
        _line(f"{count} stations: connected", s["connected"], o["connected"])
        _line(f"{count} stations: RSS (MB)", s["rss_mb"], o["rss_mb"])
        _line(f"{count} stations: CPU (% of a core)", s["cpu_percent"], o["cpu_percent"])
        _line(f"{count} stations: CALLs per s in the window", s["calls_per_s"], o["calls_per_s"])
        _line(
            f"{count} stations: CPU per CALL (ms)",
            s["cpu_percent"] * 10 / max(s["calls_per_s"], 1e-9),
            o["cpu_percent"] * 10 / max(o["calls_per_s"], 1e-9),
        )
        _line(
            f"{count} stations: CPU per station-minute (ms)",
            s["cpu_percent"] * 600 / count,
            o["cpu_percent"] * 600 / count,
        )
    if len(counts) >= 2:
        lo, hi = 0, len(counts) - 1
        added = counts[hi] - counts[lo]
        slope = {k: (rows[k][hi]["rss_mb"] - rows[k][lo]["rss_mb"]) * 1024 / added for k in rows}
        fixed = {k: rows[k][lo]["rss_mb"] - slope[k] * counts[lo] / 1024 for k in rows}
        cpu = {k: (rows[k][hi]["cpu_percent"] - rows[k][lo]["cpu_percent"]) * 600 / added for k in rows}
        _line("each added station: memory (KB; target <= 0.75x)", slope["sap"], slope["ours"])
        _line("each added station: CPU per minute (ms; <= 1.0x)", cpu["sap"], cpu["ours"])
        _line("fixed cost (MB)", fixed["sap"], fixed["ours"])


def _line(name: str, sap: float, ours: float) -> None:
    ratio = ours / sap if sap else float("nan")
    print(f"{name:44} {sap:10.1f} {ours:10.1f} {ratio:9.2f}")
