"""Training data: dataset splits, the per-caption loader, and reproducible order + augmentation.

Reproducibility does not rely on global RNG state: the caption order of epoch e is a permutation
seeded by (seed, e), and the augmentation of a batch is seeded by (seed, e, the batch's rows).
An interrupted run resumed with `skip_first_batches` therefore sees exactly the same batches
and the same augmented pixels as an uninterrupted one, whatever was prefetched before the stop.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from ..fileio import write_json_atomic
from .recipe import DataSpec, RecipeError

#: Flat (one row per caption) columns the collator needs.
FLAT_COLUMNS = ("image", "caption", "image_index", "caption_index")


def _seed_from(*values: int) -> int:
    return int(np.random.SeedSequence([int(v) for v in values]).generate_state(1)[0])


class EpochShuffleSampler(Sampler[int]):
    """A fresh permutation of `num_rows` per epoch, a pure function of (seed, epoch)."""

    def __init__(self, num_rows: int, seed: int):
        self.num_rows = num_rows
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_rows

    def __iter__(self):
        generator = torch.Generator().manual_seed(_seed_from(self.seed, self.epoch))
        return iter(torch.randperm(self.num_rows, generator=generator).tolist())


@contextlib.contextmanager
def seeded_rngs(seed: int):
    """Seed Python, NumPy and torch RNGs inside the block and restore their previous states after it."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


class TrainCollator:
    """Rows of the flat caption view -> model inputs, with training augmentation (`train=True`).

    `image_ids` (the image index of each caption) lets losses skip same-image false negatives.
    Loss inputs the model declares (`loss_input_names`) are added when the data has them:
    `scene_ids` (the scene class) for scene-level loss terms, and `prior_similarity` [B, B] (the
    caption prior of image i against caption j, from `caption_prior`) for the dynamic margin.
    """

    def __init__(self, processor, seed: int, loss_input_names=(), caption_prior=None, captions_per_image: int = 5):
        self.processor = processor
        self.seed = seed
        self.epoch = 0
        self.loss_input_names = tuple(loss_input_names)
        self.caption_prior = caption_prior
        self.captions_per_image = captions_per_image

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        columns = {key: [row[key] for row in rows] for key in rows[0]}
        image_ids = columns["image_index"]
        with seeded_rngs(_seed_from(self.seed, self.epoch, *image_ids, *columns["caption_index"])):
            batch = dict(self.processor.image_inputs(columns, train=True))
        batch.update(self.processor.text_inputs(columns["caption"]))
        batch["image_ids"] = torch.tensor(image_ids, dtype=torch.long)
        if "scene_ids" in self.loss_input_names and all(
            isinstance(scene, int) for scene in columns.get("scene", [None])
        ):
            batch["scene_ids"] = torch.tensor(columns["scene"], dtype=torch.long)
        if "prior_similarity" in self.loss_input_names and self.caption_prior is not None:
            captions = batch["image_ids"] * self.captions_per_image + torch.tensor(
                columns["caption_index"], dtype=torch.long
            )
            batch["prior_similarity"] = self.caption_prior(batch["image_ids"], captions)
        return batch


def caption_prior_for(train_images, path: str | None = None):
    """The caption prior P[image, caption] of the training images (`PrecomputedCaptionPrior`):
    read from `path` (`scripts/compute_caption_prior.py`) or computed from their captions.
    Returns (prior, captions per image)."""
    from .caption_prior import CaptionPriorSimilarity, PrecomputedCaptionPrior

    captions = train_images["captions"]
    per_image = {len(c) for c in captions}
    if len(per_image) != 1:
        raise RecipeError(
            "the caption prior needs the same number of captions "
            f"per image; the training images have {sorted(per_image)}"
        )
    (captions_per_image,) = per_image
    if path is not None:
        prior = PrecomputedCaptionPrior.load(path)
    else:
        prior = PrecomputedCaptionPrior(
            CaptionPriorSimilarity([c for cs in captions for c in cs], captions_per_image).full_matrix()
        )
    expected = (len(captions), len(captions) * captions_per_image)
    if prior.shape != expected:
        raise RecipeError(
            f"data.caption_prior {path}: shape {prior.shape}, expected {expected} (training images x captions)"
        )
    return prior, captions_per_image


class _RowsNamingBadImages(torch.utils.data.Dataset):
    """The flat caption dataset as the DataLoader reads it, except that an image that cannot be
    decoded raises `ImageReadError` naming its file (`rows_naming_bad_images`)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[dict]:
        from ..data.views import rows_naming_bad_images

        batch = rows_naming_bad_images(self.dataset, indices)
        return [dict(zip(batch, values)) for values in zip(*batch.values())]


def build_train_loader(flat_dataset, processor, batch_size: int, seed: int, num_workers: int = 0, **collator_options):
    """A DataLoader over the flat caption view; shuffling and augmentation keyed by (seed, epoch).
    `collator_options` go to `TrainCollator` (the model's loss inputs and the caption prior).

    Returns `(loader, sampler, collator)`; call `set_epoch` on the prepared loader and set
    `collator.epoch` before each epoch. The last incomplete batch is dropped (a ranking loss on
    one or two pairs has almost no negatives).
    """
    missing = [c for c in FLAT_COLUMNS if c not in flat_dataset.column_names]
    if missing:
        raise ValueError(f"flat caption dataset lacks columns {missing}; it has {flat_dataset.column_names}")
    if len(flat_dataset) < batch_size:
        raise RecipeError(
            f"training.batch_size ({batch_size}) is larger than the training set ({len(flat_dataset)} captions)"
        )
    sampler = EpochShuffleSampler(len(flat_dataset), seed)
    collator = TrainCollator(processor, seed, **collator_options)
    loader = DataLoader(
        _RowsNamingBadImages(flat_dataset),
        batch_size=batch_size,
        sampler=sampler,
        drop_last=True,
        collate_fn=collator,
        num_workers=num_workers,
        # The loader's base seed comes from this generator, not from the global torch RNG.
        generator=torch.Generator().manual_seed(seed),
    )
    return loader, sampler, collator


#: Datasets generated on request, at the image side the model reads unless the recipe sets one.
GENERATED_DATASETS = ("rs_synth",)


def dataset_options(spec: DataSpec, image_size: int | None = None) -> dict:
    """Keyword arguments of `load_dataset` for `spec`: its `options`, plus the model's input side
    `image_size` for generated datasets, so a recipe states the image size once (in the model)."""
    options = dict(spec.options)
    if spec.name in GENERATED_DATASETS and image_size is not None:
        options.setdefault("image_size", image_size)
    return options


def load_splits(spec: DataSpec, run_dir: Path | None = None, image_size: int | None = None):
    """(train, validation) per-image datasets for a recipe (`rs_retrieval.data.load_dataset` or a
    `save_to_disk` folder, see `dataset_options` for `image_size`); see `select_splits` for the
    validation re-split."""
    if spec.path is not None:
        import datasets

        dataset_dict = datasets.load_from_disk(spec.path)
    else:
        from ..data import load_dataset

        options = dataset_options(spec, image_size)
        dataset_dict = load_dataset(
            spec.name, data_dir=spec.data_dir, source=spec.source, cache_dir=spec.cache_dir, seed=spec.seed, **options
        )
    return select_splits(dataset_dict, spec, run_dir)


#: Validation split names that, when the dataset has none of them, ask for a re-split of 'train'.
RESPLIT_NAMES = {"val", "validation"}


def select_splits(dataset_dict, spec: DataSpec, run_dir: Path | None = None):
    """Pick train/validation from a DatasetDict.

    Without a validation split, a seeded re-split of the train images is made (never the test
    split) and, when `run_dir` is given, its seed and image ids are written to
    `run_dir/val_split.json`.
    """
    from ..data.dataset_loading import train_val_split

    where = spec.path or spec.name
    if spec.train_split not in dataset_dict:
        raise RecipeError(
            f"data.train_split: dataset {where!r} has no split {spec.train_split!r}; it has {list(dataset_dict)}"
        )
    if spec.validation_split not in dataset_dict:
        if spec.validation_split not in RESPLIT_NAMES or RESPLIT_NAMES & set(dataset_dict):
            raise RecipeError(
                f"data.validation_split: dataset {where!r} has no split "
                f"{spec.validation_split!r}; it has {list(dataset_dict)} "
                f"(a seeded re-split of 'train' by data.val_fraction is made only when the dataset has no 'val' split)"
            )
        if spec.train_split != "train":
            raise RecipeError(
                f"data: dataset {where!r} has no {spec.validation_split!r} "
                "split, and a re-split only takes images from 'train'"
            )
        dataset_dict = train_val_split(dataset_dict, spec.val_fraction, spec.seed)
        validation = dataset_dict["val"]
        if run_dir is not None:
            record = {
                "reason": f"dataset {where!r} has no {spec.validation_split!r} split: seeded re-split of its train images",
                "val_fraction": spec.val_fraction,
                "seed": spec.seed,
                "train_images": len(dataset_dict["train"]),
                "validation_images": len(validation),
                "validation_image_ids": [int(i) for i in validation["image_id"]],
            }
            write_json_atomic(Path(run_dir) / "val_split.json", record)
    else:
        validation = dataset_dict[spec.validation_split]
    train = dataset_dict[spec.train_split]
    if spec.max_train_images is not None:
        train = train.select(range(min(spec.max_train_images, len(train))))
    if spec.max_val_images is not None:
        validation = validation.select(range(min(spec.max_val_images, len(validation))))
    return train, validation
