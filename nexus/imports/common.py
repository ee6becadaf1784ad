"""What every import shares: batch size, kinds, staged columns, the error."""

from __future__ import annotations

BATCH_ROWS = 10_000
# what `nexus import legacy --adapt` may adapt instead of rejecting (docs/import.md)
ADAPTATIONS = ("metadata", "oversize")
# the API's content limit (validation trigger), and an import's own with --adapt oversize
API_MAX_CONTENT_BYTES = 256 * 1024
IMPORT_MAX_CONTENT_BYTES = 4 * 1024 * 1024
# version 2: facts carry their uuid, key, valid time and what ended them (docs/facts.md); a
# version 1 file (facts known by their content) is read all the same
EXPORT_VERSION = 2
READ_VERSIONS = (1, 2)
KINDS = ("episode", "semantic", "working_memory", "checkpoint")
# staged columns per kind, in COPY order (memory_system.import_stage, db/functions/import/)
STAGE_COLUMNS = {
    "episode": ("source_ref", "agent_id", "episode_uuid", "session_id", "action_type", "source",
                "content", "metadata", "tags", "importance", "valid_at", "created_at",
                "updated_at"),
    "semantic": ("source_ref", "agent_id", "content", "metadata", "tags", "importance",
                 "source_episode_uuid", "created_at", "updated_at", "fact_uuid", "fact_key",
                 "valid_from", "valid_to", "ended_by", "ended_at", "superseded_by_uuid"),
    "working_memory": ("source_ref", "agent_id", "context_key", "value", "expires_at",
                       "created_at", "updated_at", "priority"),
    "checkpoint": ("source_ref", "agent_id", "checkpoint_name", "state", "metadata", "created_at"),
}


class ImportFailed(RuntimeError):
    """A problem found before anything is written (bad DSN, table, mapping, RDB), or a refusal."""


