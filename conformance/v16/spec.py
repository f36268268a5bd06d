"""OCPP 1.6 facts the judges use, written down from the specification (not taken from the agent under test)."""

from __future__ import annotations

__all__ = ["CONNECTOR_ZERO_STATES", "CORE_CONFIGURATION_KEYS", "LEGAL_STATUS_TRANSITIONS"]

# OCPP 1.6 §4.9 (StatusNotification, the table of allowed transitions): from -> to, connectors > 0.
LEGAL_STATUS_TRANSITIONS: dict[str, frozenset[str]] = {
    "Available": frozenset(
        {"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Reserved", "Unavailable", "Faulted"}
    ),
    "Preparing": frozenset({"Available", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing", "Faulted"}),
    "Charging": frozenset(
        {"Available", "SuspendedEV", "SuspendedEVSE", "Finishing", "Unavailable", "Faulted"}
    ),
    "SuspendedEV": frozenset(
        {"Available", "Charging", "SuspendedEVSE", "Finishing", "Unavailable", "Faulted"}
    ),
    "SuspendedEVSE": frozenset(
        {"Available", "Charging", "SuspendedEV", "Finishing", "Unavailable", "Faulted"}
    ),
    "Finishing": frozenset({"Available", "Preparing", "Unavailable", "Faulted"}),
    "Reserved": frozenset({"Available", "Preparing", "Unavailable", "Faulted"}),
    "Unavailable": frozenset(
        {"Available", "Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Faulted"}
    ),
    "Faulted": frozenset(
        {
            "Available",
            "Preparing",
            "Charging",
            "SuspendedEV",
            "SuspendedEVSE",
            "Finishing",
            "Reserved",
            "Unavailable",
        }
    ),
}
# Connector 0 (the charge point as a whole) only takes these states (§4.9).
CONNECTOR_ZERO_STATES = frozenset({"Available", "Unavailable", "Faulted"})

# OCPP 1.6 §9.1: the Core configuration keys a charge point is required to report (the optional ones left out).
CORE_CONFIGURATION_KEYS = (
    "AuthorizeRemoteTxRequests",
    "ClockAlignedDataInterval",
    "ConnectionTimeOut",
    "GetConfigurationMaxKeys",
    "HeartbeatInterval",
    "LocalAuthorizeOffline",
    "LocalPreAuthorize",
    "MeterValuesAlignedData",
    "MeterValuesSampledData",
    "MeterValueSampleInterval",
    "NumberOfConnectors",
    "ResetRetries",
    "ConnectorPhaseRotation",
    "StopTransactionOnEVSideDisconnect",
    "StopTransactionOnInvalidId",
    "StopTxnAlignedData",
    "StopTxnSampledData",
    "SupportedFeatureProfiles",
    "TransactionMessageAttempts",
    "TransactionMessageRetryInterval",
    "UnlockConnectorOnEVSideDisconnect",
)
