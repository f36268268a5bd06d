"""Real Locust runs (single process and master + 2 workers) against real central systems over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
from pathlib import Path

import pytest

from backend_stub.app import Csms
from backend_stub.store import CsmsStore, Transaction, UnknownTransaction
from loadtests.credentials import generate, write_credentials
from loadtests.seed import seed_store
from tests.load.conftest import (
    REQUIRED,
    SeededCsms,
    free_port,
    locust_command,
    read_failures,
    read_metrics,
    read_stats,
    run_all,
    scripted_csms,
)

pytestmark = pytest.mark.slow


REQUIRED_201 = ("BootNotification", "Heartbeat", "StatusNotification", "Authorize", "TransactionEvent")


def assert_clean_run(
    stats: dict[tuple[str, str], tuple[int, int]], log: str, required: tuple[str, ...] = REQUIRED
) -> None:
    """Every OCPP request the issue names was made, and nothing failed."""
    for action in required:
        requests, _ = stats.get(("OCPP", action), (0, 0))
        assert requests > 0, f"no {action} requests\n{log[-3000:]}"
    failed = {key: f for key, (_, f) in stats.items() if f}
    assert not failed, f"failures: {failed}\n{log[-3000:]}"


async def test_headless_run_against_the_bundled_central_system(
    seeded_csms: SeededCsms, tmp_path: Path
) -> None:
    users = seeded_csms.chargers
    [(code, log)] = await run_all(
        [
            locust_command(
                "--headless",
                "--host",
                seeded_csms.url,
                "-u",
                str(users),
                "-r",
                str(users),
                "-t",
                "20s",
                "--csv",
                str(tmp_path / "run"),
                "--ocpp-shape",
                "steady",
                "--ocpp-speed",
                "600",  # ten hours of charger life in the run: every charger charges at least once
                "--ocpp-credentials",
                str(seeded_csms.credentials),
                "--ocpp-metrics-json",
                str(tmp_path / "metrics.json"),
            )
        ],
        tmp_path,
        timeout_s=60,
    )
    assert code == 0, log[-3000:]
    assert_clean_run(read_stats(tmp_path / "run"), log)
    metrics = read_metrics(tmp_path / "metrics.json")
    assert metrics["processes"] == 1
    assert metrics["connections_held_max"] == users
    assert metrics["connects"] == users and metrics["reconnects"] == 0 and metrics["connect_failures"] == 0
    assert metrics["boots"] == users
    assert metrics["sessions_started"] > 0
    assert "OCPP metrics: connections held max" in log
    # The central system billed the sessions with the seeded tariff.
    billed = [tx for tx in stored_transactions(seeded_csms.db) if tx.stopped_at and (tx.cost_minor or 0) > 0]
    assert billed


def stored_transactions(db: Path) -> list[Transaction]:
    """Every transaction the central system stored, by id."""
    found: list[Transaction] = []
    with CsmsStore(db) as store:
        while True:
            try:
                found.append(store.transaction(len(found) + 1))
            except UnknownTransaction:
                return found


async def test_headless_run_speaking_ocpp_201_against_the_bundled_central_system(
    seeded_csms: SeededCsms, tmp_path: Path
) -> None:
    """`--ocpp-version 2.0.1`: the bundled central system stores the TransactionEvent sessions with their energy."""
    users = 6
    [(code, log)] = await run_all(
        [
            locust_command(
                "--headless",
                "--host",
                seeded_csms.url,
                "-u",
                str(users),
                "-r",
                str(users),
                "-t",
                "12s",
                "--csv",
                str(tmp_path / "run"),
                "--ocpp-version",
                "2.0.1",
                "--ocpp-speed",
                "600",  # hours of charger life in the run: sessions start, send meter values and end
                "--ocpp-credentials",
                str(seeded_csms.credentials),
                "--ocpp-metrics-json",
                str(tmp_path / "metrics.json"),
            )
        ],
        tmp_path,
        timeout_s=60,
    )
    assert code == 0, log[-3000:]
    stats = read_stats(tmp_path / "run")
    assert_clean_run(stats, log, REQUIRED_201)
    assert not {name for kind, name in stats if name in ("StartTransaction", "StopTransaction")}
    metrics = read_metrics(tmp_path / "metrics.json")
    assert metrics["boots"] == users and metrics["reconnects"] == 0
    assert metrics["sessions_completed"] > 0
    ended = [tx for tx in stored_transactions(seeded_csms.db) if tx.stopped_at is not None]
    assert ended, log[-3000:]
    for tx in ended:
        assert tx.station_tx_id is not None and len(tx.station_tx_id) == 36  # the station's own uuid
        assert tx.meter_stop_wh is not None and tx.meter_stop_wh > tx.meter_start_wh  # energy in Wh
    assert any((tx.cost_minor or 0) > 0 for tx in ended)  # billed with the seeded tariff
    with CsmsStore(seeded_csms.db) as store:
        # seqNo 0, 1, 2, ... per transaction (a gap or a step back is a security event), nothing else amiss.
        assert store.security_events() == []
    with contextlib.closing(sqlite3.connect(seeded_csms.db)) as db:
        last_seq_no = dict(
            db.execute("SELECT id, last_seq_no FROM transactions WHERE stopped_at IS NOT NULL")
        )
    assert all(n is not None and n >= 1 for n in last_seq_no.values()), last_seq_no  # Started 0 ... Ended


async def test_distributed_run_master_and_two_workers(seeded_csms: SeededCsms, tmp_path: Path) -> None:
    users, port = seeded_csms.chargers, free_port()
    master = locust_command(
        "--master",
        "--headless",
        "--expect-workers",
        "2",
        "--expect-workers-max-wait",
        "30",
        "--master-bind-host",
        "127.0.0.1",
        "--master-bind-port",
        str(port),
        "--host",
        seeded_csms.url,
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        "15s",
        "--csv",
        str(tmp_path / "dist"),
        "--ocpp-shape",
        "transaction-heavy",
        "--ocpp-speed",
        "10",
        "--ocpp-credentials",
        str(seeded_csms.credentials),
        "--ocpp-metrics-json",
        str(tmp_path / "metrics.json"),
    )
    worker = locust_command("--worker", "--master-host", "127.0.0.1", "--master-port", str(port))
    results = await run_all([master, worker, worker], tmp_path, timeout_s=75)
    (code, log), *workers = results
    assert code == 0, log[-3000:]
    assert [c for c, _ in workers] == [0, 0], [w[-2000:] for _, w in workers]
    assert_clean_run(read_stats(tmp_path / "dist"), log)
    metrics = read_metrics(tmp_path / "metrics.json")
    assert metrics["processes"] == 2  # both workers reported to the master
    assert metrics["connections_held_max"] == users
    # Each charger connected exactly once: the workers split the credentials file without overlap.
    assert metrics["connects"] == users and metrics["reconnects"] == 0
    assert all(p["counters"]["connects"] > 0 for p in metrics["per_process"].values())
    assert metrics["sessions_started"] > 0


async def test_call_errors_timeouts_and_invalid_answers_are_failures_with_their_codes(tmp_path: Path) -> None:
    async with scripted_csms("errors", tmp_path) as url:
        [(code, log)] = await run_all(
            [
                locust_command(
                    "--headless",
                    "--host",
                    url,
                    "-u",
                    "4",
                    "-r",
                    "4",
                    "-t",
                    "6s",
                    "--csv",
                    str(tmp_path / "err"),
                    "--ocpp-speed",
                    "600",
                    "--ocpp-timeout-s",
                    "1",
                )
            ],
            tmp_path,
            timeout_s=45,
        )
    assert code == 1, log[-3000:]  # Locust exits 1 when requests failed
    stats = read_stats(tmp_path / "err")
    assert stats[("OCPP", "BootNotification")][1] == 0
    failures = {(row["Name"], row["Error"]) for row in read_failures(tmp_path / "err")}
    errors_of = {name: " ".join(e for n, e in failures if n == name) for name, _ in failures}
    assert "CallError InternalError: heartbeat store is down" in errors_of["Heartbeat"]
    assert "CallError SecurityError" in errors_of["Authorize"]
    assert "CallTimeout" in errors_of["StatusNotification"]  # connector 0 got no answer
    assert "FormationViolation" in errors_of["StatusNotification"]  # connector 1 got an invalid one
    requests, failed = stats[("OCPP", "Heartbeat")]
    assert requests == failed > 0


async def test_central_system_calls_are_answered_and_acted_on(tmp_path: Path) -> None:
    async with scripted_csms("remote", tmp_path) as url:
        [(code, log)] = await run_all(
            [
                locust_command(
                    "--headless",
                    "--host",
                    url,
                    "-u",
                    "1",
                    "-r",
                    "1",
                    "-t",
                    "20s",  # the script takes several seconds; a loaded CI machine needs headroom
                    "--csv",
                    str(tmp_path / "remote"),
                    "--ocpp-metrics-json",
                    str(tmp_path / "metrics.json"),
                )
            ],
            tmp_path,
            timeout_s=45,
        )
    assert code == 0, log[-3000:]
    [answers] = json.loads((tmp_path / "results.json").read_text()).values()
    assert "error" not in answers, answers
    assert {k["key"] for k in answers["get_configuration"]["configurationKey"]} >= {"HeartbeatInterval"}
    assert answers["change_heartbeat"] == {"status": "Accepted"}
    assert answers["get_heartbeat"]["configurationKey"][0]["value"] == "7"
    assert answers["get_heartbeat"]["unknownKey"] == ["NoSuchKey"]
    assert answers["change_unknown"] == {"status": "NotSupported"}
    assert answers["change_readonly"] == {"status": "Rejected"}
    assert answers["trigger_heartbeat"] == {"status": "Accepted"} and answers["triggered_heartbeat"]
    assert answers["remote_start"] == {"status": "Accepted"} and answers["started_with"] == "REMOTE-1"
    assert answers["remote_start_busy"] == {"status": "Rejected"}
    assert answers["remote_stop_wrong"] == {"status": "Rejected"}
    assert answers["remote_stop"] == {"status": "Accepted"}
    assert answers["stop_reason"] == "Remote" and answers["stop_transaction_id"]
    assert answers["unlock"] == {"status": "Unlocked"}
    assert answers["unlock_unknown"] == {"status": "NotSupported"}
    assert answers["inoperative"] == {"status": "Accepted"} and answers["inoperative_status"] == "Unavailable"
    assert answers["operative"] == {"status": "Accepted"}
    assert answers["clear_cache"] == {"status": "Accepted"}
    assert answers["data_transfer"] == {"status": "UnknownVendorId"}
    assert json.loads(answers["unknown_action"])[:3] == [4, "unknown-1", "NotImplemented"]
    assert answers["reset"] == {"status": "Accepted"} and answers["rebooted"]
    metrics = read_metrics(tmp_path / "metrics.json")
    assert metrics["resets"] == 1 and metrics["reconnects"] == 1 and metrics["boots"] == 2
    assert metrics["server_calls"]["RemoteStartTransaction"] == 2
    stats = read_stats(tmp_path / "remote")
    assert stats[("OCPP", "StartTransaction")] == (1, 0)
    assert stats[("OCPP", "StopTransaction")] == (1, 0)
    assert stats[("Aggregated" if ("", "Aggregated") not in stats else "", "Aggregated")][1] == 0


async def test_boot_storm_over_two_local_processes(seeded_csms: SeededCsms, tmp_path: Path) -> None:
    """`--processes 2` on one machine with the boot-storm shape: site power cuts drop every charger at once,
    all of them reconnect and boot again, cut sessions start over, and nothing fails."""
    users = seeded_csms.chargers
    [(code, log)] = await run_all(
        [
            locust_command(
                "--processes",
                "2",
                "--headless",
                "--host",
                seeded_csms.url,
                "-u",
                str(users),
                "-r",
                str(users),
                "-t",
                "20s",
                "--csv",
                str(tmp_path / "storm"),
                "--ocpp-shape",
                "boot-storm",
                "--ocpp-speed",
                "60",  # a power cut every 5 s
                "--ocpp-credentials",
                str(seeded_csms.credentials),
                "--ocpp-metrics-json",
                str(tmp_path / "metrics.json"),
            )
        ],
        tmp_path,
        timeout_s=75,
    )
    assert code == 0, log[-3000:]
    stats = read_stats(tmp_path / "storm")
    failed = {key: f for key, (_, f) in stats.items() if f}
    assert not failed, f"failures: {failed}\n{log[-3000:]}"
    metrics = read_metrics(tmp_path / "metrics.json")
    assert metrics["processes"] == 2
    assert metrics["power_cuts"] > 0 and metrics["reconnects"] > 0
    assert metrics["boots"] > users  # every charger booted again after a cut
    assert stats[("OCPP", "BootNotification")][0] == metrics["boots"]


async def test_ocpp_201_central_system_calls_and_offline_replay_end_to_end_against_the_bundled_csms(
    tmp_path: Path,
) -> None:
    """The 2.0.1 Locust user against the bundled central system (in this process, so the test drives its calls):
    GetVariables/SetVariables, TriggerMessage, RequestStartTransaction (remoteStartId and token type in the
    Started event), Reset OnIdle Scheduled during the session, the TransactionEvents of an outage queued and
    replayed with offline=true when the central system is back, RequestStopTransaction, then the scheduled reboot.
    """
    rows = generate(1, 2)
    db, creds = tmp_path / "csms.db", tmp_path / "creds.csv"
    seed_store(db, rows)
    write_credentials(creds, rows)
    cp = rows[0].cp_id
    tag = rows[0].id_tags[0]
    store = CsmsStore(db)
    first = Csms(store, heartbeat_interval_s=60, admin_token="locust-e2e-admin-token")
    await first.start()
    port = first.server.port
    run = asyncio.create_task(
        run_all(
            [
                locust_command(
                    "--headless",
                    "--host",
                    first.url,
                    "-u",
                    "1",
                    "-r",
                    "1",
                    "-t",
                    "40s",
                    "--csv",
                    str(tmp_path / "run"),
                    "--ocpp-version",
                    "2.0.1",
                    "--ocpp-speed",
                    "1",  # real time: the charger starts no session of its own in the run (seeded rng)
                    "--ocpp-credentials",
                    str(creds),
                    "--ocpp-metrics-json",
                    str(tmp_path / "metrics.json"),
                )
            ],
            tmp_path,
            timeout_s=90,
        )
    )
    second: Csms | None = None
    try:
        server = first.server
        await server.wait_for_call("Heartbeat", cp, 30)  # booted: the clock-sync heartbeat follows the boot
        interval = {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"}}
        got = await server.call(cp, "GetVariables", {"getVariableData": [interval]})
        assert got["getVariableResult"][0]["attributeStatus"] == "Accepted"
        changed = await server.call(
            cp, "SetVariables", {"setVariableData": [{**interval, "attributeValue": "1"}]}
        )
        assert changed["setVariableResult"][0]["attributeStatus"] == "Accepted"
        after = len(server.log)
        assert await server.call(cp, "TriggerMessage", {"requestedMessage": "Heartbeat"}) == {
            "status": "Accepted"
        }
        await server.wait_for_call("Heartbeat", cp, 10, after=after)
        request = {"idToken": {"idToken": tag, "type": "Central"}, "remoteStartId": 31, "evseId": 1}
        assert await server.call(cp, "RequestStartTransaction", request) == {"status": "Accepted"}
        started = (
            await server.wait_for_call(
                "TransactionEvent", cp, 10, where=lambda p: p["eventType"] == "Started"
            )
        ).payload
        assert started["triggerReason"] == "RemoteStart"
        assert started["transactionInfo"]["remoteStartId"] == 31
        assert started["idToken"] == {"idToken": tag, "type": "Central"}
        tx = started["transactionInfo"]["transactionId"]
        assert await server.call(cp, "Reset", {"type": "OnIdle"}) == {"status": "Scheduled"}
        await server.wait_for_call("TransactionEvent", cp, 10, where=lambda p: p["eventType"] == "Updated")
        await first.stop()  # an outage: the session goes on, its readings wait
        await asyncio.sleep(3)
        second = Csms(store, heartbeat_interval_s=60, admin_token="locust-e2e-admin-token", port=port)
        await second.start()
        server = second.server
        replayed = await server.wait_for_call(
            "TransactionEvent", cp, 40, where=lambda p: p.get("offline") is True
        )
        assert replayed.payload["transactionInfo"]["transactionId"] == tx
        await server.wait_for_call(  # the queue is empty once a live reading (not offline) follows
            "TransactionEvent", cp, 10, where=lambda p: p["eventType"] == "Updated" and "offline" not in p
        )
        assert await server.call(cp, "RequestStopTransaction", {"transactionId": tx}) == {
            "status": "Accepted"
        }
        ended = await server.wait_for_call(
            "TransactionEvent", cp, 10, where=lambda p: p["eventType"] == "Ended"
        )
        assert ended.payload["transactionInfo"]["stoppedReason"] == "Remote"
        await server.wait_for_call("BootNotification", cp, 15)  # the scheduled OnIdle reset, now idle
        events = [
            f.payload
            for f in server.log
            if f.direction == "in" and f.message_type == 2 and f.action == "TransactionEvent"
        ]
        numbers = [e["seqNo"] for e in events if e["transactionInfo"]["transactionId"] == tx]
        assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)  # in order, none twice
        assert server.violations == []
        [(_code, log)] = await run  # the run ends at its -t; failures (the outage's connects) are expected
    finally:
        if not run.done():
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
        if second is not None:
            await second.stop()
        store.close()
    metrics = read_metrics(tmp_path / "metrics.json")
    assert metrics["offline_queued"] >= 1 and metrics["offline_replayed"] >= 1, log[-3000:]
    assert metrics["offline_dropped"] == 0
    assert metrics["resets"] == 1 and metrics["server_calls"]["RequestStartTransaction"] == 1


async def test_a_sigtermed_run_during_an_offline_replay_still_writes_its_metrics(tmp_path: Path) -> None:
    """A 2.0.1 charger charging through an outage (its TransactionEvents queued for the offline replay), and the
    Locust process SIGTERMed before its -t: it used to die by the signal with no --ocpp-metrics-json (Locust
    handles SIGTERM only after a shape's ramp loop, which lasts the whole run). Now it ends like a run at its -t:
    exit code 0 or 1 (the outage's failed connects), the stats and the metrics JSON, queued messages counted."""
    rows = generate(1, 2)
    db, creds = tmp_path / "csms.db", tmp_path / "creds.csv"
    seed_store(db, rows)
    write_credentials(creds, rows)
    cp, tag = rows[0].cp_id, rows[0].id_tags[0]
    metrics_path = tmp_path / "metrics.json"
    store = CsmsStore(db)
    csms = Csms(store, heartbeat_interval_s=60, admin_token="locust-sigterm-admin-token")
    await csms.start()
    log_path = tmp_path / "locust.log"
    with open(log_path, "wb") as log:  # noqa: ASYNC230  # a local file, opened once
        proc = await asyncio.create_subprocess_exec(
            *locust_command(
                "--headless",
                "--host",
                csms.url,
                "-u",
                "1",
                "-r",
                "1",
                "-t",
                "300s",  # far beyond the test: only the SIGTERM ends this run
                "--csv",
                str(tmp_path / "run"),
                "--ocpp-version",
                "2.0.1",
                "--ocpp-credentials",
                str(creds),
                "--ocpp-metrics-json",
                str(metrics_path),
            ),
            cwd=tmp_path,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
        stopped = False
        try:
            server = csms.server
            await server.wait_for_call("Heartbeat", cp, 30)
            interval = {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"}}
            await server.call(cp, "SetVariables", {"setVariableData": [{**interval, "attributeValue": "1"}]})
            request = {"idToken": {"idToken": tag, "type": "Central"}, "remoteStartId": 7, "evseId": 1}
            assert await server.call(cp, "RequestStartTransaction", request) == {"status": "Accepted"}
            await server.wait_for_call(
                "TransactionEvent", cp, 10, where=lambda p: p["eventType"] == "Updated"
            )
            await csms.stop()  # the outage: the session goes on, its readings are queued
            stopped = True
            await asyncio.sleep(3)
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                code = await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            if not stopped:
                await csms.stop()
            store.close()
    text = log_path.read_text(errors="replace")
    assert code in (0, 1), text[-3000:]  # not -15: the signal no longer kills it
    assert "SIGTERM: ending the run" in text
    metrics = read_metrics(metrics_path)
    assert metrics["offline_queued"] >= 1 and metrics["sessions_started"] == 1, metrics
    assert read_stats(tmp_path / "run")[("OCPP", "BootNotification")][0] == 1
