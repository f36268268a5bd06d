"""OCPP 2.0.1 catalogues (the central-system half; the charger half waits for the agent's 2.0.1)."""
