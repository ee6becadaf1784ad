"""Chunking and embedding with the real model: nothing is truncated, batching changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from sidecar.embedder import Embedder


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def long_text(words: int = 5000) -> str:
    vocabulary = ["memory", "agents", "recall", "episodes", "river", "signal", "lantern", "harbor"]
    sentences, sentence = [], []
    for i in range(words):
        sentence.append(f"{vocabulary[i % len(vocabulary)]}{i % 97}")
        if len(sentence) == 15:
            sentences.append(" ".join(sentence) + ".")
            sentence = []
        if len(sentences) == 6:
            sentences[-1] += "\n\n"
    return " ".join(sentences) + " The last sentence is about apples."


def test_chunks_fit_the_model_and_cover_every_word(embedder: Embedder) -> None:
    text = long_text()
    chunks = embedder.chunk(text)
    assert len(chunks) > 20
    lengths = [len(embedder.tokenizer(c)["input_ids"]) for c in chunks]  # with [CLS] and [SEP]
    assert max(lengths) <= embedder.info.max_tokens, "a chunk would be truncated by the model"
    assert set(text.split()) <= {w for c in chunks for w in c.split()}, "a word was dropped"
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert " ".join(b.split()[:8]) in a, "each chunk starts inside the previous one (overlap)"
    assert chunks[-1].endswith("apples.")


def test_changing_the_last_sentence_of_a_long_text_changes_its_vector(embedder: Embedder) -> None:
    text = long_text()
    a, b = embedder.embed([text, text.replace("apples.", "submarines.")])
    assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
    assert abs(float(np.linalg.norm(a)) - 1) < 1e-5
    assert float(a @ b) < 0.99999, "the end of a long text must reach its vector"


def test_batching_across_texts_changes_no_vector(embedder: Embedder) -> None:
    texts = ["short one", long_text(800), "another short text about rivers", ""]
    together = embedder.embed(texts)
    alone = [embedder.embed([t])[0] for t in texts]
    assert together[3] is None and alone[3] is None, "empty text gets no vector"
    for x, y in zip(together[:3], alone[:3], strict=True):
        assert float(x @ y) > 0.99999


def test_whitespace_only_text_has_no_chunks(embedder: Embedder) -> None:
    assert embedder.chunk(" \n\t ") == []
    assert embedder.chunk("one short sentence") == ["one short sentence"]
