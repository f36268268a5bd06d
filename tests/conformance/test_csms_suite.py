"""The CSMS runner against real central systems on 127.0.0.1: the bundled one passes the whole 1.6 suite with its
REST trigger profile; deliberately wrong ones (negative controls) fail the cases they break, by name; a central
system that never answers, closes mid-case or sends garbage fails those cases and the suite goes on."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from websockets.asyncio.server import ServerConnection, serve

from backend_stub.app import Csms
from backend_stub.ocpp.server import CallErrorReply, HandlerResult, tls_context
from backend_stub.store import CsmsStore
from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from conformance.__main__ import run_cli
from conformance.report import Report
from tests.conformance.conftest import CP, CP_PASSWORD, TAGS, Site, seed
from tests.integration import test_security

pytestmark = pytest.mark.timeout(300)


def verdicts(report: Report | None) -> dict[str, str]:
    """Case id -> verdict."""
    assert report is not None
    return {r.id: str(r.verdict) for r in report.results}


def failed(report: Report | None) -> set[str]:
    """Ids of the failed cases."""
    return {case_id for case_id, verdict in verdicts(report).items() if verdict == "failed"}


def reasons(report: Report | None) -> dict[str, str]:
    """Case id -> reason."""
    assert report is not None
    return {r.id: r.reason for r in report.results}


async def test_bundled_central_system_passes_the_whole_csms_suite(
    site: Site, upgrade_args: list[str], tmp_path: Path
) -> None:
    code, report = await run_cli(site.args("--json", str(tmp_path / "r.json"), *upgrade_args))
    v = verdicts(report)
    assert len(v) >= 80
    not_passed = {k: (x, reasons(report)[k]) for k, x in v.items() if x != "passed"}
    # Only the TLS cases need a wss:// URL (and a client certificate) this test does not set up.
    assert not_passed == {
        "TC_086_CSMS": ("inconclusive", "setup: needs a wss:// --url with --tls-ca"),
        "TC_087_CSMS": (
            "inconclusive",
            "setup: needs --tls-cert PEM --tls-key PEM (the charger's client certificate, security profile 3); "
            "needs a wss:// --url with --tls-ca",
        ),
    }
    assert code == 0


async def test_bundled_16_local_list_reservation_and_profiles_go_through_its_operations(
    site: Site, tmp_path: Path
) -> None:
    """The 1.6 cases of local list, reservation and smart charging judge what the central system builds from its
    own operations (the trigger's trace names the operation), and pass."""
    out = tmp_path / "r.json"
    cases = (
        "TC_043_4_CSMS,TC_043_5_CSMS,TC_046_CSMS,TC_051_CSMS,TC_056_CSMS,TC_057_CSMS,TC_066_CSMS,TC_067_CSMS"
    )
    code, report = await run_cli(site.args("--cases", cases, "--json", str(out)))
    assert set(verdicts(report).values()) == {"passed"} and code == 0
    saved = {c["id"]: [t["text"] for t in c["trace"]] for c in json.loads(out.read_text())["cases"]}
    for case_id, operation in (
        ("TC_043_5_CSMS", "send-local-list"),
        ("TC_046_CSMS", "reserve-now"),
        ("TC_051_CSMS", "cancel-reservation"),
        ("TC_057_CSMS", "set-charging-profile"),
        ("TC_066_CSMS", "composite-schedule"),
        ("TC_067_CSMS", "clear-charging-profile"),
    ):
        assert any(f"/operations/{operation} -> HTTP 200" in t for t in saved[case_id]), case_id


async def test_a_trigger_template_needing_a_missing_parameter_is_a_setup_error(
    site: Site, tmp_path: Path
) -> None:
    """A profile whose template needs a field the step does not give: a setup error naming the field, not a
    verdict on the central system."""
    profile = tmp_path / "strict.toml"
    profile.write_text(
        '[http]\nbase_url = "http://127.0.0.1:1"\n'
        '[actions.ReserveNow]\nurl = "{base_url}/reserve"\njson = { bay = "{payload.parkingBay}" }\n'
    )
    args = site.args("--cases", "TC_046_CSMS")
    args[args.index("bundled-csms")] = str(profile)
    code, report = await run_cli(args)
    assert verdicts(report) == {"TC_046_CSMS": "setup_error"}
    assert "needs {payload.parkingBay}" in reasons(report)["TC_046_CSMS"]
    assert code == 2


async def test_without_a_trigger_the_trigger_cases_are_inconclusive_not_failed(site: Site) -> None:
    args = [a for a in site.args() if a not in ("--trigger", "bundled-csms")]
    code, report = await run_cli(args)
    v = verdicts(report)
    assert v["TC_010_CSMS"] == "inconclusive" and v["TC_054_CSMS"] == "inconclusive"
    assert "--trigger FILE or --interactive" in reasons(report)["TC_010_CSMS"]
    assert v["TC_003_CSMS"] == "passed" and not failed(report)
    assert code == 0


async def test_an_interactive_trigger_nobody_performs_is_inconclusive_not_failed(site: Site) -> None:
    """--interactive: the operator is asked to make the central system send RemoteStopTransaction; nobody does,
    so the case cannot judge the central system: inconclusive, not failed."""
    args = [a for a in site.args("--cases", "TC_012_CSMS") if a not in ("--trigger", "bundled-csms")]
    args[args.index("--trigger-wait") + 1] = "1"
    code, report = await run_cli([*args, "--interactive"])
    assert report is not None
    [result] = report.results
    assert str(result.verdict) == "inconclusive"
    assert "did not send RemoteStopTransaction within 1 s of the operator prompt" in result.reason
    assert code == 0


async def test_profiles_the_central_system_does_not_offer_are_not_applicable(site: Site) -> None:
    code, report = await run_cli(
        site.args("--profiles", "Core,Security", "--cases", "Reservation,Security,TC_001*")
    )
    v = verdicts(report)
    assert {v[c] for c in ("TC_046_CSMS", "TC_048_1_CSMS", "TC_052_CSMS")} == {"not_applicable"}
    assert v["TC_085_CSMS"] == "passed" and v["TC_001_CSMS"] == "passed"
    assert "does not offer Reservation" in reasons(report)["TC_046_CSMS"]
    assert code == 0


# ---------------------------------------------------------------------------------------------- negative controls


@pytest.fixture
async def naive() -> AsyncIterator[CentralSystem]:
    """A naive accept-all central system: every charger, every password, every idTag; with a tzi-OCTT webhook."""
    cs = CentralSystem("127.0.0.1", 0)

    async def webhook(request: web.Request) -> web.Response:
        action = "".join(w.capitalize() for w in request.match_info["action"].split("-"))
        reply = await cs.call(request.match_info["cp"], action, await request.json())
        return web.json_response(reply)

    cs.app.router.add_post("/api/octt/1.6/{cp}/{action}", webhook)
    async with cs:
        yield cs


def naive_args(cs: CentralSystem, *extra: str) -> list[str]:
    return [
        "csms",
        "--url",
        cs.url,
        "--charger-id",
        CP,
        "--password",
        CP_PASSWORD,
        "--trigger",
        "tzi-octt",
        "--var",
        f"base_url={cs.http_url}",
        *(f"--id-tag-{k}={v}" for k, v in TAGS.items()),
        "--second-charger-id",
        "CP-CONF-2",
        "--second-password",
        "other",
        "--pending-charger-id",
        "CP-CONF-PENDING",
        "--call-timeout",
        "3",
        "--trigger-wait",
        "3",
        "-q",
        *extra,
    ]


async def test_a_naive_accept_all_central_system_fails_at_least_20_cases(
    naive: CentralSystem, tmp_path: Path
) -> None:
    code, report = await run_cli(naive_args(naive, "--json", str(tmp_path / "naive.json")))
    bad = failed(report)
    assert len(bad) >= 20, sorted(bad)
    # It accepts every idTag ...
    assert {"TC_023_1_CSMS", "TC_023_2_CSMS", "TC_023_3_CSMS", "TC_037_3_CSMS", "OCS_001_CSMS"} <= bad
    assert {"OCS_002_CSMS", "OCS_003_CSMS", "OCS_004_CSMS", "OCS_005_CSMS", "OCS_006_CSMS"} <= bad
    # ... never checks a password, admits unknown chargers, ignores Pending.
    assert {
        "TC_085_CSMS",
        "OCS_011_CSMS",
        "OCS_012_CSMS",
        "OCS_014_CSMS",
        "TC_002_CSMS",
        "OCS_015_CSMS",
    } <= bad
    # ... keeps admitting the old password after a change, has no CA to sign a CSR.
    assert {"TC_073_CSMS", "TC_074_CSMS"} <= bad
    assert "SignCertificate.conf: got Rejected" in reasons(report)["TC_074_CSMS"]
    assert "was Accepted" in reasons(report)["TC_023_3_CSMS"]
    # Its webhook (the tzi-OCTT contract) drove the trigger cases, which it passes.
    assert verdicts(report)["TC_012_CSMS"] == "passed"
    assert code == 1
    saved = json.loads((tmp_path / "naive.json").read_text())
    assert {c["id"] for c in saved["cases"] if c["verdict"] == "failed"} == bad


async def test_a_central_system_that_ignores_passwords_fails_the_password_cases(site: Site) -> None:
    async def admit_everyone(cp_id: str, password: str | None, profile: Any) -> Any:
        return "ok"

    site.csms.server.admission = admit_everyone
    code, report = await run_cli(site.args())
    # TC_073: after a password change the old password must get 401; this one admits it.
    assert failed(report) == {
        "TC_073_CSMS",
        "TC_085_CSMS",
        "OCS_011_CSMS",
        "OCS_012_CSMS",
        "OCS_013_CSMS",
        "OCS_014_CSMS",
    }
    assert "HTTP 401" in reasons(report)["TC_085_CSMS"]
    assert code == 1


async def test_a_central_system_that_never_answers_stop_transaction_correctly(site: Site) -> None:
    def broken_stop(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        raise CallErrorReply("InternalError", "cannot stop")

    site.csms.server.handlers["StopTransaction"] = broken_stop
    code, report = await run_cli(site.args())
    bad = failed(report)
    assert {
        "TC_003_CSMS",
        "TC_004_1_CSMS",
        "TC_005_1_CSMS",
        "TC_012_CSMS",
        "TC_032_1_CSMS",
        "TC_039_CSMS",
    } <= bad
    assert all("StopTransaction was answered with CALLERROR InternalError" in reasons(report)[c] for c in bad)
    assert verdicts(report)["TC_001_CSMS"] == "passed"
    assert code == 1


async def test_a_central_system_that_skips_boot_notification_checks(site: Site) -> None:
    """Its handlers answer Authorize and StartTransaction whatever the charger's registration state."""
    app = site.csms
    app.server.handlers["Authorize"] = app.v16.authorize
    app.server.handlers["StartTransaction"] = app.v16.start
    code, report = await run_cli(site.args())
    assert failed(report) == {"TC_002_CSMS", "OCS_015_CSMS"}
    assert "Pending" in reasons(report)["TC_002_CSMS"]
    assert code == 1


# ---------------------------------------------------------------------------------------------- bad input


async def _misbehaving(ws: ServerConnection) -> None:
    """Boots chargers, then: Authorize never answered, StartTransaction closes the socket, Heartbeat garbage."""
    async for text in ws:
        frame = json.loads(text)
        unique_id, action = frame[1], frame[2]
        if action == "BootNotification":
            await ws.send(
                json.dumps([3, unique_id, {"status": "Accepted", "currentTime": _now(), "interval": 60}])
            )
        elif action == "Authorize":
            continue
        elif action == "StartTransaction":
            await ws.close()
            return
        elif action == "Heartbeat":
            await ws.send("}{ not json")
        elif action == "DataTransfer":
            await ws.send(json.dumps([3, unique_id, {"status": "Maybe"}]))
        else:
            await ws.send(json.dumps([3, unique_id, {}]))


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def test_never_answers_closes_mid_case_or_sends_garbage_fails_the_case_and_the_suite_goes_on() -> None:
    async with serve(_misbehaving, "127.0.0.1", 0, subprotocols=["ocpp1.6"]) as server:  # type: ignore[list-item]
        port = server.sockets[0].getsockname()[1]
        code, report = await run_cli(
            [
                "csms",
                "--url",
                f"ws://127.0.0.1:{port}/ocpp",
                "--charger-id",
                CP,
                "--id-tag-accepted",
                TAGS["accepted"],
                "--id-tag-invalid",
                TAGS["invalid"],
                "--call-timeout",
                "1",
                "--cases",
                "TC_023_1_CSMS,TC_007_CSMS,TC_001_CSMS,TC_064_CSMS,TC_024_CSMS",
                "-q",
            ]
        )
    r = reasons(report)
    assert verdicts(report) == dict.fromkeys(r, "failed") and len(r) == 5
    assert "no answer to Authorize within 1 s" in r["TC_023_1_CSMS"]
    assert "closed the connection" in r["TC_007_CSMS"]
    assert "no answer to Heartbeat" in r["TC_001_CSMS"] and "unparseable" in r["TC_001_CSMS"]
    assert "DataTransfer.conf violates the OCPP 1.6 schema" in r["TC_064_CSMS"]
    assert "Authorize" in r["TC_024_CSMS"]
    assert code == 1


async def test_an_unreachable_or_refusing_central_system_is_a_setup_error(site: Site) -> None:
    code, report = await run_cli(["csms", "--url", "ws://127.0.0.1:9/ocpp", "--charger-id", CP, "-q"])
    assert code == 2 and report is not None and "cannot connect" in report.setup_error
    code, report = await run_cli(["csms", "--url", site.csms.url, "--charger-id", "NOBODY", "-q"])
    assert code == 2 and report is not None and "HTTP 404" in report.setup_error
    code, report = await run_cli(
        ["csms", "--url", site.csms.url, "--charger-id", CP, "--password", "nope-nope", "-q"]
    )
    assert code == 2 and report is not None and "HTTP 401" in report.setup_error


async def test_ctrl_c_writes_the_partial_report(tmp_path: Path) -> None:
    """SIGINT while a case waits: the process writes its JSON report (interrupted) and exits 130."""
    async with serve(_misbehaving, "127.0.0.1", 0, subprotocols=["ocpp1.6"]) as server:  # type: ignore[list-item]
        port = server.sockets[0].getsockname()[1]
        out = tmp_path / "partial.json"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "conformance",
            "csms",
            "--url",
            f"ws://127.0.0.1:{port}/ocpp",
            "--charger-id",
            CP,
            "--id-tag-invalid",
            TAGS["invalid"],
            "--call-timeout",
            "30",
            "--cases",
            "TC_001_CSMS,TC_023_1_CSMS",
            "--json",
            str(out),
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        seen = b""
        while b"TC_001_CSMS" not in seen:
            seen += await asyncio.wait_for(proc.stderr.readline(), 30)
        await asyncio.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 30)
    saved = json.loads(out.read_text())
    assert code == 130 and saved["interrupted"] is True
    # TC_001 waited for an answer to its Heartbeat (garbage came instead) when Ctrl-C came; TC_023_1 never ran.
    assert [c["id"] for c in saved["cases"]] == ["TC_001_CSMS"]
    assert saved["cases"][0]["reason"] == "interrupted (Ctrl-C)"
    assert any("Heartbeat" in t["text"] for t in saved["cases"][0]["trace"])


pki = test_security.pki  # the openssl-made CA and server certificate (a module fixture)


async def test_heartbeat_interval_is_waited_out_when_short_enough(site: Site, tmp_path: Path) -> None:
    """With --heartbeat-wait-max, TC_001 stays idle for one interval and beats again; the CSMS keeps the link."""
    site.csms.central.heartbeat_interval_s = 1
    out = tmp_path / "hb.json"
    code, _ = await run_cli(
        site.args("--cases", "TC_001_CSMS", "--heartbeat-wait-max", "2", "--json", str(out))
    )
    trace = json.loads(out.read_text())["cases"][0]["trace"]
    beats = [t for t in trace if t["direction"] == "sent" and '"Heartbeat"' in t["text"]]
    assert code == 0 and len(beats) == 2


async def test_tls_server_certificate_case_passes_over_wss(tmp_path: Path, pki: Path) -> None:
    """TC_086_CSMS: the bundled central system serving wss:// with a certificate the given CA signed."""
    store = CsmsStore(tmp_path / "tls.db")
    seed(store)
    app = Csms(store, admin_token="tls-admin-token-0123456789")
    app.server.ssl_context = tls_context(pki / "server.pem", pki / "server.key")
    await app.start()
    try:
        code, report = await run_cli(
            [
                "csms",
                "--url",
                app.url,
                "--charger-id",
                CP,
                "--password",
                CP_PASSWORD,
                "--tls-ca",
                str(pki / "ca.pem"),
                "--cases",
                "TC_086_CSMS,TC_085_CSMS,TC_001_CSMS",
                "-q",
            ]
        )
    finally:
        await app.stop()
        store.close()
    assert app.url.startswith("wss://")
    assert (
        verdicts(report) == dict.fromkeys(["TC_001_CSMS", "TC_085_CSMS", "TC_086_CSMS"], "passed")
        and code == 0
    )


async def test_tls_client_certificate_case_passes_with_security_profile_3(tmp_path: Path, pki: Path) -> None:
    """TC_087_CSMS: wss:// to a central system that requires client certificates from the CA; CP-1's one."""
    store = CsmsStore(tmp_path / "mtls.db")
    store.add_charger("CP-1")
    app = Csms(store, admin_token="tls-admin-token-0123456789")
    app.server.ssl_context = tls_context(pki / "server.pem", pki / "server.key", client_ca=pki / "ca.pem")
    await app.start()
    try:
        code, report = await run_cli(
            [
                "csms",
                "--url",
                app.url,
                "--charger-id",
                "CP-1",
                "--tls-ca",
                str(pki / "ca.pem"),
                "--tls-cert",
                str(pki / "client.pem"),
                "--tls-key",
                str(pki / "client.key"),
                "--cases",
                "TC_087_CSMS,TC_086_CSMS",
                "-q",
            ]
        )
    finally:
        await app.stop()
        store.close()
    assert verdicts(report) == dict.fromkeys(["TC_086_CSMS", "TC_087_CSMS"], "passed") and code == 0
