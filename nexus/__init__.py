"""NEXUS memory tooling. The agent API is the client (nexus.client), exported here; it is imported
on first use, so that the `nexus` command does not load it for every subcommand."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nexus.client import AsyncMemory, Conflict, InvalidInput, Memory, NexusError, NotFound

__all__ = ["AsyncMemory", "Conflict", "InvalidInput", "Memory", "NexusError", "NotFound"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from nexus import client

        return getattr(client, name)
    raise AttributeError(f"module 'nexus' has no attribute {name!r}")
