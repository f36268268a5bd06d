"""The OCPP 2.0.1 adapter, by functional block (OCPP 2.0.1 Part 2: B provisioning, C authorization, D local
authorization list, E transactions, F remote control, G availability, H reservation, J meter values, L firmware,
N diagnostics, P data transfer)."""
