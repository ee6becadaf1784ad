"""Imports from an existing memory store, and our own JSONL export.

`nexus import legacy` reads the old store: PostgreSQL tables of episodes and working memory, and
Redis working-memory keys (a live server or an RDB file). `nexus export` / `nexus import jsonl`
move one agent's memories in our own format. Either way, source rows are streamed with COPY into
session staging tables, and the SQL in db/functions/import/ turns them into memories in batches
of committed transactions, recording each source row in memory_system.import_rows. So:

- a second run imports nothing twice (the ledger is checked row by row);
- a crash loses nothing (what committed is in the ledger, the rest is imported by the next run);
- validation reads the source again and compares every row's checksum with the target's;
- `nexus import rollback ID` deletes what an import wrote and puts back what it replaced.

Memory stays flat as the source grows: rows go from one COPY to another without being held.
"""


from nexus.imports.common import BATCH_ROWS, IMPORT_MAX_CONTENT_BYTES, KINDS, ImportFailed
from nexus.imports.jsonl import export_agent, import_jsonl, read_jsonl
from nexus.imports.ledger import list_imports, rollback, validate, wait_embedded
from nexus.imports.legacy import LegacyOptions, import_legacy
from nexus.imports.report import summary
from nexus.imports.staging import copy_between, copy_rows

__all__ = ["BATCH_ROWS", "IMPORT_MAX_CONTENT_BYTES", "KINDS", "ImportFailed", "LegacyOptions",
           "copy_between", "copy_rows",
           "export_agent", "import_jsonl", "import_legacy", "list_imports", "read_jsonl",
           "rollback", "summary", "validate", "wait_embedded"]
