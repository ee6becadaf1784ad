"""Test-only fault injection. Nothing here runs unless a test sets its variable.

NEXUS_FAULT_EMBED_MARKER=TEXT: the worker fails to embed any item whose content contains TEXT,
as if the model had broken on it (the item is retried, then goes dead), while the other items of
its batch are embedded. The poison-item test uses it; production never sets it.
"""

from __future__ import annotations

import os

EMBED_MARKER_ENV = "NEXUS_FAULT_EMBED_MARKER"


def embed_marker() -> str | None:
    """The marker that makes embedding a text fail, when a test set one."""
    return os.environ.get(EMBED_MARKER_ENV) or None


def injected_error() -> str:
    return f"fault injected ({EMBED_MARKER_ENV})"
