"""Version-neutral business rules of the central system; nothing here knows OCPP actions or versions."""
