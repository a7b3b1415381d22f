"""ONNX export of a retrieval model: image encoder, text encoder and, where the score is not a plain
cosine of the two embeddings, the score head; each graph checked against PyTorch with onnxruntime.

Graphs (inputs -> outputs; batch axes dynamic everywhere):

* `image_encoder.onnx`: `pixel_values` (+ GaLR's `local_features`, `local_adjacency`) -> the
  model's image cache (`embeds`; CMPAGL also `tokens`, the fusion encoder's input).
* `text_encoder.onnx`: `input_ids`, `attention_mask` -> the text cache (`embeds`; CMPAGL also
  `tokens`). BERT text towers (MSA, CMPAGL) take any length; the skip-thought GRU of AMFMN/GaLR is
  unrolled over `text_length` steps, so pad ids with 0 to exactly that length.
* `score_head.onnx`: AMFMN's visual-guided attention (`image_embeds` [N, D], `text_embeds` [M, D]
  -> `scores` [N, M]; `soft_att` only: the other attention types score in shape-dependent chunks);
  CMPAGL's fusion encoder + ITM head on row-aligned pairs (`image_tokens`, `text_tokens`,
  `text_attention_mask` -> `itm_logits` [P, 2]; choosing the top-k candidates stays with the
  caller). GaLR and MSA score with the cosine of the embeddings (GaLR: x / (|x| + 1e-8)).

The TorchScript-based exporter (`dynamo=False`) is used: the torch.export-based one needs the
`onnxscript` package, and these graphs trace completely.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import RSRetrievalError
from ..fileio import atomic_directory
from ..models.common.processing import input_image_size
from ..optional import require

OPSET = 17
#: Largest |onnxruntime - PyTorch| accepted by the parity check.
TOLERANCE = 1e-4


class OnnxExportError(RSRetrievalError, ValueError):
    """An exported graph does not reproduce PyTorch within the tolerance (the message names it)."""


@dataclass
class GraphSpec:
    """One graph to export: a module, example inputs (exported at batch 2, checked at batch 3)."""

    name: str
    module: nn.Module
    inputs: dict[str, torch.Tensor]
    check_inputs: dict[str, torch.Tensor]
    outputs: list[str]
    dynamic_axes: dict[str, dict[int, str]]


@dataclass
class GraphReport:
    name: str
    file: str
    inputs: list[str]
    outputs: list[str]
    dynamic_axes: dict[str, dict[str, str]]
    max_abs_diff: float
    torch_ms: float | None = None
    onnxruntime_ms: float | None = None


class _ModelMethod(nn.Module):
    """`model.<method>` as a module whose parameters are the model's (the tracer exports them as
    weights): positional inputs in; a tuple of the named cache entries, or the tensor, out."""

    def __init__(
        self,
        model: nn.Module,
        method: str,
        input_names: list[str] | None = None,
        output_names: list[str] | None = None,
    ):
        super().__init__()
        self.model, self.method, self.input_names, self.output_names = model, method, input_names, output_names
        # Eval mode for good: the exporter restores the wrapper's mode afterwards, to every submodule.
        self.eval()

    def forward(self, *inputs):
        function = getattr(self.model, self.method)
        if self.input_names is None:
            return function(*inputs)
        cache = function(**dict(zip(self.input_names, inputs)))
        return tuple(cache[name] for name in self.output_names)


def _example_images(model, batch: int, image_size: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(batch)
    inputs = {"pixel_values": torch.randn(batch, 3, image_size, image_size, generator=generator)}
    config = model.config
    if getattr(config, "model_type", None) == "galr":
        inputs["local_features"] = torch.randn(batch, config.num_nodes, config.node_dim, generator=generator)
        inputs["local_adjacency"] = torch.rand(batch, config.num_nodes, config.num_nodes, generator=generator)
    return inputs


def _example_texts(vocab_size: int, batch: int, length: int) -> dict[str, torch.Tensor]:
    """Random ids 1..vocab-1, right-padded with 0 to different lengths (one row full length)."""
    generator = torch.Generator().manual_seed(length + batch)
    ids = torch.randint(1, vocab_size, (batch, length), generator=generator)
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)
    lengths[0] = length
    mask = (torch.arange(length)[None] < lengths[:, None]).long()
    return {"input_ids": ids * mask, "attention_mask": mask}


def graph_specs(model, image_size: int, text_length: int, check_batch: int = 3) -> list[GraphSpec]:
    """The graphs of `model` (in eval mode), with example inputs (batch 2) and check inputs (`check_batch`)."""
    uses_gru = hasattr(model, "text_feature")  # AMFMN/GaLR: unrolled GRU, fixed text length, no mask input
    vocab = model.config.vocab_size if uses_gru else model.config.text_config.vocab_size
    images, check_images = _example_images(model, 2, image_size), _example_images(model, check_batch, image_size)
    texts = _example_texts(vocab, 2, text_length)
    check_texts = _example_texts(vocab, check_batch, text_length if uses_gru else max(2, text_length - 3))
    if uses_gru:  # lengths come from the id-0 padding
        texts, check_texts = {"input_ids": texts["input_ids"]}, {"input_ids": check_texts["input_ids"]}
    text_axes = {0: "batch"} if uses_gru else {0: "batch", 1: "text_length"}
    image_out, text_out = list(model.image_cache_keys), [k for k in model.text_cache_keys if k != "attention_mask"]
    specs = [
        GraphSpec(
            "image_encoder",
            _ModelMethod(model, "encode_images", list(images), image_out),
            images,
            check_images,
            image_out,
            {name: {0: "batch"} for name in [*images, *image_out]},
        ),
        GraphSpec(
            "text_encoder",
            _ModelMethod(model, "encode_texts", list(texts), text_out),
            texts,
            check_texts,
            text_out,
            {
                **{name: text_axes for name in texts},
                **{name: text_axes if name == "tokens" else {0: "batch"} for name in text_out},
            },
        ),
    ]
    model_type = model.config.model_type
    if model_type == "amfmn" and model.config.att_type == "soft_att":
        dim = model.config.embed_dim
        generator = torch.Generator().manual_seed(0)
        embeds = lambda n, m: {
            "image_embeds": torch.randn(n, dim, generator=generator),
            "text_embeds": torch.rand(m, dim, generator=generator),
        }
        specs.append(
            GraphSpec(
                "score_head",
                _ModelMethod(model, "similarity"),
                embeds(2, 3),
                embeds(3, 5),
                ["scores"],
                {"image_embeds": {0: "images"}, "text_embeds": {0: "texts"}, "scores": {0: "images", 1: "texts"}},
            )
        )
    elif model_type == "cmpagl":
        with torch.no_grad():
            pairs = lambda n, seed: {
                "image_tokens": model.encode_images(**_example_images(model, n, image_size))["tokens"],
                **dict(
                    zip(
                        ("text_tokens", "text_attention_mask"),
                        _text_tokens(model, _example_texts(vocab, n, text_length - seed)),
                    )
                ),
            }
            example, check = pairs(2, 0), pairs(check_batch, 3)
        specs.append(
            GraphSpec(
                "score_head",
                _ModelMethod(model, "itm_logits"),
                example,
                check,
                ["itm_logits"],
                {
                    "image_tokens": {0: "pairs"},
                    "text_tokens": {0: "pairs", 1: "text_length"},
                    "text_attention_mask": {0: "pairs", 1: "text_length"},
                    "itm_logits": {0: "pairs"},
                },
            )
        )
    return specs


def graphs_not_exported(model) -> dict[str, str]:
    """Graph name -> why it is not exported, for the parts of `model` that cannot be."""
    if model.config.model_type == "amfmn" and model.config.att_type != "soft_att":
        return {
            "score_head": (
                f"AMFMN's {model.config.att_type!r} gate is scored in "
                "chunks whose number depends on the input sizes, so a "
                "traced graph would be fixed to the export shapes "
                "(only 'soft_att' has a closed form); score in PyTorch"
            )
        }
    return {}


def _text_tokens(model, texts):
    cache = model.encode_texts(**texts)
    return cache["tokens"], cache["attention_mask"]


def _run_torch(spec: GraphSpec, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    with torch.no_grad():
        outputs = spec.module(*inputs.values())
    return list(outputs) if isinstance(outputs, tuple) else [outputs]


def _alternating_median_ms(first, second, repeats: int) -> tuple[float, float]:
    """Median wall time (ms) of two functions timed in alternation (after one warm-up call each),
    so both see the same machine load."""
    times = ([], [])
    for index in range(repeats + 1):
        for function, record in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            function()
            if index:
                record.append(1000 * (time.perf_counter() - start))
    return tuple(sorted(record)[len(record) // 2] for record in times)


def export_graph(
    spec: GraphSpec,
    path: Path,
    opset: int = OPSET,
    tolerance: float = TOLERANCE,
    repeats: int = 0,
    threads: int | None = None,
) -> GraphReport:
    """Export one graph, then check it with onnxruntime on the (larger) check inputs; with
    `repeats`, also time PyTorch and onnxruntime on them (median ms, alternating; onnxruntime
    with `threads` intra-op threads, its default otherwise)."""
    require("onnx", "onnx", "ONNX export")
    ort = require("onnxruntime", "onnx", "checking the exported graphs")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter(
            "ignore", torch.jit.TracerWarning
        )  # shape reads; the batch-3 check catches any baked-in size
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter (see module docstring)
        torch.onnx.export(
            spec.module,
            tuple(spec.inputs.values()),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=list(spec.inputs),
            output_names=spec.outputs,
            dynamic_axes=spec.dynamic_axes,
        )
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {name: value.numpy() for name, value in spec.check_inputs.items()}
    expected = _run_torch(spec, spec.check_inputs)
    produced = session.run(spec.outputs, feed)
    diff = max(float((torch.from_numpy(got) - want).abs().max()) for got, want in zip(produced, expected))
    if not diff <= tolerance:
        raise OnnxExportError(
            f"{spec.name}: onnxruntime differs from PyTorch by {diff:.3g} (> {tolerance:g}) on the check batch"
        )
    axes = {
        name: {str(axis): label for axis, label in named.items()} for name, named in spec.dynamic_axes.items()
    }  # JSON keys
    report = GraphReport(spec.name, path.name, list(spec.inputs), spec.outputs, axes, diff)
    if repeats:
        report.torch_ms, report.onnxruntime_ms = _alternating_median_ms(
            lambda: _run_torch(spec, spec.check_inputs), lambda: session.run(spec.outputs, feed), repeats
        )
    return report


def export_onnx(
    model,
    out_dir: str | Path,
    processor=None,
    *,
    text_length: int = 32,
    opset: int = OPSET,
    repeats: int = 0,
    overwrite: bool = False,
) -> dict:
    """Write the model's ONNX graphs (and the processor, for preprocessing) into `out_dir`, each
    checked against PyTorch; returns the report also written to `onnx_export.json`."""
    model = model.eval()
    image_size = processor.image_processor.size if processor is not None else input_image_size(model.config)
    specs = graph_specs(model, image_size, text_length)
    report = {
        "model_type": model.config.model_type,
        "opset": opset,
        "text_length": text_length,
        "tolerance": TOLERANCE,
        "graphs": [],
        "not_exported": graphs_not_exported(model),
    }

    def fill(folder: Path) -> None:
        for spec in specs:
            report["graphs"].append(asdict(export_graph(spec, folder / f"{spec.name}.onnx", opset, repeats=repeats)))
        if processor is not None:
            processor.save_pretrained(folder)
        (folder / "onnx_export.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    atomic_directory(out_dir, fill, overwrite)
    return report
