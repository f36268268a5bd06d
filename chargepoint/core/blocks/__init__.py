"""The station's functional blocks: each a small module with one job, sharing ``context.StationContext``."""
