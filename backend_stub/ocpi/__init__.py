"""OCPI 2.2.1, the CPO role, on the domain layer (never on OCPP frames): roaming partners see our locations and
tariffs, and receive sessions and CDRs."""
