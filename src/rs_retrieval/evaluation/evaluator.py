"""Run a retrieval model over a per-image dataset and score it (docs/evaluation.md).

Each image is encoded once and each caption once; the score matrix is built from the cached
encoder outputs with `model.score`, in blocks of text columns so pair-dependent scorers
(AMFMN's gate, GaLR's fusion) stay within memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from tqdm.auto import tqdm

from ..data.views import rows_naming_bad_images, warn_blank_captions
from .metrics import retrieval_metrics
from .protocols import DEFAULT_PROTOCOL, get_protocol
from .rerank import RERANKERS, apply_rerank

#: Text columns scored per `model.score` call.
SCORE_CHUNK_SIZE = 4096


def _to_model(inputs: Mapping, device: torch.device, dtype: torch.dtype) -> dict:
    """Move tensors to the model's device; floating tensors to its dtype."""
    moved = {}
    for key, value in inputs.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device=device, dtype=dtype if value.is_floating_point() else None)
        moved[key] = value
    return moved


def _cache_parts(outputs: Mapping, keys: Sequence[str], parts: dict[str, list], side: str) -> None:
    missing = [key for key in keys if key not in outputs]
    if missing:
        raise KeyError(
            f"encode_{side}s returned {sorted(outputs)}, but the model's {side}_cache_keys also need {missing}"
        )
    for key in keys:
        parts[key].append(outputs[key])


def _concatenate(parts: dict[str, list], side: str) -> dict[str, torch.Tensor]:
    cache = {}
    for key, tensors in parts.items():
        shapes = {tuple(t.shape[1:]) for t in tensors}
        if len(shapes) > 1:
            raise ValueError(
                f"{side} cache {key!r} has different per-batch shapes {sorted(shapes)}; "
                "token-level caches need a fixed text length (set the processor's max_text_length)"
            )
        cache[key] = torch.cat(tensors)
    return cache


def _check_captions(captions, first_row: int) -> None:
    for offset, row in enumerate(captions):
        if not isinstance(row, (list, tuple)) or not row or not all(isinstance(text, str) for text in row):
            raise ValueError(
                f"dataset row {first_row + offset}: 'captions' must be a non-empty list of strings, got {row!r}"
            )


def encode_dataset(
    model, processor, dataset, batch_size: int = 64, device=None, progress: bool = True, prepare_caption=None
):
    """Encode every image and caption of a per-image dataset once.

    Args:
        model: a `RetrievalPreTrainedModel` (encode_images / encode_texts / score, cache keys).
        processor: its `RetrievalProcessor`; `image_inputs(rows, train=False)` receives every column
            of the batch (e.g. GaLR's `objects`), `text_inputs(captions)` a list of captions.
        dataset: a `datasets.Dataset` with one row per image: `image` and `captions` (list of str).
        device: where to run the model (default: where it is); caches stay there.
        prepare_caption: applied to every caption before it is encoded (a protocol's, e.g.
            SkyScript's prefix); the returned texts are the prepared ones.

    Returns:
        (image_cache, text_cache, text_to_image, texts): the model's cached outputs (keys
        `image_cache_keys` / `text_cache_keys`, first dim = image / caption), the image index of
        every caption (LongTensor) and the captions in dataset order (image by image).
    """
    missing = {"image", "captions"} - set(dataset.column_names)
    if missing:
        raise ValueError(f"dataset lacks column(s) {sorted(missing)}; it has {dataset.column_names}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if device is not None:
        model.to(device)
    device, dtype = model.device, model.dtype
    model.eval()
    image_parts = {key: [] for key in model.image_cache_keys}
    text_parts = {key: [] for key in model.text_cache_keys}
    texts, text_to_image = [], []
    with torch.inference_mode():
        for start in tqdm(range(0, len(dataset), batch_size), desc="images", unit="batch", disable=not progress):
            rows = rows_naming_bad_images(dataset, slice(start, start + batch_size))
            _check_captions(rows["captions"], start)
            outputs = model.encode_images(**_to_model(processor.image_inputs(rows, train=False), device, dtype))
            _cache_parts(outputs, model.image_cache_keys, image_parts, "image")
            for offset, captions in enumerate(rows["captions"]):
                texts.extend(captions if prepare_caption is None else map(prepare_caption, captions))
                text_to_image.extend([start + offset] * len(captions))
        for start in tqdm(range(0, len(texts), batch_size), desc="texts", unit="batch", disable=not progress):
            outputs = model.encode_texts(
                **_to_model(processor.text_inputs(texts[start : start + batch_size]), device, dtype)
            )
            _cache_parts(outputs, model.text_cache_keys, text_parts, "text")
    if not texts:
        raise ValueError("dataset has no rows")
    return (
        _concatenate(image_parts, "image"),
        _concatenate(text_parts, "text"),
        torch.tensor(text_to_image, dtype=torch.long),
        texts,
    )


def score_matrix(
    model,
    image_cache: Mapping[str, torch.Tensor],
    text_cache: Mapping[str, torch.Tensor],
    chunk_size: int = SCORE_CHUNK_SIZE,
) -> torch.Tensor:
    """`model.score` over all cached images x texts, in blocks of `chunk_size` text columns
    (one block for models whose score is not blockwise, e.g. CMPAGL's top-k re-rank).

    Low-precision scores (fp16/bf16) are stored as float32 so that rounding adds no ties.
    """
    n_img = len(next(iter(image_cache.values())))
    n_txt = len(next(iter(text_cache.values())))
    if not getattr(model, "score_is_blockwise", True):
        chunk_size = max(n_txt, 1)
    sim = None
    with torch.inference_mode():
        for start in range(0, n_txt, chunk_size):
            stop = min(start + chunk_size, n_txt)
            block = model.score(image_cache, {key: value[start:stop] for key, value in text_cache.items()})
            if tuple(block.shape) != (n_img, stop - start):
                raise ValueError(
                    f"{type(model).__name__}.score returned shape "
                    f"{tuple(block.shape)} for {n_img} images x {stop - start} texts"
                )
            if sim is None:
                sim = torch.empty(
                    n_img, n_txt, dtype=torch.promote_types(block.dtype, torch.float32), device=block.device
                )
            sim[:, start:stop] = block
    return sim


def evaluate_retrieval(
    model,
    processor,
    dataset,
    rerank: Sequence[str] = ("none",),
    batch_size: int = 64,
    device=None,
    progress: bool = True,
    score_chunk_size: int = SCORE_CHUNK_SIZE,
    rerank_params: Mapping[str, Mapping] | None = None,
    protocol: str = DEFAULT_PROTOCOL,
    image_key_column: str = "filename",
    **metric_kwargs,
) -> dict[str, dict]:
    """Encode `dataset`, score it and compute `retrieval_metrics` for each re-ranker in `rerank`.

    `rerank_params` maps a re-ranker name to its keyword parameters. The `protocol` decides how
    captions are prepared before encoding and, where it merges images, reads their keys from
    `image_key_column`; `metric_kwargs` go to `retrieval_metrics` (ks, tie_policy, image_keys,
    chunk_size); the captions are passed as `texts`. Returns `{rerank name: metrics}`.
    """
    rerank_params = dict(rerank_params or {})
    unknown = [name for name in [*rerank, *rerank_params] if name not in RERANKERS]
    if unknown:
        raise ValueError(f"unknown re-ranker(s) {unknown}; choose from {sorted(RERANKERS)}")
    spec = get_protocol(protocol)
    if spec.needs_image_keys and "image_keys" not in metric_kwargs:
        if image_key_column not in dataset.column_names:
            raise ValueError(
                f"protocol {protocol!r} merges images by key: column "
                f"{image_key_column!r} is not in the dataset ({dataset.column_names})"
            )
        metric_kwargs["image_keys"] = list(dataset[image_key_column])
    image_cache, text_cache, text_to_image, texts = encode_dataset(
        model, processor, dataset, batch_size, device, progress, spec.prepare_caption
    )
    warn_blank_captions(texts, "the evaluated split")
    sim = score_matrix(model, image_cache, text_cache, score_chunk_size)
    results = {}
    for name in rerank:
        scores = apply_rerank(sim, name, **rerank_params.get(name, {}))
        results[name] = retrieval_metrics(
            scores.i2t, text_to_image, t2i_sim=scores.t2i, texts=texts, protocol=protocol, **metric_kwargs
        )
    return results
