"""The firmware and diagnostics rules (retry bounds, job states) and the FilePort's checks on real files and a real
test signing chain (``cryptography``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chargepoint.config import FirmwareConfig
from chargepoint.core import diagnostics, firmware
from chargepoint.core.file_jobs import (
    MAX_RETRIES,
    MAX_RETRY_INTERVAL_S,
    MAX_SCHEDULE_AHEAD,
    RetryPolicy,
    scheduled_at,
    shown,
)
from chargepoint.core.firmware import FirmwareJob, FirmwareRequest
from chargepoint.core.model import FirmwareStatus
from chargepoint.files import FileTransfers, lines_between, redact
from tests.integration.signing import Chain, make_chain, pem, sign

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def chain() -> Chain:
    return make_chain()


def transfers(tmp_path: Path, roots: list[str]) -> FileTransfers:
    return FileTransfers(
        FirmwareConfig(directory=str(tmp_path)), simulated_hardware=True, manufacturer_roots=lambda: roots
    )


@pytest.mark.parametrize(
    ("retries", "interval", "expected"),
    [
        (None, None, RetryPolicy(2, 60)),
        (2**31 - 1, 10**9, RetryPolicy(MAX_RETRIES, MAX_RETRY_INTERVAL_S)),
        (-5, -1, RetryPolicy(0, 0)),
        (3, 7, RetryPolicy(3, 7)),
    ],
)
def test_retry_policy_is_bounded(retries: int | None, interval: int | None, expected: RetryPolicy) -> None:
    assert RetryPolicy.of(retries, interval) == expected


def test_schedule_is_clamped_to_now_and_the_horizon() -> None:
    assert scheduled_at(datetime(1970, 1, 1, tzinfo=UTC), NOW) == NOW
    assert scheduled_at(datetime(9999, 12, 31, tzinfo=UTC), NOW) == NOW + MAX_SCHEDULE_AHEAD
    assert scheduled_at(NOW + timedelta(hours=1), NOW) == NOW + timedelta(hours=1)
    assert scheduled_at(None, NOW) == NOW


def test_firmware_job_round_trips_through_json() -> None:
    request = FirmwareRequest("ftp://h/fw", NOW, request_id=7, signing_certificate="PEM", signature="c2ln")
    job = FirmwareJob(request, NOW, RetryPolicy(3, 5), FirmwareStatus.DOWNLOADING, attempts=2)
    assert FirmwareJob.from_json(job.to_json()) == job


def test_every_firmware_state_is_reachable_and_an_install_is_never_a_retry() -> None:
    reachable = {FirmwareStatus.IDLE}
    for targets in firmware.TRANSITIONS.values():
        reachable |= targets
    assert reachable == set(FirmwareStatus)
    # Nothing leads back into INSTALLING from after it: an install runs at most once per job.
    assert FirmwareStatus.INSTALLING not in firmware.TRANSITIONS[FirmwareStatus.INSTALLING]
    assert FirmwareStatus.INSTALLING not in firmware.TRANSITIONS[FirmwareStatus.INSTALL_REBOOTING]
    assert firmware.FINAL.isdisjoint(firmware.TRANSITIONS)
    assert diagnostics.FINAL.isdisjoint(diagnostics.TRANSITIONS)


def test_redact_hides_secrets_and_private_keys() -> None:
    text = (
        '[csms]\nurl = "wss://x"\npassword = "hunter2"\nclient_key = "/etc/key.pem"\n'
        'authorization_key = "0011"\n[station]\nid = "CP-1"\n'
        "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"
    )
    out = redact(text)
    assert "hunter2" not in out and "0011" not in out and "MIIB" not in out and "/etc/key.pem" not in out
    assert 'url = "wss://x"' in out and 'id = "CP-1"' in out


def test_lines_between_keeps_continuations() -> None:
    text = "2026-01-01 00:00:00 a\n2026-01-02 00:00:00 b\n trace\n2026-01-03T00:00:00 c\n"
    out = lines_between(text, datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 2, 12, tzinfo=UTC))
    assert out == "2026-01-02 00:00:00 b\n trace\n"


def test_signing_certificate_checks(tmp_path: Path, chain: Chain) -> None:
    files = transfers(tmp_path, [pem(chain.root)])
    now = datetime.now(UTC)
    assert files.check_signing_certificate(pem(chain.signer), now) is None
    assert files.check_signing_certificate(pem(chain.rsa_signer), now) is None
    assert "not valid now" in (files.check_signing_certificate(pem(chain.expired_signer), now) or "")
    assert "not issued" in (files.check_signing_certificate(pem(chain.untrusted_signer), now) or "")
    assert "unreadable" in (files.check_signing_certificate("not a certificate", now) or "")
    with_non_ca = transfers(tmp_path, [pem(chain.root) + pem(chain.non_ca_root)])
    assert "not a CA" in (with_non_ca.check_signing_certificate(pem(chain.signed_by_non_ca), now) or "")
    assert "no ManufacturerRootCertificate" in (
        transfers(tmp_path, []).check_signing_certificate(pem(chain.signer), now) or ""
    )


async def test_signature_over_the_file(tmp_path: Path, chain: Chain) -> None:
    files = transfers(tmp_path, [pem(chain.root)])
    image = tmp_path / "fw.bin"
    image.write_bytes(b"FIRMWARE 3.0\n" + b"x" * 100_000)
    good_ec = sign(chain.signer_key, image.read_bytes())
    good_rsa = sign(chain.rsa_signer_key, image.read_bytes())
    assert await files.verify_signature(str(image), pem(chain.signer), good_ec)
    assert await files.verify_signature(str(image), pem(chain.rsa_signer), good_rsa)
    assert not await files.verify_signature(str(image), pem(chain.rsa_signer), good_ec)  # another key's
    assert not await files.verify_signature(str(image), pem(chain.signer), "!!not base64!!")
    image.write_bytes(image.read_bytes() + b"tampered")
    assert not await files.verify_signature(str(image), pem(chain.signer), good_ec)


def test_shown_hides_credentials_of_a_location() -> None:
    assert shown("ftp://fw:secret@host/dir/fw.bin") == repr("ftp://***@host/dir/fw.bin")
    assert "secret" not in shown("https://u:secret@h/x" + "y" * 200)
    assert shown("http://host/fw.bin") == repr("http://host/fw.bin")
