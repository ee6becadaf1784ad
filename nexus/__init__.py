"""NEXUS memory tooling; the agent API is the client (nexus.client), exported here."""

from nexus.client import (
    AsyncMemory,
    Conflict,
    InvalidInput,
    Memory,
    NexusError,
    NotFound,
)

__all__ = ["AsyncMemory", "Conflict", "InvalidInput", "Memory", "NexusError", "NotFound"]
