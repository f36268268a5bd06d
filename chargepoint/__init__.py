"""OCPP charge-point agent: a version-neutral core driving hardware ports, with OCPP adapters."""

__version__ = "0.1.0"
