"""`python -m bench.standin_embedder`: the real embedder service with the model replaced by a
STAND-IN that costs next to nothing, for the bench's measurement 6 (the pipeline's own ceiling).

THE STAND-IN IS NOT THE MODEL. Its vectors are unit vectors of the model's dimension derived
from a hash of each chunk's text: deterministic (a redelivered chunk gets the same vector), but
meaningless for search. It lives in bench/, outside the ragline package, and no setting reaches
it: only this entry point, which the bench's stack launches in place of `ragline serve embedder`
when asked for the ceiling (`python -m bench`, measurement 6), builds one.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ragline.model_info import ModelInfo

LABEL = "stand-in (not the model)"
_HASH_BYTES = 64  # BLAKE2b's full digest


class StandInEncoder:
    """A TextEncoder (ragline.embedder.text_encoder) whose vectors come from a hash, not a model."""

    def __init__(self, info: ModelInfo) -> None:
        self._info = info
        # The same scale in every process and run: a text's vector never changes.
        rng = np.random.default_rng(20261201)
        self._scale = rng.standard_normal(info.dimension, dtype=np.float32)

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def device(self) -> str:
        return LABEL

    @property
    def precision(self) -> str:
        return LABEL

    def encode(
        self, texts: Sequence[str], *, max_batch_tokens: int = 0, stats: object = None
    ) -> npt.NDArray[np.float32]:
        """One unit vector per text: its 64-byte BLAKE2b hash, read as signed bytes, repeated to
        the model's dimension and scaled by a fixed random vector (~2 us a text; a generator
        seeded per text took ~25). Element-wise only, so a text's vector is the same bits in
        any batch. `stats` is left as it is: no tokens are computed."""
        raw = b"".join(hashlib.blake2b(t.encode("utf-8", "surrogatepass")).digest() for t in texts)
        codes = np.frombuffer(raw, dtype=np.int8).reshape(len(texts), _HASH_BYTES)
        repeats = -(-self._info.dimension // _HASH_BYTES)
        out = np.tile(codes, (1, repeats))[:, : self._info.dimension] * self._scale
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.where(norms > 0, norms, 1)
        return out

    def close(self) -> None:
        pass


def main() -> int:
    """`ragline serve embedder`, with the stand-in where the model would be."""
    from ragline.cli.serve import prepare_environment, run_stage
    from ragline.config import Settings
    from ragline.embedder.main import serve_encoder
    from ragline.model_info import resolve_model
    from ragline.telemetry import configure_logging
    from ragline.tls import server_security

    prepare_environment()
    settings = Settings.from_env(os.environ)
    configure_logging("embedder", settings.log_level, settings.log_format)

    async def run(s: Settings) -> None:
        security = server_security(s)
        # The real model's description (its dimension, its name on the tasks), not its weights.
        await serve_encoder(s, security, StandInEncoder(resolve_model(s.model)))

    return run_stage("embedder", settings, run)


if __name__ == "__main__":
    sys.exit(main())
