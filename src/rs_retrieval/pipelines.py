"""transformers pipelines for the retrieval models.

* `image-feature-extraction` / `feature-extraction`: `forward` with only images or only texts
  returns the image or text embeddings (any method; GaLR's image side also needs the object
  graph, which the image pipeline cannot pass, so it raises GaLR's error naming the inputs).
* `zero-shot-image-classification`: the pipeline scores one image against the candidate label
  prompts with `logits_per_image` and takes a softmax. Registered by
  `register_method(..., zero_shot=True)` for the methods whose image side is pixels only (AMFMN,
  MSA, CMPAGL). The scores are cosines (CMPAGL: re-ranked), not
  temperature-scaled logits as in CLIP, so the label order is the retrieval order while the
  softmax probabilities stay close to uniform.
"""

from __future__ import annotations

from transformers import AutoModelForZeroShotImageClassification


def register_zero_shot(*model_classes) -> None:
    """Make `pipeline("zero-shot-image-classification", model=...)` load these models."""
    for model_class in model_classes:
        AutoModelForZeroShotImageClassification.register(model_class.config_class, model_class, exist_ok=True)
