"""The per-image schema shared by every dataset of the package, and the record type readers produce.

One row per image: `image` (paths, decoded lazily), `filename`, `image_id` (position in release
order), `captions` (exactly five, release order, blank ones kept), `scene` (ClassLabel),
`keywords`; the synthetic dataset adds `objects`. `datasets` is imported inside functions so that
`import rs_retrieval` stays light.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets

CAPTIONS_PER_IMAGE = 5
#: Scene of an image whose file name carries no class (UCM `12.tif`, RSICD `00001.jpg`).
UNKNOWN_SCENE = "unknown"
_SCENE_PREFIX = re.compile(r"^(?P<scene>[A-Za-z][A-Za-z0-9 -]*?)_\d+$")


def scene_from_filename(filename: str) -> str:
    """`boat_0.tif` -> `boat`; a name without a `<class>_<number>` stem -> `unknown`.

    UCM-Captions (`1.tif` ... `2100.tif`) and the 921 bare-number RSICD files get `unknown`: the
    UCM "100 consecutive ids per class" rule is unverified, so no class is invented for them.
    """
    match = _SCENE_PREFIX.match(Path(filename).stem)
    return match.group("scene").lower() if match else UNKNOWN_SCENE


@dataclass
class ImageRecord:
    """One image of a source as read from disk, before it becomes a dataset row."""

    filename: str
    captions: list[str]
    image_id: int
    keywords: list[str] = field(default_factory=list)
    objects: list[dict[str, Any]] | None = None
    #: The scene class where the release states it (NWPU-Captions); else read from the file name.
    category: str | None = None

    @property
    def scene(self) -> str:
        return self.category or scene_from_filename(self.filename)


def image_features(
    scene_names: list[str], with_objects: bool = False, captions_per_image: int = CAPTIONS_PER_IMAGE
) -> datasets.Features:
    import datasets

    features = {
        "image": datasets.Image(),
        "filename": datasets.Value("string"),
        "image_id": datasets.Value("int32"),
        "captions": datasets.List(datasets.Value("string"), length=captions_per_image),
        "scene": datasets.ClassLabel(names=list(scene_names)),
        "keywords": datasets.List(datasets.Value("string")),
    }
    if with_objects:
        features["objects"] = datasets.List(
            {
                "category": datasets.Value("string"),
                "color": datasets.Value("string"),
                "bbox": datasets.List(datasets.Value("float32"), length=4),
            }
        )
    return datasets.Features(features)


def records_to_dataset(
    records: list[ImageRecord],
    image_dir: Path,
    scene_names: list[str],
    split: str,
    provenance: dict[str, Any],
    card: dict[str, str],
    with_objects: bool = False,
    captions_per_image: int = CAPTIONS_PER_IMAGE,
) -> datasets.Dataset:
    """Build the in-memory Arrow table of one split (paths only; images stay on disk)."""
    import datasets

    scene_index = {name: i for i, name in enumerate(scene_names)}
    columns: dict[str, list] = {
        "image": [str(image_dir / r.filename) for r in records],
        "filename": [r.filename for r in records],
        "image_id": [r.image_id for r in records],
        "captions": [r.captions for r in records],
        "scene": [scene_index[r.scene] for r in records],
        "keywords": [r.keywords for r in records],
    }
    if with_objects:
        columns["objects"] = [r.objects or [] for r in records]
    features = image_features(scene_names, with_objects, captions_per_image)
    info = datasets.DatasetInfo(
        description=json.dumps({**provenance, "split": split}),
        features=features,
        citation=card.get("citation", ""),
        homepage=card.get("homepage", ""),
        license=card.get("license", ""),
    )
    return datasets.Dataset.from_dict(columns, features=features, info=info, split=datasets.NamedSplit(split))


def split_info(dataset: datasets.Dataset | datasets.DatasetDict) -> dict[str, Any]:
    """Where a split came from: dataset, source layout, folder, and any seeded train/val re-split.

    The record lives in `Dataset.info.description` (JSON) so it travels with `save_to_disk`.
    For a `DatasetDict`, returns `{split: record}`.
    """
    if hasattr(dataset, "keys"):
        return {name: split_info(ds) for name, ds in dataset.items()}
    try:
        record = json.loads(dataset.info.description or "{}")
    except json.JSONDecodeError:
        record = None
    return record if isinstance(record, dict) else {"description": dataset.info.description}
