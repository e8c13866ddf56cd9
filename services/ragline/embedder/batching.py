"""How the embedder cuts texts into model batches; pure logic on token counts, no torch.

Texts run longest first and a batch is cut when one more row would take its padded size (rows x
its first, longest row) past the token budget. A batch is also cut early where lengths fall off:
a batch that holds an eighth of the budget or more ends before its first row under 3/4 of its
width. Without that, the last batch of each read gathers every short text behind a long one.
The embedder sorts one read at a time (64 tasks, ~500 chunks in the bench): cut by the budget
alone, reads padded 5% more tokens than the whole corpus sorted at once (padding efficiency 0.92
against 0.97); with the early cut, 1.3% more (0.96). Bench corpus, 200 pydoc pages.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

__all__ = ["plan_batches"]

# Start a new batch at a row shorter than this share of the batch's width...
_FALL_OFF = 0.75
# ...once the batch holds this share of the budget: smaller batches cost more per token than the
# padding they would save.
_MIN_SHARE_BEFORE_FALL_OFF = 1 / 8


def plan_batches(lengths: Sequence[int], max_tokens: int) -> Iterator[list[int]]:
    """Indices into `lengths`, longest first (ties in input order), cut into batches whose
    padded size stays within `max_tokens`; a single row longer than that is a batch alone."""
    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    min_before_fall_off = max_tokens * _MIN_SHARE_BEFORE_FALL_OFF
    batch: list[int] = []
    for i in order:
        if batch:
            # Sorted longest first, so the batch's first row sets its padded length.
            width = lengths[batch[0]]
            over_budget = (len(batch) + 1) * width > max_tokens
            # Decided at the first short row only: once short rows have joined, the rest
            # (shorter still) join them.
            first_short = lengths[i] < _FALL_OFF * width <= lengths[batch[-1]]
            falls_off = first_short and len(batch) * width >= min_before_fall_off
            if over_budget or falls_off:
                yield batch
                batch = []
        batch.append(i)
    if batch:
        yield batch
