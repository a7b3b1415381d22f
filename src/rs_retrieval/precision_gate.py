"""The quality gate of an inference precision: a saved model evaluated at fp32 and at bf16/int8 on
the same split, side by side (`docs/precision.md`). It sits above `evaluation` and `zeroshot`,
whose retrieval and zero-shot evaluations it runs.

A precision passes when its test mR is within `MR_TOLERANCE` points of fp32's; the rows also hold
the cosine between each image's and caption's fp32 embedding and its low-precision one, the
zero-shot top-1 where a class set applies, and the wall time of each run.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from .evaluation.evaluator import encode_dataset, score_matrix
from .evaluation.metrics import retrieval_metrics
from .pretrained import load_model_and_processor

#: Largest |mR - fp32 mR| (points) of a precision that may be offered as a default.
MR_TOLERANCE = 0.5


def _cosines(reference: dict, cache: dict) -> dict[str, float]:
    cosine = F.cosine_similarity(reference["embeds"].float(), cache["embeds"].float(), dim=-1)
    return {"mean": float(cosine.mean()), "min": float(cosine.min())}


def compare_precisions(
    model_path, dataset, precisions=("fp32", "bf16", "int8"), zeroshot_dir=None, class_set=None, batch_size: int = 64
) -> dict:
    """{precision: row} for `dataset` (one split, per-image rows with captions); fp32 comes first
    and is the reference of every other row. With `zeroshot_dir` (an ImageFolder) and `class_set`,
    each row also holds the zero-shot top-1 (%)."""
    precisions = ["fp32", *[p for p in precisions if p != "fp32"]]
    rows, reference = {}, None
    for precision in precisions:
        model, processor = load_model_and_processor(model_path, device="cpu", precision=precision)
        tic = time.perf_counter()
        image_cache, text_cache, text_to_image, texts = encode_dataset(
            model, processor, dataset, batch_size, progress=False
        )
        metrics = retrieval_metrics(score_matrix(model, image_cache, text_cache), text_to_image, texts=texts)
        row = {
            "seconds": round(time.perf_counter() - tic, 2),
            **{k: v for k, v in metrics.items() if "_R@" in k or k == "mR"},
        }
        if reference is None:
            reference = (image_cache, text_cache, metrics["mR"])
        else:
            row["image_cosine"], row["text_cosine"] = (
                _cosines(reference[0], image_cache),
                _cosines(reference[1], text_cache),
            )
            row["mR_change"] = row["mR"] - reference[2]
            row["gate"] = abs(row["mR_change"]) <= MR_TOLERANCE
        if zeroshot_dir is not None:
            from .zeroshot.evaluate import evaluate_zero_shot

            with torch.inference_mode():
                row["zeroshot_top1"] = evaluate_zero_shot(
                    model, processor, zeroshot_dir, class_set, batch_size=batch_size, progress=False
                )["top1"]
        rows[precision] = row
    return rows
