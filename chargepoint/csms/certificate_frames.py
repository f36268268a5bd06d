"""What both OCPP versions say alike about certificates: the statuses of InstallCertificate and DeleteCertificate
(1.6 Security whitepaper and 2.0.1 M04/M05 spell them the same) and CertificateHashDataType."""

from __future__ import annotations

from typing import Any

from chargepoint.certificates import DeleteResult, InstallResult
from chargepoint.core.storage import CertificateHashData

INSTALL_STATUS: dict[InstallResult, str] = {
    InstallResult.ACCEPTED: "Accepted",
    InstallResult.REJECTED: "Rejected",
    InstallResult.FAILED: "Failed",
}
DELETE_STATUS: dict[DeleteResult, str] = {
    DeleteResult.ACCEPTED: "Accepted",
    DeleteResult.FAILED: "Failed",
    DeleteResult.NOT_FOUND: "NotFound",
}


def hash_data_json(data: CertificateHashData) -> dict[str, str]:
    """A CertificateHashDataType (camelCase)."""
    return {
        "hashAlgorithm": data.hash_algorithm,
        "issuerNameHash": data.issuer_name_hash,
        "issuerKeyHash": data.issuer_key_hash,
        "serialNumber": data.serial_number,
    }


def hash_data_of(data: dict[str, Any]) -> CertificateHashData:
    """A CertificateHashDataType as the ``ocpp`` package hands it to a handler (snake_case), in the core's form."""
    return CertificateHashData(
        issuer_name_hash=data["issuer_name_hash"],
        issuer_key_hash=data["issuer_key_hash"],
        serial_number=data["serial_number"],
        hash_algorithm=data["hash_algorithm"],
    )
