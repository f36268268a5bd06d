"""The local demo: the bundled central system, one simulated charger driven through a scripted session, and a
small virtual fleet of real agents with simulated EVs; prints where to look.

``./dev demo [--duration S]`` runs it; Ctrl-C or SIGTERM stops it and every process it started. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
from importlib.metadata import version
from pathlib import Path
from typing import IO

from backend_stub.process import start_csms_process
from chargepoint.control import ControlError, send_command

STATION_TOML = """\
[station]
id = "DEMO-CP-1"
vendor = "OpenChargeStack"
model = "PiCharger-Sim"

[csms]
url = "{url}"
reconnect_max_s = 10

[storage]
path = "agent.db"

[control]
socket = "agent.sock"

[settings]
heartbeat_interval_s = 60
meter_value_sample_interval_s = 5
clock_aligned_data_interval_s = 60
meter_values_sampled_data = ["Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "Voltage"]

[[connectors]]
id = 1
max_current_a = 32
phases = 1
relay = {{ driver = "sim" }}
meter = {{ driver = "sim", energy_wh = 1000 }}
plug = {{ driver = "sim", ev_power_w = 7400 }}
reader = {{ driver = "sim" }}

[[connectors]]
id = 2
phases = 3
relay = {{ driver = "sim" }}
meter = {{ driver = "sim" }}
plug = {{ driver = "sim", ev_power_w = 11000 }}
reader = {{ driver = "sim" }}
"""


async def _ctl(sock: str, *args: str) -> object:
    for _ in range(50):
        with contextlib.suppress(ControlError):
            return await send_command(sock, list(args))
        await asyncio.sleep(0.2)
    return await send_command(sock, list(args))


def prepare(run_dir: Path) -> None:
    """A fresh run directory."""
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(run_dir / "fleet-report", ignore_errors=True)  # the fleet's store and last report
    for stale in (
        "agent.db",
        "agent.db-wal",
        "agent.db-shm",
        "csms.jsonl",
        "csms.db",
        "csms.db-wal",
        "csms.db-shm",
    ):
        with contextlib.suppress(FileNotFoundError):
            (run_dir / stale).unlink()


FLEET_SCENARIO = Path(__file__).resolve().parent.parent / "simulator" / "scenarios" / "demo.toml"
FLEET_SIZE = 10  # chargers of the demo scenario
DEMO_ADMIN_TOKEN = "demo-admin-token"  # the demo's dashboard login unless CSMS_ADMIN_TOKEN is set

DEMO_TARIFF = {  # 0.40 EUR/kWh + 0.50 EUR per session, VAT 19 %
    "currency": "EUR",
    "elements": [
        {"price_components": [{"type": "FLAT", "price": 0.5, "vat": 19, "step_size": 1}]},
        {"price_components": [{"type": "ENERGY", "price": 0.4, "vat": 19, "step_size": 1}]},
    ],
}


def seed(db: Path) -> None:
    """The demo's central-system records: the chargers, a tariff, a user with a prepaid card and 20 EUR on it,
    and the virtual fleet's drivers."""
    from backend_stub.store import CsmsStore

    with CsmsStore(db) as store:
        store.add_charger("DEMO-CP-1")
        store.put_tariff("DEMO", json.dumps(DEMO_TARIFF))
        store.set_default_tariff_id("DEMO")
        user = store.add_user("Demo Driver", phone="+49 30 0000000", email="driver@example.org")
        store.add_card("DEMO-TAG-1", user_id=user.id, mode="prepaid")
        store.topup("DEMO-TAG-1", 2000, "demo-topup")
        # The virtual fleet of simulator/scenarios/demo.toml: its chargers and its drivers' personal cards.
        for n in range(1, FLEET_SIZE + 1):
            store.add_charger(f"CP-{n:04d}")
        for n in range(1, 5):
            driver = store.add_user(f"Fleet Driver {n}")
            store.add_card(f"DEMO-{n:04d}", user_id=driver.id, mode="personal")


def summary(db: Path) -> str:
    """What the central system booked for the demo card."""
    from backend_stub.store import CsmsStore

    with CsmsStore(db) as store:
        charges = [e for e in store.entries("DEMO-TAG-1") if e.kind == "charge"]
        cost = -sum(e.amount_minor for e in charges)
        return f"charged {cost / 100:.2f} EUR for {len(charges)} session(s); balance {store.balance('DEMO-TAG-1') / 100:.2f} EUR"


def write_config(run_dir: Path, url: str) -> Path:
    """The station config pointing at the central system at ``url``."""
    config = run_dir / "station.toml"
    config.write_text(STATION_TOML.format(url=url))
    return config


async def demo(run_dir: Path, logs: tuple[IO[str], IO[str], IO[str]], duration_s: float | None) -> int:
    """Start both processes, drive one session, print where to look; stop after ``duration_s`` if given."""
    # SIGTERM and SIGINT end the demo through the `finally` below, which stops every process it started; by
    # default a SIGTERM would kill the demo alone and leave its children running under PID 1.
    loop, main_task = asyncio.get_running_loop(), asyncio.current_task()
    assert main_task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main_task.cancel)
    children: list[asyncio.subprocess.Process] = []
    try:
        return await _demo(run_dir, logs, duration_s, children)
    except asyncio.CancelledError:
        print("stopping the demo ...", flush=True)
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        for proc in reversed(children):
            if proc.returncode is None:
                proc.terminate()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(30):
                        await proc.wait()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def _demo(
    run_dir: Path,
    logs: tuple[IO[str], IO[str], IO[str]],
    duration_s: float | None,
    children: list[asyncio.subprocess.Process],
) -> int:
    """The demo proper; every process it starts goes into ``children`` at once, for the caller to stop."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    token = env.setdefault("CSMS_ADMIN_TOKEN", DEMO_ADMIN_TOKEN)
    seed(run_dir / "csms.db")
    csms, url = await start_csms_process(
        log_path=run_dir / "csms.jsonl",
        db=run_dir / "csms.db",
        stderr=logs[0],
        env=env,
        extra_args=("--payment-provider", "test"),  # the demo's QR pages take simulated money
    )
    children.append(csms)
    web = url.replace("ws", "http", 1).removesuffix("/ocpp")
    config = write_config(run_dir, url)
    agent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chargepoint",
        "run",
        "--config",
        str(config),
        stdout=logs[1],
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    children.append(agent)
    fleet = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator",
        "run",
        "--scenario",
        str(FLEET_SCENARIO),
        "--csms",
        url,
        "--no-live",
        "--duration",
        str(duration_s if duration_s is not None else 7 * 24 * 3600),
        "--report-dir",
        str(run_dir / "fleet-report"),
        "--control-socket",
        str(run_dir / "fleet.sock"),
        stdout=logs[2],
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        cwd=run_dir,
    )
    children.append(fleet)
    sock = str(run_dir / "agent.sock")
    ctl = f"{sys.executable} -m chargepoint ctl --config {config}"
    print(
        f"""
Demo running (everything on 127.0.0.1):
  central system   {url}/<chargePointId>   frames: {run_dir / "csms.jsonl"}   store: {run_dir / "csms.db"}
  dashboard        {web}/   (log in with the admin token {token})
  REST API         curl -H 'Authorization: Bearer {token}' {web}/api/chargers   (spec: {web}/api/openapi.json)
  pay by QR code   {web}/pay/DEMO-CP-1/2   (its QR code: {web}/qr/DEMO-CP-1/2.svg)
  charger          DEMO-CP-1 (2 simulated connectors)           log:    {run_dir / "agent.log"}
  drive it         {ctl} status | plug 2 | swipe 2 DEMO-TAG-1 | unplug 2
  virtual fleet    CP-0001..CP-{FLEET_SIZE:04d}: real agents, simulated EVs, one simulated hour per minute
                   log: {run_dir / "fleet.log"}   report at the end: {run_dir / "fleet-report"}
                   {sys.executable} -m simulator ctl --socket {run_dir / "fleet.sock"} status CP-0001
""",
        flush=True,
    )
    try:
        print("connector 1: plug in, swipe DEMO-TAG-1 ...", flush=True)
        await _ctl(sock, "plug", "1")
        await asyncio.sleep(1)
        await _ctl(sock, "swipe", "1", "DEMO-TAG-1")
        await asyncio.sleep(12)
        status = await _ctl(sock, "status")
        print("status:", json.dumps(status), flush=True)
        print("connector 1: swipe again to stop, unplug ...", flush=True)
        await _ctl(sock, "swipe", "1", "DEMO-TAG-1")
        await asyncio.sleep(1)
        await _ctl(sock, "unplug", "1")
        await asyncio.sleep(2)
        frames = [json.loads(line) for line in _read_lines(run_dir / "csms.jsonl")]
        actions = [
            f.get("action") for f in frames if f.get("direction") == "in" and f.get("message_type") == 2
        ]
        print(
            "central system received:", ", ".join(f"{a} x{actions.count(a)}" for a in dict.fromkeys(actions))
        )
        stops = [f for f in frames if f.get("action") == "StopTransaction" and f.get("message_type") == 2]
        if stops:
            print("StopTransaction:", json.dumps(stops[-1]["payload"]))
        print("central system:", summary(run_dir / "csms.db"), flush=True)
        if duration_s is None:
            print("\nStill running; press Ctrl-C to stop.", flush=True)
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(max(0.0, duration_s - 16))
    except ControlError as exc:
        print(f"demo failed: {exc}; see {run_dir / 'agent.log'}", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    """Entry point of ``./dev demo``."""
    parser = argparse.ArgumentParser(prog="./dev demo", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('opencharge-stack')}")
    parser.add_argument("--dir", default="demo-run", help="where the demo keeps its files")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    args = parser.parse_args()
    run_dir = Path(args.dir).resolve()
    prepare(run_dir)
    with (
        open(run_dir / "csms.out", "w") as csms_log,
        open(run_dir / "agent.log", "w") as agent_log,
        open(run_dir / "fleet.log", "w") as fleet_log,
        contextlib.suppress(KeyboardInterrupt),
    ):
        return asyncio.run(demo(run_dir, (csms_log, agent_log, fleet_log), args.duration))
    return 0


def _read_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


if __name__ == "__main__":
    sys.exit(main())
