"""The version-neutral core: connectors, sessions, authorization, metering. Imports no protocol or hardware library."""
