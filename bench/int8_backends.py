"""The int8 trial's candidates: each turns padded token ids into the model's token vectors.

Every candidate is run by `ModelRunner`, which tokenizes, batches (the embedder's own
`plan_batches`, the same token budget), pools and normalizes exactly as the embedder does, so
candidates differ from the fp32 path only in how the transformer itself is computed.

Models made on the way (the ONNX export, quantized models) are kept in a work folder and reused.
OpenVINO, NNCF, onnxruntime and onnx are imported only inside the candidates that use them:
they live in `.venv-int8` (`make bench-int8`), never in the project's own dependencies.
"""

from __future__ import annotations

import logging
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ragline.embedder.batching import plan_batches
from ragline.model_info import ModelInfo

Inputs = dict[str, npt.NDArray[np.int64]]
Forward = Callable[[Inputs], npt.NDArray[np.float32]]

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
CPU_BATCH_TOKENS = 8192  # the embedder's CPU default (Encoder.default_batch_tokens)

# BERT's FFN output products (1,536 -> 384, after GELU): the layers whose inputs have the widest
# range, so the first to keep in fp32. The attention output (layer.N.attention.output.dense) is
# not matched. OpenVINO keeps the ONNX export's node names, so one pattern serves both.
FFN_OUTPUT_ONNX = re.compile(r"^/bert/encoder/layer\.\d+/output/dense/MatMul$")


def progress(message: str) -> None:
    """One line of progress on stderr."""
    print(f"[int8] {message}", file=sys.stderr, flush=True)


class ModelRunner:
    """Texts in, L2-normalized mean-pooled float32 vectors out, through `forward`."""

    def __init__(self, info: ModelInfo, forward: Forward) -> None:
        from transformers import AutoTokenizer

        self._info = info
        self._forward = forward
        self._tokenizer = AutoTokenizer.from_pretrained(info.path, local_files_only=True)

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        ids: list[list[int]] = self._tokenizer(
            list(texts),
            add_special_tokens=True,
            padding=False,
            truncation=True,
            max_length=self._info.max_seq_length,
        )["input_ids"]
        return ids

    def inputs(self, ids: Sequence[list[int]]) -> Inputs:
        """One padded batch (right padding, as the model's tokenizer pads)."""
        width = max(len(row) for row in ids)
        input_ids = np.full((len(ids), width), self._tokenizer.pad_token_id or 0, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for r, row in enumerate(ids):
            input_ids[r, : len(row)] = row
            mask[r, : len(row)] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": mask,
            "token_type_ids": np.zeros_like(input_ids),
        }

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        import torch

        from ragline.embedder.pooling import normalize, pool

        ids = self.tokenize(texts)
        out = np.empty((len(texts), self._info.dimension), dtype=np.float32)
        for batch in plan_batches([len(r) for r in ids], CPU_BATCH_TOKENS):
            inputs = self.inputs([ids[i] for i in batch])
            hidden = torch.from_numpy(np.ascontiguousarray(self._forward(inputs)))
            with torch.inference_mode():
                vectors = pool(
                    hidden, torch.from_numpy(inputs["attention_mask"]), self._info.pooling
                )
                if self._info.normalize:
                    vectors = normalize(vectors)
            out[batch] = vectors.numpy()
        return out


@dataclass(frozen=True)
class Context:
    """What a candidate may build from: the model, calibration texts, a work folder, threads."""

    info: ModelInfo
    calibration: list[str]
    work: Path
    threads: int
    calibration_samples: int


@dataclass(frozen=True)
class Candidate:
    """One way to run the model. `int8` is False for the fp32 runtimes shown for reference."""

    name: str
    description: str
    int8: bool
    build: Callable[[Context], Forward]


# --- torch ------------------------------------------------------------------------------------


def _torch_model(info: ModelInfo, attn: str = "sdpa") -> Any:
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    model = AutoModel.from_pretrained(
        info.path, local_files_only=True, dtype=torch.float32, attn_implementation=attn
    )
    return model.eval()


def _torch_forward(model: Any) -> Forward:
    import torch

    def forward(inputs: Inputs) -> npt.NDArray[np.float32]:
        with torch.inference_mode():
            tensors = {k: torch.from_numpy(v) for k, v in inputs.items()}
            hidden: npt.NDArray[np.float32] = model(**tensors).last_hidden_state.numpy()
        return hidden

    return forward


def torch_dynamic(engine: str) -> Callable[[Context], Forward]:
    """torch's dynamic int8: Linear weights int8 per tensor, activations quantized per batch."""

    def build(ctx: Context) -> Forward:
        import torch

        torch.backends.quantized.engine = engine
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated in 2.13
            model = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                _torch_model(ctx.info), {torch.nn.Linear}, dtype=torch.qint8
            )
        return _torch_forward(model)

    return build


# --- ONNX export and calibration --------------------------------------------------------------


def onnx_export(ctx: Context) -> Path:
    """The fp32 model as ONNX (TorchScript exporter, eager attention: plain MatMul/Softmax),
    run through onnxruntime's pre-processing (shape inference, graph clean-up)."""
    path = ctx.work / "model-fp32.onnx"
    prepared = ctx.work / "model-fp32-prep.onnx"
    if prepared.exists():
        return prepared
    import torch
    from onnxruntime.quantization.shape_inference import quant_pre_process

    progress("exporting the fp32 model to ONNX")
    model = _torch_model(ctx.info, attn="eager")

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    example = tuple(torch.ones((2, 16), dtype=torch.int64) for _ in INPUT_NAMES)
    axes = {n: {0: "batch", 1: "sequence"} for n in (*INPUT_NAMES, "last_hidden_state")}
    ctx.work.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHidden(),
            example,
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    # Symbolic shape inference gives up on the export's dynamic axes; ONNX's own is enough.
    quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)
    return prepared


def calibration_inputs(ctx: Context) -> list[Inputs]:
    """Calibration texts one per sample, unpadded, spread evenly over the calibration set."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ctx.info.path, local_files_only=True)
    n = min(ctx.calibration_samples, len(ctx.calibration))
    picks = np.linspace(0, len(ctx.calibration) - 1, n).round().astype(int)
    samples = []
    for i in picks:
        ids = tokenizer(ctx.calibration[i], truncation=True, max_length=ctx.info.max_seq_length)[
            "input_ids"
        ]
        row = np.array([ids], dtype=np.int64)
        samples.append(
            {"input_ids": row, "attention_mask": np.ones_like(row), "token_type_ids": row * 0}
        )
    return samples


def _matmul_nodes(model_path: Path) -> tuple[list[str], list[str]]:
    """The ONNX graph's MatMul node names: (with a weight initializer, between activations)."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    initializers = {i.name for i in graph.initializer}
    weighted: list[str] = []
    activations: list[str] = []
    for node in graph.node:
        if node.op_type == "MatMul":
            (weighted if node.input[1] in initializers else activations).append(node.name)
    return weighted, activations


# --- onnxruntime ------------------------------------------------------------------------------


def _ort_forward(path: Path, threads: int) -> Forward:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # No spinning after a run: torch's threads share these cores in the same process.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def forward(inputs: Inputs) -> npt.NDArray[np.float32]:
        hidden: npt.NDArray[np.float32] = session.run(None, inputs)[0]
        return hidden

    return forward


def ort_fp32(ctx: Context) -> Forward:
    return _ort_forward(onnx_export(ctx), ctx.threads)


def ort_static(
    tag: str, *, weight_u8: bool, reduce_range: bool, ffn_output_fp32: bool, method: str = "MinMax"
) -> Callable[[Context], Forward]:
    """onnxruntime static QDQ on the weight MatMuls, per-channel weights, activations u8
    (asymmetric), calibrated on the calibration texts. The activation-by-activation products
    of attention (Q.K and scores.V) stay fp32, and so, with `ffn_output_fp32`, do the FFN
    output layers."""

    def build(ctx: Context) -> Forward:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )

        out = ctx.work / f"model-{tag}.onnx"
        if not out.exists():
            fp32 = onnx_export(ctx)
            weighted, _ = _matmul_nodes(fp32)
            keep = [n for n in weighted if not (ffn_output_fp32 and FFN_OUTPUT_ONNX.match(n))]
            samples = calibration_inputs(ctx)

            class Reader(CalibrationDataReader):  # type: ignore[misc]
                def __init__(self) -> None:
                    self._it = iter(samples)

                def get_next(self) -> Inputs | None:
                    return next(self._it, None)

            progress(f"{tag}: calibrating on {len(samples)} texts, {len(keep)} MatMuls in int8")
            quantize_static(
                str(fp32),
                str(out),
                Reader(),
                quant_format=QuantFormat.QDQ,
                nodes_to_quantize=keep,
                per_channel=True,
                reduce_range=reduce_range,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QUInt8 if weight_u8 else QuantType.QInt8,
                calibrate_method=getattr(CalibrationMethod, method),
            )
        return _ort_forward(out, ctx.threads)

    return build


# --- OpenVINO and NNCF ------------------------------------------------------------------------


def _ov_forward(model: Any, threads: int) -> Forward:
    import openvino as ov

    compiled = ov.Core().compile_model(
        model,
        "CPU",
        {
            "INFERENCE_NUM_THREADS": threads,
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
            # fp32 wherever int8 is not used, as on this AVX2 CPU anyway (no silent bf16).
            "INFERENCE_PRECISION_HINT": "f32",
        },
    )
    request = compiled.create_infer_request()

    def forward(inputs: Inputs) -> npt.NDArray[np.float32]:
        request.infer(inputs)
        hidden: npt.NDArray[np.float32] = request.get_output_tensor(0).data.copy()
        return hidden

    return forward


def _ov_fp32_model(ctx: Context) -> Any:
    import openvino as ov

    return ov.convert_model(str(onnx_export(ctx)))


def ov_fp32(ctx: Context) -> Forward:
    return _ov_forward(_ov_fp32_model(ctx), ctx.threads)


def ov_nncf(
    tag: str,
    *,
    overflow_fix: str = "first_layer_only",
    ffn_output_fp32: bool = False,
    smooth_quant_alpha: float | None = None,
) -> Callable[[Context], Forward]:
    """NNCF post-training quantization of the OpenVINO model: model_type TRANSFORMER (which keeps
    layer norms, softmax and the attention products' sensitive inputs in fp32), preset MIXED
    (asymmetric activations), per-channel weights, fast bias correction. `overflow_fix`
    "enable" quantizes every weight to 7 bits, so that the u8 x s8 pair sums of AVX2's
    VPMADDUBSW (no VNNI here) cannot saturate their 16 bits; NNCF's default fixes only the
    first layer. `smooth_quant_alpha` sets SmoothQuant's strength on MatMuls (-1 turns it off;
    None: NNCF's default for transformers)."""

    def build(ctx: Context) -> Forward:
        import nncf
        import openvino as ov
        from nncf.quantization.advanced_parameters import (
            AdvancedQuantizationParameters,
            AdvancedSmoothQuantParameters,
            OverflowFix,
        )

        out = ctx.work / f"model-{tag}.xml"
        if not out.exists():
            model = _ov_fp32_model(ctx)
            samples = calibration_inputs(ctx)
            advanced: dict[str, Any] = {"overflow_fix": OverflowFix(overflow_fix)}
            if smooth_quant_alpha is not None:
                advanced["smooth_quant_alphas"] = AdvancedSmoothQuantParameters(
                    matmul=smooth_quant_alpha
                )
            ignored = None
            if ffn_output_fp32:
                ignored = nncf.IgnoredScope(patterns=[FFN_OUTPUT_ONNX.pattern])
            progress(f"{tag}: NNCF quantization on {len(samples)} calibration texts")
            logging.getLogger("nncf").setLevel(logging.WARNING)
            quantized = nncf.quantize(
                model,
                nncf.Dataset(samples),
                preset=nncf.QuantizationPreset.MIXED,
                model_type=nncf.ModelType.TRANSFORMER,
                subset_size=len(samples),
                ignored_scope=ignored,
                advanced_parameters=AdvancedQuantizationParameters(**advanced),
            )
            ov.save_model(quantized, str(out))
        return _ov_forward(str(out), ctx.threads)

    return build


CANDIDATES = [
    Candidate(
        "torch-dynamic-x86",
        "torch dynamic int8 (quantize_dynamic on Linear, x86 engine)",
        True,
        torch_dynamic("x86"),
    ),
    Candidate("ort-fp32", "onnxruntime fp32 (reference runtime)", False, ort_fp32),
    Candidate(
        "ort-qdq-u8s8-rr",
        "onnxruntime static QDQ, u8 activations, s8 per-channel weights, reduce_range (7 bit)",
        True,
        ort_static("ort-qdq-u8s8-rr", weight_u8=False, reduce_range=True, ffn_output_fp32=False),
    ),
    Candidate(
        "ort-qdq-u8u8",
        "onnxruntime static QDQ, u8 activations and u8 per-channel weights",
        True,
        ort_static("ort-qdq-u8u8", weight_u8=True, reduce_range=False, ffn_output_fp32=False),
    ),
    Candidate(
        "ort-qdq-u8s8-rr-ffn32",
        "as ort-qdq-u8s8-rr, FFN output layers in fp32",
        True,
        ort_static(
            "ort-qdq-u8s8-rr-ffn32", weight_u8=False, reduce_range=True, ffn_output_fp32=True
        ),
    ),
    Candidate("ov-fp32", "OpenVINO fp32 (reference runtime)", False, ov_fp32),
    Candidate(
        "ov-nncf",
        "OpenVINO + NNCF PTQ, TRANSFORMER, MIXED, defaults (SmoothQuant, overflow fix on layer 1)",
        True,
        ov_nncf("ov-nncf"),
    ),
    Candidate(
        "ov-nncf-of",
        "as ov-nncf, overflow fix on every layer (7-bit weights)",
        True,
        ov_nncf("ov-nncf-of", overflow_fix="enable"),
    ),
    Candidate(
        "ov-nncf-of-ffn32",
        "as ov-nncf-of, FFN output layers in fp32",
        True,
        ov_nncf("ov-nncf-of-ffn32", overflow_fix="enable", ffn_output_fp32=True),
    ),
]
