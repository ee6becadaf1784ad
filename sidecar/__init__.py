"""NEXUS memory runtime: one embedding worker process, its HTTP endpoints and the Redis mirror."""
