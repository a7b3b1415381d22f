"""GaLR processor: AMFMN's image processor and tokenizer plus the local-graph inputs.

GaLR's local branch reads, per image, node features X [num_nodes, node_dim] and an adjacency A
[num_nodes, num_nodes]. Two sources:

* the official DREA files (`*_local.npy`, a pickled dict `{"adj_matrix": {key: A}, "local_rep":
  {key: X}}` with key = file name up to the first "." + ".txt", docs/methods/galr.md#local-graphs). They are read only
  on request (`load_local_features(path, allow_pickle=True)`) and can be re-saved as safetensors
  (`save_local_features`) so later runs never unpickle;
* detector-like object annotations (the `objects` column of rs_synth: category, colour, normalised
  box). Our documented stand-in for DREA: one node per object, largest boxes first (DREA keeps the
  prominent objects), features = [one-hot category | one-hot colour | cx, cy, w, h, area] zero-padded
  to node_dim; A[i, j] = exp(-|c_i - c_j|^2 / (2 sigma^2)) between box centres (self-loops
  included), row-normalised so every node averages its neighbourhood; padded nodes are all zero;
* any other image: an object detector (`local_graph.DetectorGraphExtractor`, zero-shot OWL-ViT
  with the DOTA class names by default), its proposals reduced and laid out the same way with
  per-class scores in place of the one-hot codes. Its settings (`local_graph_extractor`) are saved
  with the processor, so `AutoProcessor` + `AutoModel` give GaLR on any image.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from ...fileio import atomic_file
from ..amfmn_family.family import AMFMNFamilyProcessor
from .local_graph import DetectorGraphExtractor, LocalGraphError, reduce_proposals

GEOMETRY_FEATURES = 5  # cx, cy, w, h, area


def local_feature_key(filename: str) -> str:
    """Key of an image in the official local-feature files: name up to the first "." + ".txt"."""
    return os.path.basename(filename).split(".")[0] + ".txt"


def read_official_local_features(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Unpickle an official `*_local.npy` into {key: (local_rep, adj_matrix)} float32 arrays.

    The file is a pickle: read only files you trust, once, then keep the safetensors copy.
    """
    data = np.load(path, allow_pickle=True)
    data = data[()] if isinstance(data, np.ndarray) and data.dtype == object and data.shape == () else data
    if not isinstance(data, dict) or set(data) != {"adj_matrix", "local_rep"}:
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: expected a dict with keys ['adj_matrix', 'local_rep'], got {got}")
    reps, adjs = data["local_rep"], data["adj_matrix"]
    if set(reps) != set(adjs):
        only = sorted(set(reps) ^ set(adjs))[:5]
        raise ValueError(f"{path}: 'local_rep' and 'adj_matrix' name different images, e.g. {only}")
    return {
        str(k): (np.asarray(reps[k], dtype=np.float32), np.asarray(adjs[k], dtype=np.float32)) for k in sorted(reps)
    }


def save_local_features(table: dict[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike) -> str:
    """Write {key: (local_rep, adj_matrix)} as one safetensors file (atomic)."""
    if not table:
        raise ValueError("no local features to save")
    keys = sorted(table)
    tensors = {
        "local_rep": np.stack([table[k][0] for k in keys]).astype(np.float32),
        "local_adj": np.stack([table[k][1] for k in keys]).astype(np.float32),
    }
    with atomic_file(path) as tmp:
        save_file(tensors, str(tmp), metadata={"keys": json.dumps(keys)})
    return os.fspath(path)


def load_local_features_file(
    path: str | os.PathLike, allow_pickle: bool = False
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{key: (local_rep, adj_matrix)} from our safetensors file or (with `allow_pickle`) an official npy."""
    path = os.fspath(path)
    if path.endswith(".npy"):
        if not allow_pickle:
            raise ValueError(
                f"{path} is an official pickled local-feature file: pass allow_pickle=True to read it (only for "
                "files you trust) and save a safetensors copy with save_local_features"
            )
        return read_official_local_features(path)
    from safetensors import safe_open

    with safe_open(path, framework="np") as handle:
        metadata = handle.metadata() or {}
    if "keys" not in metadata:
        raise ValueError(f"{path}: not a local-feature file written by save_local_features (no 'keys' metadata)")
    keys = json.loads(metadata["keys"])
    arrays = load_file(path)
    return {k: (arrays["local_rep"][i], arrays["local_adj"][i]) for i, k in enumerate(keys)}


class GaLRProcessor(AMFMNFamilyProcessor):
    """GaLR: eval resize 256; train resize 278, rotation U[0, 90], random crop 256; plus the local graph.

    `object_categories` / `object_colors` fix the one-hot layout of object nodes (see
    `object_vocabulary`); they are saved with the processor. Official local-feature tables loaded
    with `load_local_features` are not saved (they are data, not configuration).
    """

    train_rotation_degrees = 90.0

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        num_nodes: int = 20,
        node_dim: int = 20,
        object_categories: Sequence[str] | None = None,
        object_colors: Sequence[str] | None = None,
        adjacency_sigma: float = 0.25,
        local_graph_extractor: dict | None = None,
        **kwargs,
    ):
        self.local_graph_extractor = DetectorGraphExtractor(**(local_graph_extractor or {})).to_dict()
        self._extractor = None
        self.num_nodes = int(num_nodes)
        self.node_dim = int(node_dim)
        self.object_categories = list(object_categories) if object_categories is not None else None
        self.object_colors = list(object_colors) if object_colors is not None else None
        self.adjacency_sigma = float(adjacency_sigma)
        if self.adjacency_sigma <= 0:
            raise ValueError(f"adjacency_sigma must be > 0, got {adjacency_sigma}")
        if self.object_categories is not None and self.object_colors is not None:
            needed = len(self.object_categories) + len(self.object_colors) + GEOMETRY_FEATURES
            if needed > self.node_dim:
                raise ValueError(
                    f"{len(self.object_categories)} categories + "
                    f"{len(self.object_colors)} colours + {GEOMETRY_FEATURES} "
                    f"geometry features need node_dim >= {needed}, got {self.node_dim}"
                )
        self._local_table: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        super().__init__(image_processor, tokenizer, **kwargs)

    @classmethod
    def from_config(
        cls,
        config,
        vocab=None,
        local_features: str | os.PathLike | None = None,
        allow_pickle: bool = False,
        **overrides,
    ):
        """`local_features` (an official `*_local.npy` or a `save_local_features` file) is loaded
        at once, so a training recipe can name it: `processor.options.local_features: PATH`."""
        processor = super().from_config(config, vocab, **overrides)
        if local_features is not None:
            processor.load_local_features(local_features, allow_pickle=allow_pickle)
        return processor

    @classmethod
    def config_arguments(cls, config) -> dict:
        return {"num_nodes": config.num_nodes, "node_dim": config.node_dim}

    @staticmethod
    def object_vocabulary(objects_per_image: Iterable[Sequence[dict]]) -> tuple[list[str], list[str]]:
        """Sorted (categories, colours) found in an `objects` column, for `object_categories/colors`."""
        categories, colors = set(), set()
        for objects in objects_per_image:
            for obj in objects:
                categories.add(obj["category"])
                colors.add(obj["color"])
        return sorted(categories), sorted(colors)

    # --- official DREA tables -------------------------------------------------------------------
    def load_local_features(self, path: str | os.PathLike, allow_pickle: bool = False) -> int:
        """Load an official `*_local.npy` (needs `allow_pickle`) or a `save_local_features` file;
        rows are then looked up by their `filename`. Returns the number of images."""
        table = load_local_features_file(path, allow_pickle)
        for key, (rep, adj) in table.items():
            if rep.shape != (self.num_nodes, self.node_dim) or adj.shape != (self.num_nodes, self.num_nodes):
                raise ValueError(
                    f"{path}: {key} has local_rep {rep.shape} / adj_matrix {adj.shape}; this processor expects "
                    f"({self.num_nodes}, {self.node_dim}) / ({self.num_nodes}, {self.num_nodes})"
                )
        self._local_table = table
        return len(table)

    def _from_table(self, filenames: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        features, adjacency = [], []
        for name in filenames:
            key = local_feature_key(name)
            if key not in self._local_table:
                raise KeyError(f"no local features for image {name!r} (key {key!r}) in the loaded local-feature table")
            features.append(self._local_table[key][0])
            adjacency.append(self._local_table[key][1])
        return np.stack(features), np.stack(adjacency)

    # --- graphs ---------------------------------------------------------------------------------
    def graph_from_nodes(self, descriptors: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(node features [num_nodes, node_dim], adjacency [num_nodes, num_nodes]) of one image from
        its nodes in order (the first `num_nodes` are kept): descriptors [n, k] and normalised
        [x0, y0, x1, y1] boxes [n, 4]. Features = [descriptor | cx, cy, w, h, area], zero-padded."""
        width = descriptors.shape[1] + GEOMETRY_FEATURES
        if width > self.node_dim:
            raise LocalGraphError(
                f"{descriptors.shape[1]} descriptor values + {GEOMETRY_FEATURES} "
                f"geometry features need node_dim >= {width}, got {self.node_dim}"
            )
        features = np.zeros((self.num_nodes, self.node_dim), dtype=np.float32)
        adjacency = np.zeros((self.num_nodes, self.num_nodes), dtype=np.float32)
        count = min(len(boxes), self.num_nodes)
        if not count:
            return features, adjacency
        boxes = np.asarray(boxes[:count], dtype=np.float32)
        sizes, centres = boxes[:, 2:] - boxes[:, :2], (boxes[:, :2] + boxes[:, 2:]) / 2
        features[:count, : descriptors.shape[1]] = descriptors[:count]
        features[:count, descriptors.shape[1] : width] = np.concatenate(
            [centres, sizes, sizes.prod(axis=1, keepdims=True)], axis=1
        )
        weights = np.exp(-((centres[:, None] - centres[None]) ** 2).sum(-1) / (2 * self.adjacency_sigma**2))
        adjacency[:count, :count] = weights / weights.sum(axis=1, keepdims=True)
        return features, adjacency

    # --- object annotations -------------------------------------------------------------------
    def graph_from_objects(self, objects: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
        """(node features [num_nodes, node_dim], adjacency [num_nodes, num_nodes]) of one image:
        one node per object, largest boxes first, descriptor = one-hot category | one-hot colour."""
        if self.object_categories is None or self.object_colors is None:
            raise ValueError(
                "set object_categories and object_colors (see "
                "GaLRProcessor.object_vocabulary) to build graphs from objects"
            )
        num_categories, num_colors = len(self.object_categories), len(self.object_colors)
        if not objects:
            return self.graph_from_nodes(
                np.zeros((0, num_categories + num_colors), np.float32), np.zeros((0, 4), np.float32)
            )
        boxes = np.array([obj["bbox"] for obj in objects], dtype=np.float32).reshape(-1, 4)
        if ((boxes < 0) | (boxes > 1)).any() or (boxes[:, 2:] < boxes[:, :2]).any():
            raise ValueError(
                "object boxes must be normalised [x0, y0, x1, y1] with "
                f"x0 <= x1, y0 <= y1 in [0, 1]; got {boxes.tolist()}"
            )
        order = np.argsort(-(boxes[:, 2:] - boxes[:, :2]).prod(axis=1), kind="stable")[: self.num_nodes]
        descriptors = np.zeros((len(order), num_categories + num_colors), dtype=np.float32)
        for node, index in enumerate(order):
            obj = objects[index]
            for field, names, offset in (
                ("category", self.object_categories, 0),
                ("color", self.object_colors, num_categories),
            ):
                if obj[field] not in names:
                    raise ValueError(
                        f"object {field} {obj[field]!r} is not in the processor's object_{field}s list {names}"
                    )
                descriptors[node, offset + names.index(obj[field])] = 1.0
        return self.graph_from_nodes(descriptors, boxes[order])

    # --- detector -------------------------------------------------------------------------------
    @property
    def extractor(self) -> DetectorGraphExtractor:
        if self._extractor is None:
            self._extractor = DetectorGraphExtractor(**self.local_graph_extractor)
        return self._extractor

    def graphs_from_detector(
        self, images: Sequence, sources: Sequence[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(features [B, num_nodes, node_dim], adjacency [B, num_nodes, num_nodes]) of any images,
        from the detector: proposals reduced by `local_graph.reduce_proposals`, strongest first."""
        rgb = [
            np.asarray(self.image_processor.to_rgb(image, source=sources[i] if sources is not None else None))
            for i, image in enumerate(images)
        ]
        extractor, graphs = self.extractor, []
        for scores, boxes in extractor.detect(rgb):
            kept = reduce_proposals(scores, boxes, extractor.score_threshold, extractor.nms_iou, self.num_nodes)
            graphs.append(self.graph_from_nodes(scores[kept].numpy(), boxes[kept].numpy()))
        return np.stack([g[0] for g in graphs]), np.stack([g[1] for g in graphs])

    def image_inputs(self, rows: dict[str, list], train: bool = False) -> dict[str, torch.Tensor]:
        """pixel_values + local_features + local_adjacency for a batch of dataset rows.

        Uses the rows' `objects` when present, else the loaded official table keyed by `filename`,
        else the detector (`local_graph_extractor`), which works on any image.
        """
        inputs = super().image_inputs(rows, train)
        if rows.get("objects") is not None:
            graphs = [self.graph_from_objects(objects) for objects in rows["objects"]]
            features, adjacency = np.stack([g[0] for g in graphs]), np.stack([g[1] for g in graphs])
        elif self._local_table and rows.get("filename") is not None:
            features, adjacency = self._from_table(rows["filename"])
        else:
            features, adjacency = self.graphs_from_detector(rows["image"], rows.get("filename"))
        inputs["local_features"] = torch.from_numpy(features)
        inputs["local_adjacency"] = torch.from_numpy(adjacency)
        return inputs
