"""`python -m chargepoint ctl` starts light: scripts and the conformance actuation profile run it once per physical
step (hundreds of times in the charger suites), so its imports stay off the core and the hardware drivers."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

HEAVY = ("chargepoint.core.station", "hardware.factory", "ocpp", "websockets", "importlib.metadata")


def test_the_ctl_path_imports_neither_the_core_nor_the_drivers_nor_package_metadata() -> None:
    probe = (
        "import sys, chargepoint.__main__, chargepoint.control; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == ""


def test_version_still_names_the_installed_distribution() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "chargepoint", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"python -m chargepoint {version('opencharge-stack')}"
