"""The runtime (`sidecar/`) stands alone: it never imports the tooling (`nexus/`), and what the
container runs starts with the tooling made unimportable."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "sidecar"


def test_no_runtime_module_imports_the_tooling_package() -> None:
    offenders = []
    for path in sorted(RUNTIME.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names
                          if n.split(".")[0] in {"nexus", "bench", "tests"}]
    assert offenders == []


def test_the_container_entry_point_runs_without_the_tooling() -> None:
    """`python -m sidecar` (the Dockerfile's command) imports every runtime module with `nexus`
    unimportable, and answers --help."""
    modules = sorted(f"sidecar.{p.stem}" for p in RUNTIME.glob("*.py") if p.stem != "__init__")
    code = ("import sys, runpy; sys.modules['nexus'] = None; "
            f"import {', '.join(modules)}; "
            "sys.argv = ['sidecar', '--help']; runpy.run_module('sidecar', run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "python -m sidecar" in result.stdout
    assert "nexus" not in {m.split(".")[0] for m in modules}


def test_the_image_runs_the_runtime_package() -> None:
    dockerfile = (ROOT / "deploy" / "sidecar" / "Dockerfile").read_text()
    assert re.search(r'^CMD \["python", "-m", "sidecar"', dockerfile, re.MULTILINE)
    compose = (ROOT / "deploy" / "docker-compose.yml").read_text()
    assert '["python", "-m", "sidecar"' in compose
