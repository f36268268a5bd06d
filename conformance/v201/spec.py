"""OCPP 2.0.1 facts the charger judges use, written down from the specification (not taken from the agent)."""

from __future__ import annotations

__all__ = ["LEGAL_CONNECTOR_TRANSITIONS"]

# OCPP 2.0.1 Part 2 §G01 (ConnectorStatusEnumType and the connector status transition table): from -> to.
# Occupied -> Reserved and Unavailable -> Reserved are not in the table: a reservation needs a free connector.
LEGAL_CONNECTOR_TRANSITIONS: dict[str, frozenset[str]] = {
    "Available": frozenset({"Occupied", "Reserved", "Unavailable", "Faulted"}),
    "Occupied": frozenset({"Available", "Unavailable", "Faulted"}),
    "Reserved": frozenset({"Available", "Occupied", "Unavailable", "Faulted"}),
    "Unavailable": frozenset({"Available", "Occupied", "Faulted"}),
    "Faulted": frozenset({"Available", "Occupied", "Reserved", "Unavailable"}),
}
