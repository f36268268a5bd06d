"""The agent starts without the heavy packages only some chargers need (RSS at start, issue 11 item 5)."""

import subprocess
import sys


def test_importing_the_agent_loads_neither_cryptography_nor_the_201_adapter() -> None:
    code = (
        "import sys, chargepoint.agent, simulator.fleet\n"
        "print(sorted({m.split('.')[0] + '.' + m.split('.')[1] if '.' in m else m for m in sys.modules"
        " if m.startswith(('cryptography', 'ocpp.v201', 'chargepoint.x509_checks', 'chargepoint.csms.v201'))}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_certificate_helpers_are_still_importable_from_chargepoint_certificates() -> None:
    from chargepoint import certificates

    assert certificates.check_root.__module__ == "chargepoint.x509_checks"
    assert "SHA256" in certificates.HASHES and set(certificates.HASHES) == certificates.HASH_ALGORITHMS
