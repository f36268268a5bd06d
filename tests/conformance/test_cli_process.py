"""The charger runner's command line as a real subprocess: --interactive prompts answered on piped stdin by a
test playing the operator (who really does the step with the agent's ctl), an unanswered prompt times out to
inconclusive, and SIGINT (Ctrl-C) ends the run with a partial JUnit/JSON report and exit status 130."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conformance.test_charger_suite import AGENT_CONFIG, charger_args, free_port

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]


async def suite(*args: str) -> asyncio.subprocess.Process:
    """`python -m conformance ARGS` with piped stdin and stderr (where prompts and progress go)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "conformance",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def line_with(
    proc: asyncio.subprocess.Process, text: str, seen: list[str], timeout_s: float = 60
) -> str:
    """Read stderr lines until one contains ``text``; every line read is kept in ``seen``."""
    assert proc.stderr is not None
    async with asyncio.timeout(timeout_s):
        while True:
            raw = await proc.stderr.readline()
            if not raw:
                raise AssertionError(f"stderr ended before {text!r}; seen: {seen[-20:]}")
            seen.append(raw.decode().rstrip())
            if text in seen[-1]:
                return seen[-1]


@pytest.fixture
async def running_agent(tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    """The project's agent as its own process (the operator's charger for --interactive)."""
    port = free_port()
    config = tmp_path / "station.toml"
    config.write_text(AGENT_CONFIG.format(port=port, dir=tmp_path), encoding="utf-8")
    with (tmp_path / "agent.log").open("w") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chargepoint", "run", "--config", str(config), stderr=log
        )
        try:
            yield port, config
        finally:
            proc.terminate()
            await proc.wait()


async def ctl(config: Path, *args: str) -> None:
    """What the operator does at the charger: the agent's simulated hardware through its ctl command."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chargepoint",
        "ctl",
        "--config",
        str(config),
        *args,
        stdout=asyncio.subprocess.DEVNULL,
    )
    assert await proc.wait() == 0


async def test_interactive_prompts_are_answered_on_stdin_and_an_unanswered_one_is_inconclusive(
    running_agent: tuple[int, Path], tmp_path: Path
) -> None:
    port, config = running_agent
    out = tmp_path / "r.json"
    proc = await suite(
        "charger", "--listen", f"127.0.0.1:{port}", "--interactive", "--prompt-wait", "15",
        "--cases", "TC_010_CS,TC_041_CS", "--connect-timeout", "30", "--json", str(out),
    )  # fmt: skip
    assert proc.stdin is not None
    seen: list[str] = []
    # TC_010: the operator plugs in and presses Enter; after the remote session the cleanup asks to unplug.
    # 15 s to answer: the test answers each prompt within about a second (a ctl command and Enter); the
    # unanswered one's countdown is the test's wall time, and it shows the time left once (every 10 s).
    assert "Plug an EV into connector 1, then press Enter (15 s)" in await line_with(proc, ">>> Plug", seen)
    await ctl(config, "plug", "1")
    proc.stdin.write(b"\n")
    await line_with(proc, ">>> Unplug the EV from connector 1", seen)
    await ctl(config, "unplug", "1")
    proc.stdin.write(b"\n")
    # TC_041: nobody answers; the countdown runs out.
    await line_with(proc, ">>> Make the meter of connector 1 fail", seen)
    await line_with(proc, "s left", seen)
    await line_with(proc, "time is up", seen)
    assert await asyncio.wait_for(proc.wait(), 60) == 0
    verdicts = {c["id"]: (c["verdict"], c["reason"]) for c in json.loads(out.read_text())["cases"]}
    assert verdicts["TC_010_CS"] == ("passed", "")
    assert verdicts["TC_041_CS"] == (
        "inconclusive",
        "nobody answered the prompt 'Make the meter of connector 1 fail' within 15 s",
    )


async def test_sigint_writes_the_partial_report_and_exits_130(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "station.toml"
    config.write_text(AGENT_CONFIG.format(port=port, dir=tmp_path), encoding="utf-8")
    out, junit = tmp_path / "r.json", tmp_path / "r.xml"
    args = charger_args(port, config, "--cases", "TC_001_CS,TC_019_CS,TC_036_CS,TC_040_1_CS,TC_062_CS")
    args.remove("-q")  # progress lines tell the test which case runs
    proc = await suite(*args, "--json", str(out), "--junit", str(junit))
    seen: list[str] = []
    await line_with(proc, "[3/5] TC_036_CS", seen)
    await asyncio.sleep(2)  # inside TC_036 (it waits out a dropped connection)
    proc.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(proc.wait(), 60) == 130
    data = json.loads(out.read_text())
    assert data["interrupted"] is True and data["exit_status"] == 130
    assert [(c["id"], c["verdict"]) for c in data["cases"]] == [
        ("TC_001_CS", "passed"),
        ("TC_019_CS", "passed"),
        ("TC_036_CS", "inconclusive"),
    ]
    assert data["cases"][2]["reason"] == "interrupted (Ctrl-C)"
    assert data["not_run"] == ["TC_040_1_CS", "TC_062_CS"]
    suite_el = ET.parse(junit).getroot().find("testsuite")
    assert suite_el is not None
    assert [tc.get("name", "").split()[0] for tc in suite_el.iter("testcase")] == [
        "TC_001_CS",
        "TC_019_CS",
        "TC_036_CS",
    ]
    props = {p.get("name"): p.get("value") for p in suite_el.iter("property")}
    assert props["interrupted"] == "true" and props["not_run"] == "TC_040_1_CS,TC_062_CS"
    # The agent the profile started is stopped too: its control socket no longer answers.
    status = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chargepoint", "ctl", "--config", str(config), "status",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await status.wait() != 0


async def test_sigterm_stops_the_suite_and_the_charger_process_group_it_started(tmp_path: Path) -> None:
    """The suite runs the charger through a profile's [process] (here a shell that starts a long sleeper, as a
    wrapper script would); SIGTERM to the suite ends the run with a partial report and stops the whole process
    group: neither the shell nor its child survives."""
    pidfile = tmp_path / "child.pid"
    profile = tmp_path / "sleeper.toml"
    profile.write_text(
        "[process]\n"
        f'command = "sh -c \'{sys.executable} -c \\"import time; time.sleep(600)\\" & echo $! > {pidfile}; wait\'"\n',
        encoding="utf-8",
    )
    out = tmp_path / "r.json"
    proc = await suite(
        "charger", "--listen", f"127.0.0.1:{free_port()}", "--actuate", str(profile),
        "--connect-timeout", "120", "--json", str(out),
    )  # fmt: skip
    async with asyncio.timeout(30):
        while not pidfile.exists() or not pidfile.read_text().strip():
            await asyncio.sleep(0.1)
    child = int(pidfile.read_text())
    proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(60):
        code = await proc.wait()
    assert code == 130
    assert json.loads(out.read_text())["interrupted"] is True
    async with asyncio.timeout(10):
        while _state(child) and "zombie" not in _state(child):
            await asyncio.sleep(0.1)


def _state(pid: int) -> str:
    """The process state line of ``pid`` ('' once it is gone)."""
    try:
        return next(
            (
                line
                for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith("State:")
            ),
            "",
        ).lower()
    except OSError:
        return ""
