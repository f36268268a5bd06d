"""The bundled central system: an OCPP-J server used as local CSMS and as scripted test central system."""
