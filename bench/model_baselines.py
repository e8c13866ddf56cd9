"""Measurements 1 and 2: the bare model by hand, and the embedder's encode path without queues.

Both run in this process on the same chunks, with the same torch thread count.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ragline.embedder.batching import plan_batches

HAND_BATCH = 32  # what most ingestion tools use
HAND_MAX_LENGTH = 256


def hand_batches(n: int, size: int = HAND_BATCH) -> Iterator[list[int]]:
    """Indices 0..n-1 in corpus order, cut into batches of `size`."""
    for start in range(0, n, size):
        yield list(range(start, min(start + size, n)))


def padding_efficiency(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Real tokens / padded tokens (rows x longest row, summed over batches)."""
    real = sum(lengths[i] for b in batches for i in b)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches if b)
    return real / padded if padded else 1.0


def sync(device: str) -> None:
    """Waits for the GPU's queued work, so that a timing covers it; nothing on a CPU."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def hand_loop(texts: Sequence[str], device: str, threads: int) -> dict[str, Any]:
    """What a user writes by hand: AutoModel, batches of 32 in corpus order, fp32, mean pooling.

    Returns chunks/s and the vectors (key "vectors", dropped from the report).
    """
    import torch
    import torch.nn.functional as F
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from ragline.config import DEFAULT_MODEL
    from ragline.model_info import resolve_model

    if threads > 0:
        torch.set_num_threads(threads)
    path = resolve_model(DEFAULT_MODEL).path
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    # fp32 stated: transformers 5 otherwise keeps the dtype the weights were saved in.
    model = AutoModel.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    model = model.to(device).eval()

    def embed(batch: list[str]) -> npt.NDArray[np.float32]:
        enc = tokenizer(
            batch, padding=True, truncation=True, max_length=HAND_MAX_LENGTH, return_tensors="pt"
        ).to(device)
        with torch.inference_mode():
            out = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(out.dtype)
            vec = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            result: npt.NDArray[np.float32] = F.normalize(vec, p=2, dim=1).cpu().numpy()
        return result

    embed(list(texts[:HAND_BATCH]))  # warm-up: first-call allocations and kernel selection
    sync(device)
    vectors = np.empty((len(texts), 384), dtype=np.float32)
    start = time.perf_counter()
    for batch in hand_batches(len(texts)):
        vectors[batch[0] : batch[-1] + 1] = embed([texts[i] for i in batch])
    sync(device)
    seconds = time.perf_counter() - start
    lengths = [
        len(ids)
        for ids in tokenizer(
            list(texts), truncation=True, max_length=HAND_MAX_LENGTH, padding=False
        )["input_ids"]
    ]
    return {
        "chunks": len(texts),
        "seconds": round(seconds, 3),
        "chunks_per_s": len(texts) / seconds,
        "batch_size": HAND_BATCH,
        "dtype": "float32",
        "torch_threads": torch.get_num_threads(),
        "padding_efficiency": padding_efficiency(lengths, list(hand_batches(len(texts)))),
        "vectors": vectors,
    }


def embedder_path(
    texts: Sequence[str],
    device: str,
    threads: int,
    max_batch_tokens: int,
    precision: str = "auto",
) -> dict[str, Any]:
    """`ragline.embedder.encoder.Encoder.encode` over all chunks: the pipeline's ceiling.

    `precision` is the embedder's (Settings.precision); the report gives the one it resolved to.

    Padding efficiency comes from `Encoder.tokenize` lengths cut by `plan_batches`, the
    rule `Encoder.encode` applies.
    """
    import torch

    from ragline.config import DEFAULT_MODEL
    from ragline.embedder.encoder import Encoder
    from ragline.model_info import resolve_model

    encoder = Encoder(
        resolve_model(DEFAULT_MODEL), device=device, threads=threads, precision=precision
    )
    # 0, the setting's default, leaves the budget to the encoder, as in the embedder.
    max_batch_tokens = max_batch_tokens or encoder.default_batch_tokens
    encoder.encode(list(texts[:HAND_BATCH]), max_batch_tokens=max_batch_tokens)  # warm-up
    sync(device)
    start = time.perf_counter()
    vectors = encoder.encode(list(texts), max_batch_tokens=max_batch_tokens)
    sync(device)
    seconds = time.perf_counter() - start
    lengths = encoder.tokenize(list(texts))
    batches = list(plan_batches(lengths, max_batch_tokens))
    return {
        "chunks": len(texts),
        "seconds": round(seconds, 3),
        "chunks_per_s": len(texts) / seconds,
        "max_batch_tokens": max_batch_tokens,
        "batches": len(batches),
        "mean_batch_rows": round(len(texts) / max(len(batches), 1), 1),
        "dtype": _DTYPE_NAMES[encoder.precision],
        "precision": encoder.precision,
        "precision_requested": precision,
        "device": encoder.device,
        "torch_threads": torch.get_num_threads(),
        "real_tokens": sum(lengths),
        "padded_tokens": sum(len(b) * lengths[b[0]] for b in batches),
        "padding_efficiency": padding_efficiency(lengths, batches),
        "vectors": vectors,
    }


_DTYPE_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def min_cosine(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    """Smallest row-wise cosine between two sets of vectors (rows in the same order)."""
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float((num / np.maximum(den, 1e-12)).min()) if len(a) else 1.0
