"""Embedding with the real model: the end of a long text reaches its vector, batching changes
nothing; the precision follows the CPU's bf16 units and is in the version. The parametrized tests
run in bf16 too where the CPU has bf16 units (conftest.py, --bf16); a short bf16 check runs on
any CPU. Chunking itself is tested with the tokenizer alone (tests/unit/test_chunking.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.harness import chunk_text
from conftest import precisions
from sidecar.embedder import (
    Embedder,
    ModelError,
    auto_threads,
    choose_dtype,
    cpu_flags,
)
from tests.helpers import model_chunker

# bf16 rounds differently with another padding (another batch): vectors move by < 1e-4 there
SAME = {"float32": 0.99999, "bfloat16": 0.9999}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "embedder" in metafunc.fixturenames:
        metafunc.parametrize("embedder", precisions(metafunc.config), indirect=True,
                             scope="module")


@pytest.fixture(scope="module")
def embedder(request: pytest.FixtureRequest) -> Embedder:
    """The model in each precision of conftest.precisions."""
    return Embedder(dtype=request.param)


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


def test_the_embedder_chunks_as_its_tokenizer_alone_does(embedder: Embedder) -> None:
    """What tests/unit/test_chunking.py tests is what the model gets."""
    text = long_text(2000)
    assert type(embedder.tokenizer) is type(model_chunker().tokenizer)
    assert embedder.chunk_tokens == model_chunker().chunk_tokens
    assert chunk_text(embedder, text) == chunk_text(model_chunker(), text)


def test_changing_the_last_sentence_of_a_long_text_changes_its_vector(embedder: Embedder) -> None:
    text = long_text(1500)  # about ten chunks
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
        assert float(x @ y) > SAME[embedder.info.dtype]


def test_bf16_is_in_the_version_and_its_vectors_stay_close_to_float32() -> None:
    """The precision's plumbing, on any CPU (emulated where it has no bf16 units: short)."""
    bf16 = Embedder(dtype="bfloat16", threads=1)
    assert next(bf16.model.parameters()).dtype == torch.bfloat16
    assert bf16.info.dtype == "bfloat16" and bf16.info.version.endswith("+bf16")
    texts = ["The red fox crossed the frozen river at dawn.", long_text(300)]
    reference = Embedder(dtype="float32", threads=1).embed(texts)
    for x, y in zip(bf16.embed(texts), reference, strict=True):
        assert float(x @ y) > 0.9998, "bf16 moves a vector by less than 2e-4 in cosine"


def test_auto_picks_float32_on_a_cpu_without_bf16_units() -> None:
    """The no-bf16 path of `auto`, forced: the flags of an AVX2-only CPU (e.g. an AMD EPYC)."""
    flags = frozenset({"fpu", "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni"})
    embedder = Embedder(dtype="auto", flags=flags, threads=1)
    assert embedder.info.dtype == "float32" and "no bf16" in embedder.info.dtype_reason
    assert next(embedder.model.parameters()).dtype == torch.float32
    assert not embedder.info.version.endswith("+bf16")
    assert choose_dtype("auto", flags | {"amx_bf16"})[0] == "bfloat16"
    assert choose_dtype("auto", flags | {"avx512_bf16"})[0] == "bfloat16"
    assert choose_dtype("float32", frozenset({"amx_bf16"}))[0] == "float32"


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16 avx512_bf16\n\n"
                    "processor\t: 1\nflags\t\t: fpu avx2 amx_bf16 avx512_bf16\n")
    assert cpu_flags(info) == {"fpu", "avx2", "amx_bf16", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_a_bad_precision_is_refused() -> None:
    with pytest.raises(ModelError, match="NEXUS_EMBED_DTYPE"):
        choose_dtype("fp8", frozenset())


def test_threads_follow_the_cores() -> None:
    assert auto_threads(1, cores=2) == 1, "one core left to PostgreSQL"
    assert auto_threads(1, cores=8) == 7
    assert auto_threads(3, cores=8) == 2
    assert auto_threads(16, cores=4) == 1
    assert auto_threads(1, cores=1) == 1
