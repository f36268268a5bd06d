"""What a new user runs: the wheel installed into a fresh virtualenv outside the checkout, every console script,
`./dev run`, the load tests' URL check, and stopping the demo with SIGTERM."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import venv
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = [
    "chargepoint",
    "opencharge-agent",
    "opencharge-csms",
    "opencharge-sim",
    "opencharge-load",
    "opencharge-demo",
    "opencharge-conformance",
]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the project's wheel installed (dependencies seen from this one's site-packages),
    built once per test run: xdist workers share the run's temporary directory, and the first builds it."""
    base = tmp_path_factory.getbasetemp()
    shared = (
        base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    )  # this run's, never an earlier run's
    with open(shared / "wheel.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        env_dir = shared / "wheel" / "venv"
        if not (shared / "wheel" / "installed").exists():
            _build_and_install(shared / "wheel")
            (shared / "wheel" / "installed").touch()
    return env_dir


def _build_and_install(work: Path) -> None:
    """Build the wheel from a copy of the checkout and install it into ``work/venv``."""
    work.mkdir()
    # Built from a copy: setuptools writes build/ inside the source tree, and two xdist workers building the same
    # tree at once collide there ("File exists: build/bdist...").
    source = work / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", ".*cache"),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(work),
            str(source),
        ],
        check=True,
        cwd=work,
    )
    (wheel,) = work.glob("opencharge_stack-*.whl")
    env_dir = work / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    # Install the wheel with this interpreter's pip into the new environment (console scripts included), then let
    # the new environment see the dependencies but not the project: a plain path line in a .pth file does not run
    # the editable install's own .pth hook.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
    )
    purelib = _purelib(python)
    (purelib / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")


def _purelib(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


def _entry_points(purelib: Path) -> dict[str, str]:
    (dist_info,) = purelib.glob("opencharge_stack-*.dist-info")
    scripts: dict[str, str] = {}
    section = ""
    for line in (dist_info / "entry_points.txt").read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif "=" in line and section == "[console_scripts]":
            name, target = (part.strip() for part in line.split("=", 1))
            scripts[name] = target
    return scripts


def _run(args: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def test_the_wheel_declares_every_console_script_and_the_license(installed: Path) -> None:
    purelib = _purelib(installed / "bin" / "python")
    assert set(_entry_points(purelib)) == set(SCRIPTS)
    (dist_info,) = purelib.glob("opencharge_stack-*.dist-info")
    metadata = (dist_info / "METADATA").read_text()
    assert "License-Expression: Apache-2.0" in metadata
    assert any(p.name == "LICENSE" for p in dist_info.rglob("LICENSE"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_console_script_runs_from_outside_the_checkout(
    installed: Path, script: str, tmp_path: Path
) -> None:
    help_ = _run([str(installed / "bin" / script), "--help"], cwd=tmp_path)
    assert help_.returncode == 0, help_.stderr
    assert "usage:" in help_.stdout
    version = _run([str(installed / "bin" / script), "--version"], cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert "0.1.0" in version.stdout


def test_the_code_comes_from_the_wheel_not_the_checkout(installed: Path, tmp_path: Path) -> None:
    where = _run(
        [str(installed / "bin" / "python"), "-c", "import simulator; print(simulator.__file__)"], tmp_path
    )
    assert where.returncode == 0, where.stderr
    assert not where.stdout.strip().startswith(str(ROOT) + "/simulator"), where.stdout


def test_the_conformance_profiles_ship_in_the_wheel(installed: Path, tmp_path: Path) -> None:
    code = "from conformance.drivers import load_trigger; print(load_trigger('tzi-octt').source)"
    loaded = _run([str(installed / "bin" / "python"), "-c", code], tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    assert not loaded.stdout.startswith(str(ROOT)), loaded.stdout


def test_packaged_scenarios_load_with_their_data_files(installed: Path, tmp_path: Path) -> None:
    # ci-200.toml reads its idTags from ci-tags.txt next to it: the wheel must carry that file.
    for name in ("demo", "ci-200", "faults", "benchmark"):
        check = _run([str(installed / "bin" / "opencharge-sim"), "check", "--scenario", name], tmp_path)
        assert check.returncode == 0, check.stderr
        assert f"{name}: ok" in check.stdout


def test_a_packaged_scenario_runs_from_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    run = _run(
        [
            str(installed / "bin" / "opencharge-sim"),
            "run",
            "--scenario",
            "demo",
            "--count",
            "2",
            "--duration",
            "6",
            "--no-live",
            "--report-dir",
            str(tmp_path / "out"),
            "--control-socket",
            str(tmp_path / "fleet.sock"),
        ],
        tmp_path,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "out" / "report.json").is_file()
    assert "report:" in run.stdout


def test_dev_run_finds_the_tools_without_an_activated_venv(tmp_path: Path) -> None:
    for tool, expected in (("agent", "chargepoint"), ("sim", "simulator"), ("locust", "locust")):
        out = _run([str(ROOT / "dev"), "run", tool, "--version"], tmp_path)
        assert out.returncode == 0, out.stderr
        assert expected in out.stdout
    unknown = _run([str(ROOT / "dev"), "run", "no-such-tool"], tmp_path)
    assert unknown.returncode == 2
    assert "no tool 'no-such-tool'" in unknown.stderr


def test_locust_with_an_http_url_says_so_in_one_line(tmp_path: Path) -> None:
    out = _run(
        [
            sys.executable,
            "-m",
            "loadtests",
            "run",
            "--headless",
            "--host",
            "http://127.0.0.1:9/ocpp",
            "-u",
            "1",
            "-r",
            "1",
            "-t",
            "2s",
        ],
        tmp_path,
    )
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "ws:// or wss://" in errors[0], out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_demo_stops_everything_it_started(tmp_path: Path, sig: signal.Signals) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "chargepoint.demo", "--dir", str(tmp_path / "run")],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, CSMS_ADMIN_TOKEN="t" * 32),
    )
    try:
        assert demo.stdout is not None
        deadline = time.monotonic() + 60
        for line in demo.stdout:
            if "Demo running" in line or time.monotonic() > deadline:
                break
        children = psutil.Process(demo.pid).children(recursive=True)
        assert len(children) >= 3, children  # central system, agent, fleet
        demo.send_signal(sig)
        assert demo.wait(timeout=60) == 0
        _, alive = psutil.wait_procs(children, timeout=30)
        assert alive == [], f"still running after the demo stopped: {alive}"
    finally:
        if demo.poll() is None:
            demo.kill()
        for child in psutil.Process().children(recursive=True):
            child.kill()
