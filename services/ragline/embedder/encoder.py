"""Run the embedding model: texts in, vectors out, batched by a token budget.

Loading imports torch and transformers (seconds), so only the embedder process does it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
import torch
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as hf_logging

from ragline.embedder.batching import plan_batches
from ragline.embedder.cpu_fusion import fuse_dense_layers
from ragline.embedder.pooling import normalize, pool
from ragline.embedder.precision import choose_dtype, cpu_flags
from ragline.embedder.text_encoder import EncodeStats
from ragline.errors import ConfigurationError
from ragline.model_info import ModelInfo

__all__ = ["EncodeStats", "Encoder"]

log = logging.getLogger(__name__)


class Encoder:
    """One loaded embedding model. Safe to share between threads."""

    def __init__(
        self, info: ModelInfo, *, device: str = "auto", threads: int = 0, precision: str = "auto"
    ) -> None:
        """Load `info`'s tokenizer and weights from its folder; never downloads.

        `device` is "auto" (CUDA when present, else CPU), "cpu", "cuda" or e.g. "cuda:1".
        `precision` is what the weights and arithmetic use: "auto" (bf16 or fp16 on a GPU, bf16
        on a CPU with native bf16, else fp32) or a forced "fp32", "bf16" or "fp16" (GPU only);
        see `ragline.embedder.precision`. Vectors come out as float32 in every precision.
        `threads` > 0 sets torch's CPU thread count, which is process-wide.
        """
        self._info = info
        self._device = _pick_device(device)
        if threads > 0:
            torch.set_num_threads(threads)
        on_gpu = self._device.type == "cuda"
        self._precision = choose_dtype(
            precision,
            self._device.type,
            frozenset() if on_gpu else cpu_flags(),
            cuda_bf16=on_gpu and torch.cuda.is_bf16_supported(including_emulation=False),
        )
        dtype = _TORCH_DTYPES[self._precision]
        if on_gpu:
            # torch sends half-precision attention with a padding mask to cuDNN first, and cuDNN
            # builds an execution plan for every new (batch, length) shape: about 0.2 s per batch
            # on an H200 (bench, 2026-11-28), since sorted batches rarely repeat a shape. The
            # other kernels (flash, memory-efficient) need no plan. Process-wide, like threads.
            torch.backends.cuda.enable_cudnn_sdp(False)
        try:
            with _quiet_loading():
                self._tokenizer = AutoTokenizer.from_pretrained(info.path, local_files_only=True)
                model = AutoModel.from_pretrained(info.path, local_files_only=True, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"embedding model {info.name!r}: cannot load it from {info.path}: {exc}"
            ) from exc
        self._model = model.to(self._device).eval()
        if not on_gpu:
            # ~17% more chunks/s on a CPU; every swapped block is checked against the original.
            fused = fuse_dense_layers(self._model)
            log.info("fused %d of the model's dense layers with the step after them", fused)
        # A fast tokenizer is stateful (it sets truncation/padding on each call) and fails with
        # "Already borrowed" if two threads use it at once.
        self._tokenizer_lock = threading.Lock()
        # Every forward pass runs on this one thread, whichever thread encodes: batches do not
        # fight over the same cores or GPU memory, and on a CPU torch keeps one OpenMP thread
        # team: forwards from several threads make a team per thread, whose idle members spin
        # on the cores the running team needs. Tokenizing and padding stay in the callers'
        # threads, beside it.
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        # What the model takes besides input_ids (attention_mask, token_type_ids for BERT) and
        # what pads each; padding is done here, per batch, from ids tokenized once.
        self._input_names = [
            n
            for n in self._tokenizer.model_input_names
            if n in ("input_ids", "attention_mask", "token_type_ids")
        ]
        if "attention_mask" not in self._input_names:
            self._input_names.append("attention_mask")
        self._pad_values = {
            "input_ids": self._tokenizer.pad_token_id or 0,
            "attention_mask": 0,
            "token_type_ids": self._tokenizer.pad_token_type_id,
        }
        self._pad_left = self._tokenizer.padding_side == "left"

    @property
    def device(self) -> str:
        """Where the model runs, e.g. "cpu" or "cuda"."""
        return str(self._device)

    @property
    def precision(self) -> str:
        """The precision the model runs in, as resolved from the requested one: "fp32", "bf16"
        or "fp16"."""
        return self._precision

    @property
    def info(self) -> ModelInfo:
        """The model this encoder runs."""
        return self._info

    def tokenize(self, texts: Sequence[str]) -> list[int]:
        """Token count of each text as the model sees it: special tokens in, truncated."""
        return [len(ids) for ids in self._encode_unpadded(texts)["input_ids"]]

    @property
    def default_batch_tokens(self) -> int:
        """The token budget per batch when the caller names none: 8,192 on a CPU, 16,384 on a
        GPU.

        On a CPU, larger batches are slower per token once their activations outgrow the cache:
        the bench corpus in bf16 on a 2-core Xeon ran at 70, 75 and 64 chunks/s with budgets of
        4,096, 8,192 and 16,384 tokens (one process, alternated). A GPU wants large batches.
        """
        return _GPU_BATCH_TOKENS if self._device.type == "cuda" else _CPU_BATCH_TOKENS

    def encode(
        self,
        texts: Sequence[str],
        *,
        max_batch_tokens: int = 0,
        stats: EncodeStats | None = None,
    ) -> npt.NDArray[np.float32]:
        """Embed `texts` into a float32 array [len(texts), dimension], rows in input order.

        Texts are sorted by length and batched so that each padded batch (rows x longest row)
        holds at most `max_batch_tokens` tokens (0: `default_batch_tokens`), see
        `ragline.embedder.batching`; a single text is never split. `stats`, when given, is
        filled in with the tokens and the model time.
        """
        if max_batch_tokens < 0:
            raise ValueError(f"max_batch_tokens must not be negative, got {max_batch_tokens}")
        max_batch_tokens = max_batch_tokens or self.default_batch_tokens
        out = np.empty((len(texts), self._info.dimension), dtype=np.float32)
        # Tokenized once, unpadded: the counts plan the batches and the ids are padded per batch.
        features = self._encode_unpadded(texts)
        lengths = [len(ids) for ids in features["input_ids"]]
        # On a GPU the model runs asynchronously: every batch is queued before any result is
        # copied back, so the CPU pads batch k+1 while the GPU computes batch k.
        queued = []
        # Longest first: a batch that does not fit in memory fails at once, not at the end.
        for batch in plan_batches(lengths, max_batch_tokens):
            start = time.perf_counter()
            queued.append((batch, self._embed(features, batch), time.perf_counter() - start))
        # A batch's model time: its call (all of it on a CPU, where the call returns the result)
        # plus the wait for its vectors after the last call (a GPU's asynchronous work).
        waited_from = time.perf_counter()
        for batch, vectors, called_s in queued:
            out[batch] = vectors.cpu().numpy()
            if stats is not None:
                now = time.perf_counter()
                stats.batch_seconds.append(called_s + now - waited_from)
                stats.padded_tokens += len(batch) * lengths[batch[0]]
                waited_from = now
        if stats is not None:
            stats.tokens += sum(lengths)
        return out

    def _encode_unpadded(self, texts: Sequence[str]) -> dict[str, list[list[int]]]:
        if not texts:
            return {"input_ids": []}
        with self._tokenizer_lock:
            encoded = self._tokenizer(
                list(texts),
                add_special_tokens=True,
                padding=False,
                truncation=True,
                max_length=self._info.max_seq_length,
                return_attention_mask=True,  # pooling needs it, whatever the model takes
            )
        return {name: encoded[name] for name in self._input_names}

    def _embed(self, features: dict[str, list[list[int]]], rows: list[int]) -> torch.Tensor:
        """The vectors of `rows` (longest first), still on the model's device."""
        width = len(features["input_ids"][rows[0]])
        inputs = {
            name: _pad([values[r] for r in rows], width, self._pad_values[name], self._pad_left).to(
                self._device, non_blocking=True
            )
            for name, values in features.items()
        }
        return self._model_thread.submit(self._forward, inputs).result()

    def _forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode():
            # Pooled and normalized in float32 whatever the model ran in: a bf16 mean over 256
            # tokens, or a half-precision sum of 384 squares, would lose most of the digits
            # the model's own precision kept.
            token_embeddings = self._model(**inputs).last_hidden_state.float()
            vectors = pool(token_embeddings, inputs["attention_mask"], self._info.pooling)
            if self._info.normalize:
                vectors = normalize(vectors)
        return vectors

    def close(self) -> None:
        """Lets the model thread end once it is idle; encoding after this raises RuntimeError."""
        self._model_thread.shutdown(wait=False)


def _pad(rows: list[list[int]], width: int, value: int, left: bool) -> torch.Tensor:
    """`rows` as one int64 tensor [len(rows), width], filled out with `value` on one side."""
    padded = np.full((len(rows), width), value, dtype=np.int64)
    for r, row in enumerate(rows):
        if left:
            padded[r, width - len(row) :] = row
        else:
            padded[r, : len(row)] = row
    return torch.from_numpy(padded)


_CPU_BATCH_TOKENS = 8192
_GPU_BATCH_TOKENS = 16384

_TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        picked = torch.device(device)
    except RuntimeError as exc:
        raise ConfigurationError(f"device {device!r} is not a torch device: {exc}") from exc
    if picked.type == "cuda" and not torch.cuda.is_available():
        raise ConfigurationError(f"device {device!r} asked for, but torch sees no CUDA device")
    return picked


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """Hide transformers' "Loading weights" progress bar, which is noise in service logs."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
