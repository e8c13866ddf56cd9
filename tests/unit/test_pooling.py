"""Pooling modes on small hand-made tensors, checked against values worked out by hand."""

from __future__ import annotations

import pytest
import torch

from ragline.embedder.pooling import normalize, pool

pytestmark = pytest.mark.unit

# Two inputs, three positions, two dims. Row 0 has 3 tokens; row 1 has 2 tokens and one pad,
# whose large values would show up in any mode that let padding through.
EMBEDDINGS = torch.tensor(
    [
        [[1.0, 2.0], [3.0, -4.0], [5.0, 0.0]],
        [[-2.0, 6.0], [4.0, -8.0], [100.0, 100.0]],
    ]
)
RIGHT_PADDED = torch.tensor([[1, 1, 1], [1, 1, 0]])


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("mean", [[3.0, -2.0 / 3.0], [1.0, -1.0]]),
        ("cls", [[1.0, 2.0], [-2.0, 6.0]]),
        ("max", [[5.0, 2.0], [4.0, 6.0]]),
        # Sum over tokens divided by sqrt(token count): sqrt(3) and sqrt(2).
        ("mean_sqrt_len", [[9.0 / 3**0.5, -2.0 / 3**0.5], [2.0 / 2**0.5, -2.0 / 2**0.5]]),
        ("lasttoken", [[5.0, 0.0], [4.0, -8.0]]),
    ],
)
def test_pool_modes_ignore_padding(mode: str, expected: list[list[float]]) -> None:
    result = pool(EMBEDDINGS, RIGHT_PADDED, mode)
    torch.testing.assert_close(result, torch.tensor(expected))


def test_max_ignores_padding_when_all_real_values_are_negative() -> None:
    embeddings = torch.tensor([[[-3.0, -1.0], [-2.0, -5.0], [0.0, 0.0]]])
    result = pool(embeddings, torch.tensor([[1, 1, 0]]), "max")
    torch.testing.assert_close(result, torch.tensor([[-2.0, -1.0]]))


def test_cls_and_lasttoken_find_real_tokens_with_left_padding() -> None:
    embeddings = torch.tensor([[[9.0, 9.0], [1.0, 2.0], [3.0, 4.0]]])
    left_padded = torch.tensor([[0, 1, 1]])
    torch.testing.assert_close(pool(embeddings, left_padded, "cls"), torch.tensor([[1.0, 2.0]]))
    torch.testing.assert_close(
        pool(embeddings, left_padded, "lasttoken"), torch.tensor([[3.0, 4.0]])
    )


@pytest.mark.parametrize("mode", ["mean", "mean_sqrt_len", "lasttoken"])
def test_input_without_tokens_pools_to_zeros(mode: str) -> None:
    result = pool(torch.ones(1, 2, 3), torch.zeros(1, 2, dtype=torch.long), mode)
    torch.testing.assert_close(result, torch.zeros(1, 3))


def test_mean_of_half_precision_is_accumulated_in_float32() -> None:
    # 300 tokens of 300.0 sum to 90000, past float16's largest value (65504).
    embeddings = torch.full((1, 300, 2), 300.0, dtype=torch.float16)
    result = pool(embeddings, torch.ones(1, 300, dtype=torch.long), "mean")
    assert result.dtype == torch.float16
    torch.testing.assert_close(result, torch.full((1, 2), 300.0, dtype=torch.float16))


def test_unknown_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="weightedmean"):
        pool(EMBEDDINGS, RIGHT_PADDED, "weightedmean")


def test_normalize_scales_rows_to_unit_length() -> None:
    result = normalize(torch.tensor([[3.0, 4.0], [0.0, -2.0], [0.0, 0.0]]))
    torch.testing.assert_close(result, torch.tensor([[0.6, 0.8], [0.0, -1.0], [0.0, 0.0]]))
