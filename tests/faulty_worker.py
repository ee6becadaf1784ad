"""`python -m tests.faulty_worker`: the runtime (`python -m sidecar`) with a model that fails to
embed any text containing NEXUS_FAULT_EMBED_MARKER, as if it had broken on it (the item is retried,
then goes dead), while the other texts of its batch are embedded. The poison-item test runs it;
the runtime itself carries no fault hook."""

from __future__ import annotations

import os
import sys

import numpy as np

from sidecar import __main__ as runtime
from sidecar.embedder import Embedder, EmbedError

embed = Embedder.embed


def embed_failing_on_the_marker(self: Embedder,
                                texts: list[str]) -> list[np.ndarray | EmbedError | None]:
    results: list[np.ndarray | EmbedError | None] = [
        EmbedError("fault injected (NEXUS_FAULT_EMBED_MARKER)") for _ in texts]
    marker = os.environ["NEXUS_FAULT_EMBED_MARKER"]
    keep = [i for i, text in enumerate(texts) if marker not in text]
    for i, result in zip(keep, embed(self, [texts[i] for i in keep]), strict=True):
        results[i] = result
    return results


if __name__ == "__main__":
    Embedder.embed = embed_failing_on_the_marker  # type: ignore[method-assign]
    sys.exit(runtime.main())
