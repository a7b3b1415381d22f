"""Zero-shot evaluation over an ImageFolder-style dataset (one folder per class, as AID, RESISC45,
UCM, EuroSAT, WHU-RS19, RSSCN7, PatternNet and Optimal-31 are released), and rs_synth's benchmark.

Labels come from the folder names: matched to a class set's folder names when one is given
(case-insensitive), otherwise the folder names themselves become the classes. Results: top-1 /
top-5 accuracy, per-class accuracy, their mean, the confusion matrix and a picture of it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..fileio import save_png_atomic
from ..imagery import IMAGE_EXTENSIONS, list_image_files
from .class_sets import ClassSet, ClassSetError, load_class_set, load_templates
from .classifier import ZeroShotClassifier

DEFAULT_TEMPLATES = "single_satellite_photo"


def readable_name(folder: str) -> str:
    """`BaseballField` / `baseball_field` / `aGrass` -> `baseball field` / `baseball field` / `a grass`."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", folder.replace("_", " ").replace("-", " "))
    return " ".join(spaced.lower().split())


def image_folder(root: str | os.PathLike) -> tuple[list[str], list[tuple[Path, int]]]:
    """(class folder names, sorted; [(image path, folder index)]) of an ImageFolder-style dataset."""
    root = Path(root)
    if not root.is_dir():
        raise ClassSetError(f"{root} is not a folder (expected one sub-folder of images per class)")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    samples = [(path, index) for index, name in enumerate(folders) for path in list_image_files(root / name)]
    if not samples:
        raise ClassSetError(f"{root} has no class sub-folders with images ({', '.join(IMAGE_EXTENSIONS)})")
    return folders, samples


def labels_for_folders(folders: list[str], class_set: ClassSet | None, templates=None) -> tuple[ClassSet, list[int]]:
    """The class set to classify with and, for every dataset folder, its label in that set."""
    if class_set is None:
        class_set = ClassSet(
            "folders", tuple(readable_name(f) for f in folders), load_templates(DEFAULT_TEMPLATES), tuple(folders)
        )
    if templates is not None:
        class_set = class_set.with_templates(templates)
    by_folder = {folder.lower(): index for index, folder in enumerate(class_set.folders)}
    unknown = [folder for folder in folders if folder.lower() not in by_folder]
    if unknown:
        raise ClassSetError(
            f"dataset folder(s) {unknown} are not classes of "
            f"{class_set.name!r} (its folders: {list(class_set.folders)})"
        )
    return class_set, [by_folder[folder.lower()] for folder in folders]


def zero_shot_metrics(logits: torch.Tensor, labels: torch.Tensor, classes: tuple[str, ...], ks=(1, 5)) -> dict:
    """Top-k accuracy (%), per-class accuracy (%) of the classes present, their mean, and the
    confusion matrix (rows: true class, columns: predicted class, over all classes of the set)."""
    ranked = logits.argsort(dim=-1, descending=True)
    metrics = {
        f"top{k}": 100.0 * (ranked[:, :k] == labels[:, None]).any(-1).float().mean().item()
        for k in ks
        if k <= logits.shape[-1]
    }
    predicted = ranked[:, 0]
    confusion = torch.zeros(len(classes), len(classes), dtype=torch.long)
    confusion.index_put_((labels, predicted), torch.ones_like(labels), accumulate=True)
    present = confusion.sum(1) > 0
    per_class = {
        classes[i]: 100.0 * confusion[i, i].item() / confusion[i].sum().item()
        for i in range(len(classes))
        if present[i]
    }
    metrics.update(
        num_images=len(labels),
        mean_per_class=sum(per_class.values()) / len(per_class),
        per_class=per_class,
        confusion_matrix=confusion.tolist(),
        classes=list(classes),
    )
    return metrics


def plot_confusion_matrix(metrics: dict, path: str | os.PathLike, title: str = "") -> Path:
    """PNG of the row-normalised confusion matrix (true classes that occur x all classes)."""
    from matplotlib.figure import Figure

    confusion = torch.tensor(metrics["confusion_matrix"], dtype=torch.float)
    rows = (confusion.sum(1) > 0).nonzero().flatten().tolist()
    shown = confusion[rows] / confusion[rows].sum(1, keepdim=True)
    classes = metrics["classes"]
    size = max(4.0, 0.3 * len(classes) + 2)
    fig = Figure(figsize=(size + 1, size))
    ax = fig.subplots()
    image = ax.imshow(shown.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(len(rows)), [classes[i] for i in rows], fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"top-1 {metrics['top1']:.1f}%  mean per-class {metrics['mean_per_class']:.1f}%", fontsize=9)
    if len(classes) <= 12:
        for r, row in enumerate(shown.tolist()):
            for c, value in enumerate(row):
                if value > 0:
                    ax.text(
                        c,
                        r,
                        f"{value:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if value > 0.5 else "black",
                    )
    fig.colorbar(image, ax=ax, fraction=0.046)
    return save_png_atomic(fig, path)


def evaluate_zero_shot(
    model,
    processor,
    dataset_dir,
    class_set: ClassSet | str | None = None,
    templates=None,
    batch_size: int = 64,
    rule: str = "normalize_then_mean",
    progress: bool = True,
) -> dict:
    """Classify every image of an ImageFolder-style dataset; returns `zero_shot_metrics` plus the
    class set and templates used. The text classifier is built once for the whole run."""
    folders, samples = image_folder(dataset_dir)
    chosen = load_class_set(class_set) if isinstance(class_set, (str, os.PathLike)) else class_set
    chosen, folder_labels = labels_for_folders(folders, chosen, templates)
    classifier = ZeroShotClassifier(model, processor, chosen, rule=rule, batch_size=batch_size)
    classifier.text_classifier()
    logits = []
    for start in tqdm(range(0, len(samples), batch_size), desc="images", unit="batch", disable=not progress):
        logits.append(classifier.logits([path for path, _ in samples[start : start + batch_size]]).cpu())
    labels = torch.tensor([folder_labels[index] for _, index in samples])
    metrics = zero_shot_metrics(torch.cat(logits), labels, chosen.classes)
    metrics.update(class_set=chosen.name, templates=list(chosen.templates), rule=rule)
    return metrics


def rs_synth_image_folder(out_dir: str | os.PathLike, split: str = "test", **synth_options) -> Path:
    """rs_synth's zero-shot benchmark: the images of `split` linked into one folder per scene class
    (`rs_retrieval.data.synth.SYNTH_SCENES`; classify them with the `rs_synth` class set)."""
    from ..data import load_dataset
    from ..data.synth import generate_rs_synth

    root = generate_rs_synth(**synth_options)
    rows = load_dataset("rs_synth", split=split, **synth_options)
    out_dir = Path(out_dir)
    scene_names = rows.features["scene"].names  # a ClassLabel in SYNTH_SCENES order
    for filename, scene in zip(rows["filename"], rows["scene"]):
        link = out_dir / scene_names[scene] / filename
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            os.symlink((root / "images" / filename).resolve(), link)
    return out_dir
