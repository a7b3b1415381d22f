"""Inference precision of a loaded retrieval model: fp32, bf16 (PyTorch) or int8 (ONNX Runtime).

`with_precision(model, "bf16" | "int8", processor)` returns a `PrecisionModel`
(`models/common/low_precision.py`): the same retrieval
contract (`encode_images`, `encode_texts`, `score`, the model's config and cache keys), taking the
processor's float32 inputs and returning float32 caches, so evaluators, search, the index and
zero-shot classification run unchanged. Its `precision` enters `search.folder_search.model_fingerprint`,
so encodings cached at one precision are never read at another.

* bf16: the weights are cast to bfloat16 (CPUs with AVX512-BF16/AMX, CUDA GPUs). Cosine scores are
  computed in float32 from the float32 caches; pair-dependent scores (AMFMN's gate, CMPAGL's
  fusion) run in bf16 on the cached encodings and are returned as float32.
* int8: the image and text encoders are exported to ONNX (`export.onnx`) and quantized with ONNX
  Runtime's dynamic quantization: int8 weights of every MatMul/Gemm/Conv, activations quantized per
  batch at run time. Dynamic rather than static, because static quantization needs a calibration set
  per model and domain and fixes activation ranges from it, while the transformer towers' activation
  ranges vary with every image; dynamic quantization needs no data and keeps the accuracy (see
  `docs/precision.md`). The quantized graphs are cached per model fingerprint under
  `$RS_RETRIEVAL_CACHE/int8`. AMFMN/GaLR keep their skip-thought text encoder in PyTorch float32: the
  exported GRU is unrolled over a fixed text length and runs every step for every caption, slower
  than the packed PyTorch loop. Scoring stays in PyTorch float32.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from .errors import OutputExistsError, RSRetrievalError
from .runtime import bf16_supported

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "int8")
#: ONNX operator types whose weights int8 quantization stores as int8.
INT8_OPS = ("MatMul", "Gemm", "Conv")
#: Text length of the exported text graph's example inputs (the graph takes any length).
EXPORT_TEXT_LENGTH = 16


class PrecisionError(RSRetrievalError, ValueError):
    """A precision that is unknown or not available for this model or device (the message says why)."""


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise PrecisionError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def model_precision(model) -> str:
    """The precision a loaded model encodes at ("fp32" for a plain model)."""
    from .models.common.low_precision import PrecisionModel

    return model.precision if isinstance(model, PrecisionModel) else "fp32"


def int8_cache_dir() -> Path:
    """`$RS_RETRIEVAL_CACHE/int8`, beside the search cache."""
    from .search.folder_search import default_cache_dir

    return default_cache_dir().parent / "int8"


def with_precision(model, precision: str, processor=None, cache_dir: str | Path | None = None):
    """`model` itself for fp32, else a `PrecisionModel` that encodes at `precision` (see module docstring)."""
    import torch

    from .models.common.low_precision import PrecisionModel

    check_precision(precision)
    if precision == "fp32" or model_precision(model) == precision:
        return model
    if isinstance(model, PrecisionModel):
        raise PrecisionError(f"the model already runs at {model.precision}; load it again for {precision}")
    if precision == "bf16":
        if not bf16_supported(model.device.type):
            logger.warning(
                "this %s has no bf16 arithmetic: PyTorch emulates bf16, slower than fp32", model.device.type
            )
        return PrecisionModel(model.to(torch.bfloat16), "bf16")
    if model.device.type != "cpu":
        raise PrecisionError(
            "int8 runs on the CPU through ONNX Runtime, the model "
            f"is on {model.device}; use --device cpu, or bf16 on a GPU"
        )
    return PrecisionModel(
        model, "int8", _int8_sessions(model, processor, Path(cache_dir) if cache_dir else int8_cache_dir())
    )


def _int8_sessions(model, processor, cache_root: Path) -> dict:
    """ONNX Runtime sessions of the int8 encoders, quantized once per model fingerprint."""
    import torch

    from .export.onnx import export_graph, graph_specs
    from .fileio import atomic_directory
    from .models.common.processing import input_image_size
    from .optional import require
    from .search.folder_search import model_fingerprint

    ort = require("onnxruntime", "onnx", "int8 inference")
    require("onnx", "onnx", "int8 inference")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The packed skip-thought GRU (AMFMN, GaLR) stays in PyTorch (module docstring).
    names = ("image_encoder",) if hasattr(model, "text_feature") else ("image_encoder", "text_encoder")
    folder = cache_root / model_fingerprint(model, processor)

    def fill(work: Path) -> None:
        logger.warning("quantizing %s's encoders to int8 (once per model; cached in %s)", type(model).__name__, folder)
        specs = [
            s for s in graph_specs(model.eval(), input_image_size(model.config), EXPORT_TEXT_LENGTH) if s.name in names
        ]
        for spec in specs:
            float_graph = work / f"{spec.name}.fp32.onnx"
            with warnings.catch_warnings():
                warnings.simplefilter(
                    "ignore", UserWarning
                )  # the exporter's notes on traced indexing; parity is checked there
                export_graph(spec, float_graph)
            quantize_dynamic(
                float_graph,
                work / f"{spec.name}.onnx",
                weight_type=QuantType.QInt8,
                op_types_to_quantize=list(INT8_OPS),
            )
            float_graph.unlink()

    if not all((folder / f"{name}.onnx").is_file() for name in names):
        try:
            atomic_directory(folder, fill, overwrite=folder.exists())
        except OutputExistsError:  # another process finished it first
            pass
        except (RuntimeError, ValueError, TypeError, AttributeError) as err:
            raise PrecisionError(
                f"int8 is not available for {type(model).__name__}: its "
                f"encoders do not export to ONNX ({err}); use fp32 or bf16"
            ) from err
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3
    return {
        name: ort.InferenceSession(str(folder / f"{name}.onnx"), options, providers=["CPUExecutionProvider"])
        for name in names
    }
