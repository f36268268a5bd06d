"""A scripted OCPP 1.6 central system for the load tests: prints its URL, serves until SIGTERM/SIGINT.

    python -m tests.load.scripted_csms errors            # answers with CallErrors, invalid answers and silence
    python -m tests.load.scripted_csms remote --results F  # drives every charger through central-system calls

`errors`: BootNotification is accepted; Heartbeat gets CALLERROR InternalError, Authorize CALLERROR
SecurityError, StatusNotification for connector 0 no answer at all (a timeout) and for connector 1 an answer
its schema forbids. `remote`: after each charger's first boot, the server sends it GetConfiguration,
ChangeConfiguration, TriggerMessage, RemoteStart/RemoteStopTransaction, UnlockConnector, ChangeAvailability,
ClearCache, DataTransfer, an unknown action and a soft Reset, and writes what came back to the results file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path
from typing import Any

from backend_stub.ocpp.server import NO_REPLY, CallErrorReply, HandlerResult
from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem


def errors_mode(cs: CentralSystem) -> None:
    """Replace the handlers with ones that fail in each way a load test must report."""
    cs.validate_responses = False  # let the invalid StatusNotification answer through

    def heartbeat(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        raise CallErrorReply("InternalError", "heartbeat store is down")

    def authorize(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        raise CallErrorReply("SecurityError", "card reader certificate expired")

    def status(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        return NO_REPLY if payload["connectorId"] == 0 else {"unexpected": "field"}

    cs.handlers.update({"Heartbeat": heartbeat, "Authorize": authorize, "StatusNotification": status})


async def remote_script(cs: CentralSystem, cp_id: str, results: dict[str, Any], path: Path) -> None:
    """Drive one charger through the central-system calls and record the answers (or what went wrong)."""
    out: dict[str, Any] = {}
    results[cp_id] = out
    try:
        await _drive(cs, cp_id, out)
    except Exception as exc:
        out["error"] = repr(exc)
    path.write_text(json.dumps(results, indent=2, sort_keys=True))  # noqa: ASYNC240  # a small local file


async def _drive(cs: CentralSystem, cp_id: str, out: dict[str, Any]) -> None:

    async def ask(name: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            answer = await cs.call(cp_id, action, payload, timeout=10)
        except CallErrorReply as exc:
            answer = {"callError": exc.code}
        out[name] = answer
        return answer

    await asyncio.sleep(0.5)
    await ask("get_configuration", "GetConfiguration", {})
    await ask("change_heartbeat", "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "7"})
    await ask("get_heartbeat", "GetConfiguration", {"key": ["HeartbeatInterval", "NoSuchKey"]})
    await ask("change_unknown", "ChangeConfiguration", {"key": "NoSuchKey", "value": "1"})
    await ask("change_readonly", "ChangeConfiguration", {"key": "NumberOfConnectors", "value": "2"})
    mark = len(cs.log)
    await ask("trigger_heartbeat", "TriggerMessage", {"requestedMessage": "Heartbeat"})
    await cs.wait_for_call("Heartbeat", cp_id, after=mark)
    out["triggered_heartbeat"] = True
    mark = len(cs.log)
    await ask("remote_start", "RemoteStartTransaction", {"idTag": "REMOTE-1", "connectorId": 1})
    start = await cs.wait_for_call("StartTransaction", cp_id, after=mark)
    out["started_with"] = start.payload["idTag"]
    answer = await cs.wait_for(lambda f: f.direction == "out" and f.unique_id == start.unique_id, after=mark)
    tx_id = answer.payload["transactionId"]
    await ask("remote_start_busy", "RemoteStartTransaction", {"idTag": "REMOTE-2"})
    await ask("remote_stop_wrong", "RemoteStopTransaction", {"transactionId": tx_id + 1000})
    mark = len(cs.log)
    await ask("remote_stop", "RemoteStopTransaction", {"transactionId": tx_id})
    stop = await cs.wait_for_call("StopTransaction", cp_id, after=mark)
    out["stop_reason"] = stop.payload["reason"]
    # The charger reports Available after its StopTransaction; wait for it, so that the status checked after
    # ChangeAvailability below is the answer to that call and not this one arriving late.
    await cs.wait_for(
        lambda f: (
            f.direction == "in"
            and f.cp_id == cp_id
            and f.action == "StatusNotification"
            and f.message_type == 2
            and f.payload.get("status") == "Available"
        ),
        after=mark,
    )
    out["stop_transaction_id"] = stop.payload["transactionId"] == tx_id
    await ask("unlock", "UnlockConnector", {"connectorId": 1})
    await ask("unlock_unknown", "UnlockConnector", {"connectorId": 9})
    mark = len(cs.log)
    await ask("inoperative", "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"})
    unavailable = await cs.wait_for_call("StatusNotification", cp_id, after=mark)
    out["inoperative_status"] = unavailable.payload["status"]
    await ask("operative", "ChangeAvailability", {"connectorId": 0, "type": "Operative"})
    await ask("clear_cache", "ClearCache", {})
    await ask("data_transfer", "DataTransfer", {"vendorId": "com.example"})
    mark = len(cs.log)
    await cs.send_raw(cp_id, json.dumps([2, "unknown-1", "FlyToTheMoon", {}]))
    reply = await cs.wait_for(lambda f: f.direction == "in" and f.unique_id == "unknown-1", after=mark)
    out["unknown_action"] = reply.raw
    mark = len(cs.log)
    await ask("reset", "Reset", {"type": "Soft"})
    await cs.wait_for_call("BootNotification", cp_id, after=mark, timeout=15)
    out["rebooted"] = True


def remote_mode(cs: CentralSystem, path: Path) -> None:
    """Start the script for each charger at its first BootNotification."""
    results: dict[str, Any] = {}
    booted: set[str] = set()
    tasks: set[asyncio.Task[None]] = set()
    default_boot = cs.handlers["BootNotification"]

    def boot(cp_id: str, payload: dict[str, Any]) -> Any:
        if cp_id not in booted:
            booted.add(cp_id)
            task = asyncio.get_running_loop().create_task(remote_script(cs, cp_id, results, path))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        return default_boot(cp_id, payload)

    cs.handlers["BootNotification"] = boot


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["errors", "remote"])
    parser.add_argument("--results", type=Path, default=Path("results.json"))
    args = parser.parse_args()
    cs = CentralSystem("127.0.0.1", 0)
    cs.heartbeat_interval = 300
    if args.mode == "errors":
        errors_mode(cs)
    else:
        remote_mode(cs, args.results)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with cs:
        print(cs.url, flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
