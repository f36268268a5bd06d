"""The HTTP side of the central system: REST API, API docs, operator dashboard and QR pay pages."""
