"""Hardware drivers behind the agent's ports, and a simulated twin of each."""
