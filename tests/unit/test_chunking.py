"""Chunking (sidecar/embedder.py) with the model's tokenizer alone: every chunk fits the model,
no text is lost, chunks overlap by about OVERLAP_TOKENS, and a chunk ends at the strongest
separator in its second half: a paragraph, then a line, then a sentence, then a word."""

from __future__ import annotations

import pytest

from bench.harness import chunk_text
from sidecar.embedder import OVERLAP_TOKENS, Chunker
from tests.helpers import model_chunker


@pytest.fixture(scope="module")
def chunker() -> Chunker:
    return model_chunker()


def tokens(chunker: Chunker, text: str) -> int:
    """Model tokens of `text`, without the special ones."""
    return len(chunker.tokenizer(text, add_special_tokens=False)["input_ids"])


def sentences(chunker: Chunker, first: int, at_least: int, end: str = ".") -> str:
    """Numbered sentences (no two alike) from `first`, at least `at_least` tokens of them."""
    out: list[str] = []
    i = first
    while tokens(chunker, " ".join(out)) < at_least:
        out.append(f"Sentence {i} is about topic{i} and little else{end}")
        i += 1
    return " ".join(out)


def placed(text: str, chunks: list[str]) -> list[tuple[int, int]]:
    """Where each chunk is in `text` (chunks are slices of it, in order, each one unique)."""
    spans = []
    for chunk in chunks:
        assert text.count(chunk) == 1, "a chunk is a slice of the text"
        start = text.index(chunk)
        spans.append((start, start + len(chunk)))
    return spans


def assert_covers(text: str, chunks: list[str]) -> None:
    """The chunks, in order, cover every character of `text` but its outer whitespace."""
    spans = placed(text, chunks)
    assert spans[0][0] == len(text) - len(text.lstrip())
    assert spans[-1][1] == len(text.rstrip())
    for (a_start, a_end), (b_start, b_end) in zip(spans, spans[1:], strict=False):
        assert a_start < b_start <= a_end < b_end, "text lost between two chunks"


def test_short_text_is_one_chunk_and_whitespace_none(chunker: Chunker) -> None:
    assert chunk_text(chunker, " \n\t ") == []
    assert chunk_text(chunker, "one short sentence") == ["one short sentence"]
    text = sentences(chunker, 0, chunker.chunk_tokens - 10)
    assert chunk_text(chunker, text) == [text], "a text that fits is not cut"


def test_chunks_fit_the_model_lose_nothing_and_overlap(chunker: Chunker) -> None:
    text = "\n\n".join(sentences(chunker, p * 100, 90) for p in range(30)) + " The end: apples."
    chunks = chunk_text(chunker, text)
    assert len(chunks) > 10
    with_specials = [len(chunker.tokenizer(c)["input_ids"]) for c in chunks]
    assert max(with_specials) <= chunker.chunk_tokens + 2, "a chunk would be truncated"
    assert_covers(text, chunks)
    spans = placed(text, chunks)
    for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False):
        shared = tokens(chunker, text[b_start:a_end])
        assert OVERLAP_TOKENS - 10 <= shared <= OVERLAP_TOKENS, (shared, text[b_start:a_end])
    assert chunks[-1].endswith("apples.")


def test_a_paragraph_break_beats_a_line_break_and_sentence_ends(chunker: Chunker) -> None:
    head = sentences(chunker, 0, chunker.chunk_tokens * 2 // 3)
    text = (head + "\n\n" + sentences(chunker, 1000, 20) + "\n"
            + sentences(chunker, 2000, chunker.chunk_tokens))
    assert chunk_text(chunker, text)[0] == head


def test_a_line_break_beats_sentence_ends_and_an_early_paragraph(chunker: Chunker) -> None:
    # a paragraph break in the first half of the window is too early: the chunk would be short
    early = sentences(chunker, 0, chunker.chunk_tokens // 5)
    head = early + "\n\n" + sentences(chunker, 1000, chunker.chunk_tokens // 2)
    text = head + "\n" + sentences(chunker, 2000, chunker.chunk_tokens)
    assert chunk_text(chunker, text)[0] == head


def test_a_sentence_end_beats_a_word_break(chunker: Chunker) -> None:
    text = sentences(chunker, 0, chunker.chunk_tokens * 3)
    chunks = chunk_text(chunker, text)
    assert all(c.endswith(".") for c in chunks)
    assert all(tokens(chunker, c) > chunker.chunk_tokens // 2 for c in chunks[:-1])
    assert_covers(text, chunks)


def test_without_punctuation_a_chunk_ends_between_words(chunker: Chunker) -> None:
    text = " ".join(f"word{i}" for i in range(400))
    chunks = chunk_text(chunker, text)
    assert len(chunks) > 1
    for start, end in placed(text, chunks)[:-1]:
        assert text[end] == " " and (start == 0 or text[start - 1] == " "), "a word was cut"
    assert_covers(text, chunks)


def test_text_without_a_gap_is_cut_anywhere_but_kept_whole(chunker: Chunker) -> None:
    # no whitespace between any two tokens (BERT splits at punctuation; a single word longer
    # than 100 characters would be one [UNK] token instead): no word starts in the overlap, so
    # the next chunk starts where this one ends
    text = "-".join(f"x{i:04d}" for i in range(600))
    chunks = chunk_text(chunker, text)
    assert len(chunks) > 1
    assert_covers(text, chunks)
