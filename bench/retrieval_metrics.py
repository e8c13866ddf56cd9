"""How close a candidate's vectors come to fp32's, and how well either retrieves; numpy only.

Every vector set is one row per text, L2-normalized as the embedder emits them, so a dot
product is the cosine. Rankings break ties by index, so equal scores rank the same in any run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "cosines",
    "ndcg_at_k",
    "neighbour_agreement",
    "recall_at_k",
    "summary",
    "top_k",
]

Vectors = npt.NDArray[np.float32]
Ranking = npt.NDArray[np.int64]


def cosines(a: Vectors, b: Vectors) -> npt.NDArray[np.float64]:
    """Row-wise cosine between two vector sets of the same shape (rows in the same order)."""
    if a.shape != b.shape:
        raise ValueError(f"vector sets differ in shape: {a.shape} vs {b.shape}")
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    num = (a64 * b64).sum(axis=1)
    den = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    result: npt.NDArray[np.float64] = num / np.maximum(den, 1e-12)
    return result


def top_k(index: Vectors, queries: Vectors, k: int) -> Ranking:
    """For each query row, the `k` index rows with the highest dot product, best first."""
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    scores = queries.astype(np.float64) @ index.astype(np.float64).T
    k = min(k, index.shape[0])
    # lexsort's last key is the primary one: score descending, then index ascending.
    columns = np.arange(index.shape[0])
    ranked = np.empty((queries.shape[0], k), dtype=np.int64)
    for q, row in enumerate(scores):
        ranked[q] = np.lexsort((columns, -row))[:k]
    return ranked


def neighbour_agreement(reference: Ranking, candidate: Ranking) -> float:
    """Mean share of each query's reference top-k that the candidate's top-k also holds
    (order within the k ignored): 1.0 when every query finds the same k neighbours."""
    if reference.shape != candidate.shape:
        raise ValueError(f"rankings differ in shape: {reference.shape} vs {candidate.shape}")
    if reference.size == 0:
        return 1.0
    k = reference.shape[1]
    shared = [
        len(set(r.tolist()) & set(c.tolist())) for r, c in zip(reference, candidate, strict=True)
    ]
    return float(np.mean(shared) / k)


def ndcg_at_k(ranking: Ranking, relevant: Sequence[set[int]], k: int) -> float:
    """Mean nDCG@k with binary relevance: gain 1 for a relevant row at rank r (1-based),
    discounted by log2(r + 1), over the best gain the query's relevant rows could give."""
    _check(ranking, relevant)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    scores = []
    for row, rel in zip(ranking, relevant, strict=True):
        gains = np.array([1.0 if int(i) in rel else 0.0 for i in row[:k]])
        dcg = float((gains * discounts[: len(gains)]).sum())
        ideal = float(discounts[: min(len(rel), k)].sum())
        scores.append(dcg / ideal if ideal > 0 else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def recall_at_k(ranking: Ranking, relevant: Sequence[set[int]], k: int) -> float:
    """Mean share of each query's relevant rows found in its top k, out of at most k (so a
    query with more than k relevant rows scores 1.0 when all k are relevant)."""
    _check(ranking, relevant)
    scores = [
        len({int(i) for i in row[:k]} & rel) / min(len(rel), k) if rel else 0.0
        for row, rel in zip(ranking, relevant, strict=True)
    ]
    return float(np.mean(scores)) if scores else 0.0


def summary(reference: Vectors, candidate: Vectors) -> dict[str, Any]:
    """Mean, min and 1st percentile of the row-wise cosine of `candidate` to `reference`."""
    c = cosines(reference, candidate)
    return {
        "cosine_mean": float(c.mean()),
        "cosine_min": float(c.min()),
        "cosine_p01": float(np.percentile(c, 1)),
    }


def _check(ranking: Ranking, relevant: Sequence[set[int]]) -> None:
    if len(ranking) != len(relevant):
        raise ValueError(f"{len(ranking)} rankings but {len(relevant)} relevance sets")
