"""bf16 against fp32 with the real default model: the same vectors and the same search results.

bf16 runs here even on a CPU without native bf16 (emulated, slower, same numbers), so the
quality checks hold wherever `auto` would pick bf16.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest
import torch

from ragline.chunker.parsers import extract_text
from ragline.chunker.splitter import TokenSplitter
from ragline.config import DEFAULT_MODEL
from ragline.embedder.encoder import Encoder
from ragline.embedder.precision import choose_dtype, cpu_flags
from ragline.errors import ConfigurationError
from ragline.model_info import resolve_model
from tests.corpus import mixed_corpus
from tests.texts import SAMPLE_TEXTS

pytestmark = [pytest.mark.integration, pytest.mark.cpu_paths, pytest.mark.xdist_group(__name__)]

Vectors = npt.NDArray[np.float32]

# The texts of test_encoder.py, then ten more.
TEXTS = [
    *SAMPLE_TEXTS,
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The court held that the contract was void for lack of consideration.",
    "Preheat the oven to 200 °C, then bake the bread for 35 minutes until golden.",
    "import numpy as np\nx = np.linspace(0, 1, 100)\nprint(x.mean())",
    "<html><body><h1>Orders</h1><table><tr><td>42</td><td>shipped</td></tr></table></body></html>",
    "The patient presented with fever, a persistent cough and shortness of breath.",
    "Interest rates rose by a quarter point as inflation stayed above target.",
    "1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233",
    "Bitte schließen Sie die Tür, wenn Sie den Raum verlassen.",
    "The quick brown fox jumps over the lazy dog. " * 30,
]

MIN_COSINE = 0.999
MIN_TOP10_AGREEMENT = 0.98
CHUNK_SIZE = 64


def _encoder(precision: str) -> Encoder:
    return Encoder(resolve_model(DEFAULT_MODEL), device="cpu", precision=precision)


@pytest.fixture(scope="module")
def fp32() -> Encoder:
    return _encoder("fp32")


@pytest.fixture(scope="module")
def bf16() -> Encoder:
    return _encoder("bf16")


def _chunks() -> Iterator[str]:
    info = resolve_model(DEFAULT_MODEL)
    splitter = TokenSplitter(info.path / "tokenizer.json")
    for doc in mixed_corpus():
        text = extract_text(doc.content, doc.content_type)
        markdown = doc.content_type == "text/markdown"
        for chunk in splitter.split(text, CHUNK_SIZE, 0, markdown=markdown):
            yield chunk.text


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return list(_chunks())


@pytest.fixture(scope="module")
def queries() -> list[str]:
    return [doc.query for doc in mixed_corpus()]


def _cosines(a: Vectors, b: Vectors) -> Vectors:
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    result: Vectors = (a * b).sum(axis=1) / norms
    return result


def _top10(queries: Vectors, corpus: Vectors) -> list[set[int]]:
    scores = queries @ corpus.T
    return [set(np.argsort(-row, kind="stable")[:10].tolist()) for row in scores]


def test_encoders_report_the_precision_they_run_in(fp32: Encoder, bf16: Encoder) -> None:
    assert fp32.precision == "fp32"
    assert bf16.precision == "bf16"
    assert next(bf16._model.parameters()).dtype.is_floating_point
    assert str(next(bf16._model.parameters()).dtype) == "torch.bfloat16"


def test_bf16_vectors_are_float32_unit_vectors(bf16: Encoder) -> None:
    vectors = bf16.encode(TEXTS[:4])
    assert vectors.dtype == np.float32
    assert vectors.shape == (4, 384)
    # Text 1 is empty: it still pools over [CLS] and [SEP], so every row has unit length.
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_bf16_vectors_match_fp32(fp32: Encoder, bf16: Encoder) -> None:
    assert len(TEXTS) == 30
    assert sum(n >= 256 for n in fp32.tokenize(TEXTS)) >= 3  # some texts fill the model's input
    cosines = _cosines(bf16.encode(TEXTS), fp32.encode(TEXTS))
    worst = int(cosines.argmin())
    assert cosines.min() >= MIN_COSINE, (
        f"min cosine {cosines.min():.5f} on text {worst} ({TEXTS[worst][:40]!r}); "
        f"mean {cosines.mean():.5f}"
    )


def test_bf16_search_agrees_with_fp32(
    fp32: Encoder, bf16: Encoder, corpus: list[str], queries: list[str]
) -> None:
    assert 150 <= len(corpus) <= 400
    assert len(queries) == 20
    top_fp32 = _top10(fp32.encode(queries), fp32.encode(corpus))
    top_bf16 = _top10(bf16.encode(queries), bf16.encode(corpus))
    overlaps = [len(a & b) / 10 for a, b in zip(top_fp32, top_bf16, strict=True)]
    agreement = float(np.mean(overlaps))
    assert agreement >= MIN_TOP10_AGREEMENT, f"top-10 agreement {agreement:.3f}: {overlaps}"


def test_auto_picks_what_the_table_says_for_this_cpu() -> None:
    # Resolved before the weights load, so this costs a model load only where it succeeds.
    expected = choose_dtype("auto", "cpu", cpu_flags())
    assert _encoder("auto").precision == expected
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        # oneDNN itself has no bf16 here (an AVX2-only CPU, or `make test`'s run as one with
        # ONEDNN_MAX_CPU_ISA=AVX2): auto must not pick an emulated bf16.
        assert expected == "fp32"


def test_fp16_on_cpu_fails_before_loading() -> None:
    with pytest.raises(ConfigurationError, match="GPU-only"):
        _encoder("fp16")
