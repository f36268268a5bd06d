"""The certificate storage port on the real SQLite store: install, read by use, replace, delete, old files."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from chargepoint.core.storage import CertificateHashData, CertificateUse, InstalledCertificate
from chargepoint.store import Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PEM_A = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
PEM_B = "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n"


def hashes(serial: str) -> CertificateHashData:
    return CertificateHashData("ab" * 32, "cd" * 32, serial)


def cert(
    use: CertificateUse, serial: str, pem: str = PEM_A, key_ref: str | None = None
) -> InstalledCertificate:
    return InstalledCertificate(use, pem, hashes(serial), T0, key_ref)


def test_installed_certificates_are_read_back_by_use_and_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    store = Store(path)
    store.install_certificate(cert(CertificateUse.CENTRAL_SYSTEM_ROOT, "1"))
    store.install_certificate(cert(CertificateUse.MANUFACTURER_ROOT, "2", PEM_B))
    store.install_certificate(cert(CertificateUse.MANUFACTURER_ROOT, "3"))
    store.close()

    store = Store(path)
    roots = store.installed_certificates(CertificateUse.MANUFACTURER_ROOT)
    assert [(c.hash_data.serial_number, c.pem) for c in roots] == [("2", PEM_B), ("3", PEM_A)]
    assert [c.use for c in store.installed_certificates()] == [
        CertificateUse.CENTRAL_SYSTEM_ROOT,
        CertificateUse.MANUFACTURER_ROOT,
        CertificateUse.MANUFACTURER_ROOT,
    ]
    store.close()


def test_the_same_certificate_installed_twice_is_stored_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "agent.db")
    store.install_certificate(cert(CertificateUse.CENTRAL_SYSTEM_ROOT, "1", PEM_A))
    store.install_certificate(
        cert(CertificateUse.CENTRAL_SYSTEM_ROOT, "01", PEM_B)
    )  # same serial, other spelling
    assert [c.pem for c in store.installed_certificates(CertificateUse.CENTRAL_SYSTEM_ROOT)] == [PEM_B]
    store.close()


def test_a_new_charge_point_chain_replaces_the_previous_one_with_its_key_reference(tmp_path: Path) -> None:
    store = Store(tmp_path / "agent.db")
    store.install_certificate(cert(CertificateUse.CHARGE_POINT, "a", PEM_A, "/keys/old.pem"))
    store.install_certificate(cert(CertificateUse.CHARGE_POINT, "b", PEM_B, "/keys/new.pem"))
    (own,) = store.installed_certificates(CertificateUse.CHARGE_POINT)
    assert (own.pem, own.key_ref, own.hash_data.serial_number) == (PEM_B, "/keys/new.pem", "b")
    store.close()


def test_delete_matches_hash_data_in_any_spelling_and_says_whether_it_found_one(tmp_path: Path) -> None:
    store = Store(tmp_path / "agent.db")
    store.install_certificate(cert(CertificateUse.CENTRAL_SYSTEM_ROOT, "1a"))
    store.install_certificate(cert(CertificateUse.MANUFACTURER_ROOT, "2b"))
    upper = CertificateHashData("AB" * 32, "CD" * 32, "001A", "sha256")
    assert store.delete_certificate(upper).result() is True
    assert store.delete_certificate(upper).result() is False
    assert (
        store.delete_certificate(CertificateHashData("ab" * 32, "cd" * 32, "2b", "SHA384")).result() is False
    )
    assert [c.hash_data.serial_number for c in store.installed_certificates()] == ["2b"]
    store.close()


def test_a_file_from_before_the_certificates_table_opens_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO settings VALUES ('HeartbeatInterval', '60');"
        "INSERT INTO kv VALUES ('availability', 'Inoperative');"
    )
    old.commit()
    old.close()

    store = Store(path)
    assert store.settings() == {"HeartbeatInterval": "60"}
    assert store.get("availability") == "Inoperative"
    assert store.installed_certificates() == []
    store.install_certificate(cert(CertificateUse.MANUFACTURER_ROOT, "7"))
    assert [
        c.hash_data.serial_number for c in store.installed_certificates(CertificateUse.MANUFACTURER_ROOT)
    ] == ["7"]
    store.close()
