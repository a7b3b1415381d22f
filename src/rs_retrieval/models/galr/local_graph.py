"""GaLR local graphs for any image, from a `transformers` object detector.

The official local graphs came from a PaddlePaddle detector trained on DOTA plus an unreleased
reduction (DREA, docs/methods/galr.md#local-graphs), so they exist only for the released RSITMD/RSICD images. This is
our documented reconstruction, used for every other image:

1. a detector proposes boxes with a score per class: zero-shot OWL-ViT / OWLv2 queried with the 15
   DOTA-v1.0 class names (default `google/owlvit-base-patch32`), or any closed-set
   `AutoModelForObjectDetection` (DETR family; its own labels are the classes);
2. "merge and reduce" (DREA's de-noising): proposals whose best class score is below
   `score_threshold` are dropped, overlapping ones (IoU > `nms_iou`) merged into the strongest
   (class-agnostic NMS), and the `num_nodes` strongest kept, strongest first;
3. node features = [per-class scores | cx, cy, w, h, area] (15 + 5 = 20 for DOTA, the size of the
   official files), zero-padded to `node_dim`; the adjacency is GaLR's object-graph rule
   (`GaLRProcessor.graph_from_nodes`: Gaussian of box-centre distance, row-normalised).

The settings are saved in the processor config (`local_graph_extractor`); the detector itself is
referenced by Hub id or folder and loaded on first use.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ...errors import RSRetrievalError

#: DOTA-v1.0 classes: the detector of the official GaLR graphs was trained on DOTA.
DOTA_CLASSES = (
    "plane",
    "ship",
    "storage tank",
    "baseball diamond",
    "tennis court",
    "basketball court",
    "ground track field",
    "harbor",
    "bridge",
    "large vehicle",
    "small vehicle",
    "helicopter",
    "roundabout",
    "soccer ball field",
    "swimming pool",
)
DEFAULT_DETECTOR = "google/owlvit-base-patch32"
ZERO_SHOT_TYPES = ("owlvit", "owlv2")


class LocalGraphError(RSRetrievalError, RuntimeError):
    """No local graph can be built (detector unavailable, or its classes do not fit node_dim)."""


def box_iou(box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """IoU of one [x0, y0, x1, y1] box with each of `boxes` [N, 4]."""
    top_left = torch.maximum(box[:2], boxes[:, :2])
    bottom_right = torch.minimum(box[2:], boxes[:, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=1)
    area = (box[2:] - box[:2]).prod()
    areas = (boxes[:, 2:] - boxes[:, :2]).prod(dim=1)
    return inter / (area + areas - inter).clamp(min=1e-12)


def reduce_proposals(
    class_scores: torch.Tensor, boxes: torch.Tensor, score_threshold: float, nms_iou: float, max_nodes: int
) -> torch.Tensor:
    """Indices of the kept proposals of one image, strongest first (threshold, NMS, top `max_nodes`).

    `class_scores` [P, C] in [0, 1], `boxes` [P, 4] as normalised [x0, y0, x1, y1].
    """
    strength = class_scores.max(dim=1).values
    candidates = torch.nonzero(strength >= score_threshold).flatten()
    candidates = candidates[torch.argsort(strength[candidates], descending=True, stable=True)]
    kept = []
    while len(candidates) and len(kept) < max_nodes:
        best, candidates = candidates[0], candidates[1:]
        kept.append(int(best))
        candidates = candidates[box_iou(boxes[best], boxes[candidates]) <= nms_iou]
    return torch.tensor(kept, dtype=torch.long)


class DetectorGraphExtractor:
    """Images (RGB uint8) -> per-image node descriptors from a transformers object detector."""

    def __init__(
        self,
        detector: str = DEFAULT_DETECTOR,
        class_names: Sequence[str] | None = None,
        score_threshold: float = 0.1,
        nms_iou: float = 0.5,
        device: str | None = None,
    ):
        self.detector = str(detector)
        self.class_names = list(class_names) if class_names is not None else None
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.device = device
        self._loaded = None

    def to_dict(self) -> dict:
        """The settings saved in the processor config."""
        return {
            "detector": self.detector,
            "class_names": self.class_names,
            "score_threshold": self.score_threshold,
            "nms_iou": self.nms_iou,
        }

    def _load(self):
        if self._loaded is None:
            from transformers import (
                AutoConfig,
                AutoModelForObjectDetection,
                AutoModelForZeroShotObjectDetection,
                AutoProcessor,
            )

            try:
                config = AutoConfig.from_pretrained(self.detector)
                zero_shot = config.model_type in ZERO_SHOT_TYPES
                model_class = AutoModelForZeroShotObjectDetection if zero_shot else AutoModelForObjectDetection
                model = model_class.from_pretrained(self.detector).eval()
                processor = AutoProcessor.from_pretrained(self.detector)
            except (OSError, ValueError) as err:
                raise LocalGraphError(
                    "GaLR builds local graphs with the detector "
                    f"{self.detector!r}, which could not be loaded ({err}). "
                    "Download it (or pass a local detector folder as "
                    "local_graph_extractor={'detector': PATH}), or give "
                    "the images' graphs another way: an `objects` column or GaLRProcessor.load_local_features"
                ) from err
            if self.device:
                model.to(self.device)
            if zero_shot:
                classes = self.class_names or list(DOTA_CLASSES)
            else:
                labels = dict(sorted(model.config.id2label.items()))
                classes = [labels[i] for i in range(len(labels))]
                if self.class_names is not None and self.class_names != classes:
                    raise LocalGraphError(
                        f"{self.detector} is a closed-set detector with classes "
                        f"{classes}; class_names {self.class_names} do not apply"
                    )
            self._loaded = (model, processor, zero_shot, classes)
        return self._loaded

    @property
    def classes(self) -> list[str]:
        return self._load()[3]

    @torch.no_grad()
    def detect(self, images: Sequence[np.ndarray]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per image: (class scores [P, C] in [0, 1], boxes [P, 4] normalised [x0, y0, x1, y1])."""
        model, processor, zero_shot, classes = self._load()
        device = next(model.parameters()).device
        if zero_shot:
            inputs = processor(text=[classes] * len(images), images=list(images), return_tensors="pt")
            outputs = model(**{k: v.to(device) for k, v in inputs.items()})
            scores = outputs.logits.sigmoid()
        else:
            inputs = processor(images=list(images), return_tensors="pt")
            outputs = model(**{k: v.to(device) for k, v in inputs.items()})
            scores = outputs.logits.softmax(-1)[..., : len(classes)]  # the last logit is "no object"
        centre, size = outputs.pred_boxes[..., :2].float(), outputs.pred_boxes[..., 2:].float()
        if model.config.model_type == "owlv2":  # OWLv2 pads to a square at the bottom/right: boxes are relative to it
            heights = torch.tensor([image.shape[0] for image in images], dtype=torch.float32, device=device)
            widths = torch.tensor([image.shape[1] for image in images], dtype=torch.float32, device=device)
            side = torch.maximum(heights, widths)
            scale = torch.stack([side / widths, side / heights], dim=-1)[:, None, :]
            centre, size = centre * scale, size * scale
        boxes = torch.cat([centre - size / 2, centre + size / 2], dim=-1).clamp(0, 1)
        return [(scores[i].float().cpu(), boxes[i].cpu()) for i in range(len(images))]
