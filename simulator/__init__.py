"""Virtual charger fleet: many real agents with simulated hardware and EVs in one process."""
