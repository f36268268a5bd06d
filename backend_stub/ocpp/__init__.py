"""The OCPP side of the central system: the only package that knows action names and OCPP versions."""
