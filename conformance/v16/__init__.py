"""OCPP 1.6 catalogues: central-system cases and charge-point cases."""
