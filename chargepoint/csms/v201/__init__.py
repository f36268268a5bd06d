"""The OCPP 2.0.1 adapter, by functional block (OCPP 2.0.1 Part 2: B provisioning, C authorization, E transactions, F remote control, G availability, J meter values, P data transfer)."""
