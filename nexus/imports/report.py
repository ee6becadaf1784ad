"""The validation report, for people."""

from __future__ import annotations

import json
from typing import Any


def summary(report: dict[str, Any]) -> str:
    """The validation report as a table for people."""
    lines = [f"import {report['import_id']} from {report.get('source', '?')}: "
             + ("OK, every source row is in NEXUS with an equal checksum" if report["ok"]
                else "VALIDATION FAILED")]
    lines.append(f"  {'kind':<15}{'source':>9}{'target':>9}{'equal':>9}{'missing':>9}"
                 f"{'mismatch':>9}{'rejected':>9}{'adapted':>9}{'embedded':>10}")
    for kind, k in report["kinds"].items():
        if not k["source"] and not k["rejected"]:
            continue
        emb = "-" if k["embedded"] is None else f"{k['embedded'] / max(k['target'], 1):.0%}"
        lines.append(f"  {kind:<15}{k['source']:>9}{k['target']:>9}{k['equal']:>9}{k['missing']:>9}"
                     f"{k['mismatched']:>9}{k['rejected']:>9}{k.get('adapted', 0):>9}{emb:>10}")
        if k.get("adapted"):
            by = ", ".join(f"{n} {what}" for what, n in sorted(k["adapted_by"].items()))
            lines.append(f"    adapted instead of rejected ({by}); each compared with its source:")
        for what, refs in k["examples"].items():
            for ref in refs:
                lines.append(f"    {what}: {json.dumps(ref) if isinstance(ref, dict) else ref}")
    for kind, r in report.get("import", {}).items():
        extra = {k: v for k, v in r.items()
                 if k not in ("staged", "written", "rejected", "skipped") and v}
        lines.append(f"  this run, {kind}: {r['written']} written, {r['skipped']} already there, "
                     f"{r['rejected']} rejected" + (f", {extra}" if extra else ""))
    if not report["ok"]:
        lines.append(f"  to undo this import: nexus import rollback {report['import_id']}")
    return "\n".join(lines)
