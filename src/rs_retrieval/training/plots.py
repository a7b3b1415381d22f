"""PNG figures written into a run directory: training curves and text->image retrieval examples."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from ..fileio import save_png_atomic

RECALL_KEYS = ("i2t_R@1", "i2t_R@10", "t2i_R@1", "t2i_R@10")


def plot_training_curves(records: list[dict], path: Path) -> None:
    """Loss (and its named terms), learning rate and validation recalls from `log.jsonl` records."""
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    # A bare Figure (Agg canvas): no pyplot state, no backend switch for the caller.
    fig = Figure(figsize=(15, 4))
    axes = fig.subplots(1, 3)
    loss_ax, lr_ax, eval_ax = axes
    steps = [r["step"] for r in train]
    loss_keys = ["loss"] + sorted({k for r in train for k in r if k.startswith("loss/")})
    for key in loss_keys:
        loss_ax.plot(steps, [r.get(key, np.nan) for r in train], label=key, linewidth=1.5 if key == "loss" else 1.0)
    loss_ax.set(title="training loss", xlabel="optimizer step")
    if train and min(min(r.get(k, 1.0) for k in loss_keys) for r in train) > 0:
        loss_ax.set_yscale("log")
    lr_keys = sorted({k for r in train for k in r if k.startswith("lr/")})
    for key in lr_keys:
        lr_ax.plot(steps, [r.get(key, np.nan) for r in train], label=key.removeprefix("lr/"))
    lr_ax.set(title="learning rate", xlabel="optimizer step")
    epochs = [r["epoch"] for r in evals]
    eval_ax.plot(epochs, [r["mR"] for r in evals], marker="o", linewidth=2, label="mR")
    for key in RECALL_KEYS:
        eval_ax.plot(epochs, [r.get(key, np.nan) for r in evals], marker=".", linewidth=1, label=key)
    eval_ax.set(title="validation retrieval (%)", xlabel="epoch")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, frameon=False)
    fig.tight_layout()
    save_png_atomic(fig, path)


def plot_retrieval_examples(
    model, processor, dataset, path: Path, num_queries: int = 4, top_k: int = 5, batch_size: int = 32, thumb: int = 128
) -> None:
    """For a few validation captions, their top-k images; the caption's own image has a green frame.

    Drawn with PIL (one canvas, no matplotlib axes per thumbnail: a figure of 24 axes costs
    about a second to lay out).
    """
    from PIL import Image, ImageDraw, ImageFont

    from ..evaluation.evaluator import encode_dataset, score_matrix

    num_queries, top_k = min(num_queries, len(dataset)), min(top_k, len(dataset))
    query_images = np.linspace(0, len(dataset) - 1, num_queries).round().astype(int).tolist()
    image_cache, text_cache, text_to_image, texts = encode_dataset(
        model, processor, dataset, batch_size, progress=False
    )
    # The first caption of each query image.
    query_texts = torch.tensor([int((text_to_image == i).nonzero()[0, 0]) for i in query_images])
    scores = score_matrix(model, image_cache, {key: value[query_texts] for key, value in text_cache.items()}).t()
    ranking = scores.argsort(dim=1, descending=True)

    font, small = ImageFont.load_default(size=15), ImageFont.load_default(size=13)
    margin, text_width, title_height, label_height, frame = 12, 300, 40, 20, 6
    cell = thumb + 2 * frame
    row_height = cell + label_height + margin
    canvas = Image.new(
        "RGB", (margin + text_width + top_k * (cell + margin), title_height + num_queries * row_height), "white"
    )
    draw = ImageDraw.Draw(canvas)
    draw.text(
        (margin, 10),
        "validation text -> image retrieval (green frame: the caption's own image)",
        fill="black",
        font=font,
    )
    for row, image_index in enumerate(query_images):
        top = title_height + row * row_height
        rank = int((ranking[row] == image_index).nonzero()[0, 0]) + 1
        caption = "\n".join(textwrap.wrap(texts[int(query_texts[row])], 34))
        draw.multiline_text(
            (margin, top + label_height), f"{caption}\n\ntrue image rank: {rank}", fill="black", font=font, spacing=3
        )
        for col in range(top_k):
            candidate = int(ranking[row, col])
            left = margin + text_width + col * (cell + margin)
            hit = candidate == image_index
            draw.text((left, top), f"#{col + 1}  score {float(scores[row, candidate]):.3f}", fill="black", font=small)
            draw.rectangle(
                (left, top + label_height, left + cell - 1, top + label_height + cell - 1),
                fill="limegreen" if hit else "lightgray",
            )
            image = dataset[candidate]["image"].convert("RGB").resize((thumb, thumb), Image.BICUBIC)
            canvas.paste(image, (left + frame, top + label_height + frame))
    save_png_atomic(canvas, path)
