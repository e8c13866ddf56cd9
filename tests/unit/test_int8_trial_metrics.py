"""The int8 trial's quality measures (bench.retrieval_metrics) on hand-made vectors whose answers
are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.retrieval_metrics import (
    cosines,
    ndcg_at_k,
    neighbour_agreement,
    recall_at_k,
    summary,
    top_k,
)

pytestmark = pytest.mark.unit

# Four index rows on the unit circle and one query along the x axis: its neighbours by cosine
# are rows 0 (1.0), 1 (0.8), 2 (0.0) and 3 (-1.0), in that order.
INDEX = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]], dtype=np.float32)
QUERY = np.array([[1.0, 0.0]], dtype=np.float32)


def test_top_k_ranks_by_cosine_best_first() -> None:
    assert top_k(INDEX, QUERY, 3).tolist() == [[0, 1, 2]]
    assert top_k(INDEX, QUERY, 10).tolist() == [[0, 1, 2, 3]]  # k capped at the index size


def test_top_k_breaks_ties_by_row() -> None:
    index = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    assert top_k(index, QUERY, 2).tolist() == [[1, 2]]


def test_agreement_counts_shared_neighbours_whatever_their_order() -> None:
    reference = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    assert neighbour_agreement(reference, reference[:, ::-1].copy()) == 1.0
    # Query one keeps 3 of 4, query two 1 of 4: (0.75 + 0.25) / 2.
    candidate = np.array([[0, 1, 2, 9], [4, 8, 9, 10]])
    assert neighbour_agreement(reference, candidate) == pytest.approx(0.5)


def test_agreement_refuses_rankings_of_different_shapes() -> None:
    with pytest.raises(ValueError, match="shape"):
        neighbour_agreement(np.zeros((2, 3), dtype=np.int64), np.zeros((2, 4), dtype=np.int64))


def test_ndcg_with_binary_relevance() -> None:
    ranking = np.array([[5, 1, 7], [2, 3, 4]])
    relevant = [{1, 7}, {2}]
    # Query one: hits at ranks 2 and 3, ideal at ranks 1 and 2. Query two: a hit at rank 1.
    first = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(ranking, relevant, 3) == pytest.approx((first + 1.0) / 2)
    assert ndcg_at_k(ranking, [{9}, {9}], 3) == 0.0


def test_recall_counts_out_of_at_most_k() -> None:
    ranking = np.array([[5, 1, 7], [2, 3, 4]])
    # One of two relevant found, then three relevant of five but only k = 3 fit in the top 3.
    relevant = [{1, 9}, {2, 3, 4, 8, 9}]
    assert recall_at_k(ranking, relevant, 3) == pytest.approx((0.5 + 1.0) / 2)
    assert recall_at_k(ranking, relevant, 1) == pytest.approx((0.0 + 1.0) / 2)


def test_cosines_and_summary() -> None:
    a = np.array([[1.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    b = np.array([[1.0, 0.0], [1.0, 1.0]], dtype=np.float32)
    assert cosines(a, b).tolist() == pytest.approx([1.0, math.sqrt(0.5)])
    s = summary(a, b)
    assert s["cosine_min"] == pytest.approx(math.sqrt(0.5))
    assert s["cosine_mean"] == pytest.approx((1 + math.sqrt(0.5)) / 2)
    with pytest.raises(ValueError, match="shape"):
        cosines(a, b[:1])
