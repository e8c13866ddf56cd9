"""The embedder's batch plan: every text once, longest first, within the token budget, and cut
where lengths fall off."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ragline.embedder.batching import plan_batches

pytestmark = pytest.mark.unit


@given(
    lengths=st.lists(st.integers(min_value=1, max_value=512), max_size=300),
    budget=st.sampled_from([1, 100, 256, 1000, 4096, 16384]),
)
def test_every_text_once_longest_first_within_the_budget(lengths: list[int], budget: int) -> None:
    batches = list(plan_batches(lengths, budget))
    flat = [i for batch in batches for i in batch]
    # Longest first, ties in input order: exactly the stable descending sort.
    assert flat == sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    for batch in batches:
        assert batch
        assert len(batch) == 1 or len(batch) * lengths[batch[0]] <= budget


def test_a_read_with_a_tail_of_short_texts_is_not_padded_to_the_long_ones() -> None:
    # What one read of the embed queue looks like: mostly full-length chunks, then each
    # document's short last chunk. The budget alone would put 35 short rows behind 250 tokens.
    lengths = [250] * 30 + [40] * 100
    batches = list(plan_batches(lengths, 16384))
    assert [len(b) for b in batches] == [30, 100]
    assert batches[0] == list(range(30))


def test_no_early_cut_before_the_batch_is_an_eighth_of_the_budget() -> None:
    # 4 x 250 = 1,000 tokens, under 16,384 / 8: the short rows join rather than make a batch
    # of their own, which would cost more per token than the padding saves.
    lengths = [250] * 4 + [40] * 10
    assert [len(b) for b in plan_batches(lengths, 16384)] == [14]


def test_lengths_that_taper_gently_stay_together() -> None:
    lengths = list(range(256, 192, -1))  # each under 3/4 of 256 only below 192
    assert [len(b) for b in plan_batches(lengths, 16384)] == [64]


def test_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        list(plan_batches([3], 0))
