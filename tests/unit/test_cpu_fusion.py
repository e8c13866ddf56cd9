"""The oneDNN fusion of dense layers on small BERT-shaped blocks with random weights: each fused
block gives what it replaced, and blocks that only look alike keep their own code."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from transformers.activations import GELUActivation

from ragline.embedder.cpu_fusion import (
    LinearAddNorm,
    OneDnnLinear,
    fuse_dense_layers,
)

pytestmark = [pytest.mark.unit, pytest.mark.cpu_paths]

HIDDEN, INNER = 16, 64


class Intermediate(nn.Module):
    """Shaped like transformers' BertIntermediate."""

    def __init__(self, act: nn.Module) -> None:
        super().__init__()
        self.dense = nn.Linear(HIDDEN, INNER)
        self.intermediate_act_fn = act

    def forward(self, hidden_states: Tensor) -> Tensor:
        out: Tensor = self.intermediate_act_fn(self.dense(hidden_states))
        return out


class Output(nn.Module):
    """Shaped like transformers' BertOutput; `sign` -1 makes a look-alike that subtracts."""

    def __init__(self, sign: float = 1.0) -> None:
        super().__init__()
        self.dense = nn.Linear(INNER, HIDDEN)
        self.dropout = nn.Dropout(0.1)
        self.LayerNorm = nn.LayerNorm(HIDDEN)
        self.sign = sign

    def forward(self, hidden_states: Tensor, input_tensor: Tensor) -> Tensor:
        out: Tensor = self.LayerNorm(
            self.dropout(self.dense(hidden_states)) + self.sign * input_tensor
        )
        return out


class Layer(nn.Module):
    def __init__(self, act: nn.Module | None = None, sign: float = 1.0) -> None:
        super().__init__()
        self.query = nn.Linear(HIDDEN, HIDDEN)
        self.intermediate = Intermediate(act if act is not None else GELUActivation())
        self.output = Output(sign)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.tanh(self.query(x))
        out: Tensor = self.output(self.intermediate(h), h)
        return out


def _fused_copy(layer: Layer, dtype: torch.dtype) -> tuple[Layer, Layer, int]:
    torch.manual_seed(0)
    original = layer.to(dtype).eval()
    fused = Layer(layer.intermediate.intermediate_act_fn, layer.output.sign).to(dtype).eval()
    fused.load_state_dict(original.state_dict())
    return original, fused, fuse_dense_layers(fused)


def _onednn_runs(dtype: torch.dtype) -> bool:
    """torch's own word on whether oneDNN computes in `dtype` on this CPU: fp32 everywhere it is
    built in, bf16 only with AVX-512 (BW, VL, DQ) or AMX, and never below ONEDNN_MAX_CPU_ISA's
    cap (which is how `make test` runs these tests as on an AVX2-only CPU)."""
    if dtype == torch.bfloat16:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return True


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_layer_computes_what_the_original_did(dtype: torch.dtype) -> None:
    # Where oneDNN runs the dtype, every dense layer is swapped; where it does not (bf16 on an
    # AVX2-only CPU), nothing is, and the model's own layers run. The output is the same.
    torch.manual_seed(1)
    original, fused, replaced = _fused_copy(Layer(), dtype)
    if _onednn_runs(dtype):
        assert replaced == 3
        assert isinstance(fused.query, OneDnnLinear) and not fused.query.gelu
        assert isinstance(fused.intermediate, OneDnnLinear) and fused.intermediate.gelu
        assert isinstance(fused.output, LinearAddNorm)
    else:
        assert replaced == 0
        assert type(fused.query) is nn.Linear
        assert isinstance(fused.intermediate, Intermediate)
        assert type(fused.intermediate.dense) is nn.Linear
        assert isinstance(fused.output, Output)
    x = torch.randn(3, 7, HIDDEN).to(dtype)
    with torch.inference_mode():
        expected, got = original(x).float(), fused(x).float()
    tolerance = 1e-5 if dtype == torch.float32 else 5e-2
    torch.testing.assert_close(got, expected, atol=tolerance, rtol=tolerance)


def test_fused_blocks_share_the_original_weights() -> None:
    torch.manual_seed(2)
    layer = Layer().eval()
    dense = layer.intermediate.dense
    fuse_dense_layers(layer)
    assert isinstance(layer.intermediate, OneDnnLinear) and layer.intermediate.gelu
    assert layer.intermediate.dense is dense  # no second copy of the weights


def test_approximate_gelu_keeps_its_block() -> None:
    # Only exact GELU has a fused form here; the tanh approximation is a different function.
    torch.manual_seed(3)
    _, fused, _ = _fused_copy(Layer(act=nn.GELU(approximate="tanh")), torch.float32)
    assert isinstance(fused.intermediate, Intermediate)
    assert isinstance(fused.intermediate.dense, OneDnnLinear)  # its dense layer alone still is
    assert not fused.intermediate.dense.gelu


def test_a_block_that_only_looks_alike_keeps_its_code() -> None:
    # Same children as BertOutput, but it subtracts the residual: the probe must catch it.
    torch.manual_seed(4)
    original, fused, _ = _fused_copy(Layer(sign=-1.0), torch.float32)
    assert isinstance(fused.output, Output)
    x = torch.randn(2, 5, HIDDEN)
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), original(x), atol=1e-5, rtol=1e-5)


def test_a_half_precision_model_is_left_alone() -> None:
    # oneDNN's fused linear serves fp32 and bf16 on a CPU; fp16 keeps torch's own layers.
    layer = Layer().to(torch.float16).eval()
    assert fuse_dense_layers(layer) == 0
    assert isinstance(layer.intermediate, Intermediate)
