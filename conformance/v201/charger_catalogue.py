"""The OCPP 2.0.1 charging-station catalogue: the cases of every block module, by functional block, then id."""

from __future__ import annotations

from conformance.model import Case
from conformance.v201 import (
    charger_auth_list_reservation,
    charger_cases,
    charger_files,
    charger_security,
    charger_smart,
    charger_tx_points,
)
from conformance.v201.charger import V201ChargerContext

__all__ = ["CASES"]

CASES: list[Case[V201ChargerContext]] = sorted(
    [
        *charger_cases.CASES,
        *charger_auth_list_reservation.CASES,
        *charger_files.CASES,
        *charger_security.CASES,
        *charger_smart.CASES,
        *charger_tx_points.CASES,
    ],
    key=lambda c: (c.block, c.id),
)
