"""Zero-shot scene classification with any retrieval model (our methods and CLIP-family models).

Every class becomes texts through the prompt templates; the texts are encoded once per
classifier (the "text classifier", cached) and images are scored against them through the model
contract (`encode_images`/`encode_texts`/`score`).

How templates are combined (docs/clip-zeroshot.md#zero-shot-scene-classification):
* plain dual encoders (cosine `score` on one embedding, e.g. CLIP, MSA): the class embedding is
  the mean of the L2-normalised template embeddings, renormalised (open_clip, CLIP_benchmark;
  `rule="normalize_then_mean"`), or GeoRSCLIP's mean of the raw embeddings, normalised
  (`rule="mean_then_normalize"`); the logit is the cosine with that embedding;
* pair-dependent scorers (AMFMN's gate, GaLR's fusion, CMPAGL's re-rank), where an averaged text
  embedding means nothing: the logit is the mean score over the class's templates.
Logits are multiplied by the model's `logit_scale.exp()` when it has one (CLIP), else by 100
(CLIP's usual value), before the softmax; the scale never changes the ranking.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from ..evaluation.evaluator import _to_model
from ..models.clip import as_retrieval_model, as_retrieval_processor
from ..models.common.base import RetrievalPreTrainedModel
from .class_sets import ClassSet, ClassSetError, load_class_set

RULES = ("normalize_then_mean", "mean_then_normalize")
#: Softmax scale for models without a learned temperature.
DEFAULT_LOGIT_SCALE = 100.0


def _move(inputs: dict, model) -> dict:
    return _to_model(inputs, model.device, model.dtype)


def _as_images(images) -> list:
    """A list of PIL images, arrays or file paths (as strings: the processor reads them, by the
    `rs_retrieval.imagery` rule, and names a file it cannot read)."""
    if isinstance(images, (Image.Image, str, os.PathLike)) or getattr(images, "ndim", 0) == 3:
        images = [images]
    return [os.fspath(image) if isinstance(image, os.PathLike) else image for image in images]


def averages_embeddings(model) -> bool:
    """True when `model.score` is the base cosine on one `embeds` tensor, so templates can be
    averaged in embedding space (a pair-dependent scorer is averaged in score space instead)."""
    cls = type(model)
    return (
        cls.score is RetrievalPreTrainedModel.score
        and cls.similarity is RetrievalPreTrainedModel.similarity
        and tuple(model.image_cache_keys) == ("embeds",)
        and tuple(model.text_cache_keys) == ("embeds",)
    )


def combine_templates(embeds: torch.Tensor, rule: str = "normalize_then_mean") -> torch.Tensor:
    """[C, T, D] template embeddings -> [C, D] unit class embeddings."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if rule == "normalize_then_mean":
        embeds = F.normalize(embeds, dim=-1)
    return F.normalize(embeds.mean(dim=1), dim=-1)


class ZeroShotClassifier:
    """Classify images into `class_set` (a `ClassSet`, a packaged name or a class file).

    `model`/`processor`: any retrieval model of this package or a transformers `CLIPModel` /
    `SiglipModel` with its processor. The text classifier is built on first use and kept.
    """

    def __init__(
        self,
        model,
        processor,
        class_set: ClassSet | str | os.PathLike,
        rule: str = "normalize_then_mean",
        batch_size: int = 64,
    ):
        if rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = as_retrieval_model(model)
        self.processor = as_retrieval_processor(processor)
        self.class_set = class_set if isinstance(class_set, ClassSet) else load_class_set(class_set)
        self.rule = rule
        self.batch_size = batch_size
        self._text_classifier: dict[str, torch.Tensor] | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        return self.class_set.classes

    @property
    def logit_scale(self) -> float:
        scale = getattr(self.model, "logit_scale", None)
        return float(scale.detach().exp()) if isinstance(scale, torch.Tensor) else DEFAULT_LOGIT_SCALE

    @torch.no_grad()
    def text_classifier(self) -> dict[str, torch.Tensor]:
        """The encoded classes: `{"embeds": [C, D]}` for plain dual encoders, otherwise the
        model's text cache of all C x T prompts (class-major). Built once."""
        if self._text_classifier is None:
            self.model.eval()
            texts = [text for prompts in self.class_set.prompts() for text in prompts]
            parts: dict[str, list] = {key: [] for key in self.model.text_cache_keys}
            for start in range(0, len(texts), self.batch_size):
                outputs = self.model.encode_texts(
                    **_move(self.processor.text_inputs(texts[start : start + self.batch_size]), self.model)
                )
                for key in parts:
                    parts[key].append(outputs[key])
            cache = {key: torch.cat(values) for key, values in parts.items()}
            if averages_embeddings(self.model):
                num_classes, num_templates = len(self.class_set.classes), len(self.class_set.templates)
                cache = {
                    "embeds": combine_templates(
                        cache["embeds"].float().view(num_classes, num_templates, -1), self.rule
                    )
                }
            self._text_classifier = cache
        return self._text_classifier

    @torch.no_grad()
    def encode_images(self, images) -> dict[str, torch.Tensor]:
        """The model's image cache for images (PIL images or paths), in batches."""
        images = _as_images(images)
        if not images:
            raise ClassSetError("no images to classify")
        self.model.eval()
        parts: dict[str, list] = {key: [] for key in self.model.image_cache_keys}
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size]
            sources = [image if isinstance(image, str) else None for image in batch]
            inputs = self.processor.image_inputs({"image": batch, "filename": sources}, train=False)
            outputs = self.model.encode_images(**_move(inputs, self.model))
            for key in parts:
                parts[key].append(outputs[key])
        return {key: torch.cat(values) for key, values in parts.items()}

    @torch.no_grad()
    def logits_from_cache(self, image_cache: dict[str, torch.Tensor]) -> torch.Tensor:
        """[N, C] scaled logits for cached image encodings (see the module docstring)."""
        classifier = self.text_classifier()
        if averages_embeddings(self.model):
            return self.logit_scale * self.model.score({"embeds": image_cache["embeds"].float()}, classifier)
        scores = self.model.score(image_cache, classifier).float()
        scores = scores.view(len(scores), len(self.class_set.classes), len(self.class_set.templates)).mean(dim=-1)
        return self.logit_scale * scores

    def logits(self, images) -> torch.Tensor:
        return self.logits_from_cache(self.encode_images(images))

    def predict_proba(self, images) -> torch.Tensor:
        """[N, C] class probabilities (softmax of the scaled logits), on the CPU."""
        return self.logits(images).softmax(dim=-1).cpu()

    def predict(self, images) -> list[str]:
        return [self.class_set.classes[i] for i in self.predict_proba(images).argmax(dim=-1).tolist()]

    def top_k(self, images, k: int = 5) -> list[list[tuple[str, float]]]:
        """Per image: the `k` most probable classes with their probabilities, best first."""
        return top_k_from_proba(self.predict_proba(images), self.class_set.classes, k)


def top_k_from_proba(proba: torch.Tensor, classes: Sequence[str], k: int = 5) -> list[list[tuple[str, float]]]:
    """Per row of `proba` [N, C]: the `k` best (class, probability) pairs, best first."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    values, indices = proba.topk(min(k, proba.shape[-1]), dim=-1)
    return [
        [(classes[i], float(v)) for v, i in zip(row_v.tolist(), row_i.tolist())]
        for row_v, row_i in zip(values, indices)
    ]
