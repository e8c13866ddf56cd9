"""What the embedder's queue work and its EmbedderService need of an encoder.

`ragline.embedder.encoder.Encoder` (the model) is the one implementation the services build;
this protocol lets the embedder's wiring take an encoder made elsewhere (the bench's stand-in,
which lives outside this package) without importing torch to describe it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ragline.model_info import ModelInfo

__all__ = ["EncodeStats", "TextEncoder"]


@dataclass
class EncodeStats:
    """What one `encode` call did, for metrics: filled in by the call."""

    # Tokens of the texts (special tokens in), and tokens the model computed, padding included.
    tokens: int = 0
    padded_tokens: int = 0
    # Model time of each padded batch, in seconds.
    batch_seconds: list[float] = field(default_factory=list)


class TextEncoder(Protocol):
    """Texts in, one float32 row per text out, in input order."""

    @property
    def info(self) -> ModelInfo: ...

    @property
    def device(self) -> str: ...

    @property
    def precision(self) -> str: ...

    def encode(
        self,
        texts: Sequence[str],
        *,
        max_batch_tokens: int = 0,
        stats: EncodeStats | None = None,
    ) -> npt.NDArray[np.float32]: ...

    def close(self) -> None: ...
