"""The central-system side of the agent: link (connection), outbox sender, and one adapter per OCPP version."""
