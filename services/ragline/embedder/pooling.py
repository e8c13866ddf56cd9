"""Pooling: from a model's token vectors to one vector per input, as sentence-transformers does it.

Inputs are `token_embeddings` [batch, seq, dim] and `attention_mask` [batch, seq] (1 = token,
0 = padding). Half-precision inputs are summed in float32 so long inputs do not overflow.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["normalize", "pool"]


def pool(token_embeddings: Tensor, attention_mask: Tensor, mode: str) -> Tensor:
    """Pool token vectors into [batch, dim] with `mode`: one of models.POOLING_MODES."""
    if mode == "cls":
        return _cls(token_embeddings, attention_mask)
    if mode == "max":
        return _max(token_embeddings, attention_mask)
    if mode in ("mean", "mean_sqrt_len"):
        return _mean(token_embeddings, attention_mask, sqrt_len=mode == "mean_sqrt_len")
    if mode == "lasttoken":
        return _last_token(token_embeddings, attention_mask)
    raise ValueError(f"unknown pooling mode {mode!r}")


def normalize(x: Tensor) -> Tensor:
    """Scale each row of `x` to unit L2 length; all-zero rows stay zero."""
    return torch.nn.functional.normalize(x, p=2.0, dim=-1)


def _accumulation_dtype(x: Tensor) -> torch.dtype:
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _cls(token_embeddings: Tensor, attention_mask: Tensor) -> Tensor:
    # The first real token: index 0 with right padding, and still right with left padding.
    first = attention_mask.to(torch.int).argmax(dim=1)
    return token_embeddings[torch.arange(token_embeddings.size(0)), first]


def _max(token_embeddings: Tensor, attention_mask: Tensor) -> Tensor:
    # Padding must never win the max; the dtype's lowest value is below any real activation.
    padding = (attention_mask == 0).unsqueeze(-1)
    lowest = torch.finfo(token_embeddings.dtype).min
    return token_embeddings.masked_fill(padding, lowest).max(dim=1).values


def _mean(token_embeddings: Tensor, attention_mask: Tensor, *, sqrt_len: bool) -> Tensor:
    acc = _accumulation_dtype(token_embeddings)
    mask = attention_mask.unsqueeze(-1).to(token_embeddings.dtype)
    summed = (token_embeddings * mask).sum(dim=1, dtype=acc)
    # Clamped so an input with no tokens at all gives zeros, not NaN.
    counts = torch.clamp(mask.sum(dim=1, dtype=acc), min=1e-9)
    pooled = summed / (torch.sqrt(counts) if sqrt_len else counts)
    return pooled.to(token_embeddings.dtype)


def _last_token(token_embeddings: Tensor, attention_mask: Tensor) -> Tensor:
    # The last position whose mask is 1, found from the right: works for right or left padding.
    seq_len = attention_mask.size(1)
    values, from_end = attention_mask.flip(1).max(dim=1)
    last = seq_len - 1 - from_end
    pooled = token_embeddings[torch.arange(token_embeddings.size(0)), last]
    # An input with no tokens at all pools to zeros, as in sentence-transformers.
    return pooled * (values != 0).unsqueeze(-1).to(pooled.dtype)
