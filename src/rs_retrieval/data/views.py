"""The one-row-per-caption view used for training, built with Arrow kernels (no per-row Python)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    import datasets


def flatten_captions(dataset: datasets.Dataset, columns: Sequence[str] | None = None) -> datasets.Dataset:
    """One row per caption: `caption`, `image_index` (row of `dataset`), `caption_index` (0..4), plus
    the per-image `columns` repeated (default: every column but `captions`, e.g. `image`, `scene`,
    `objects`). Rows keep image order and each image's captions stay contiguous, in release order.
    """
    import datasets
    import pyarrow as pa
    import pyarrow.compute as pc

    if "captions" not in dataset.column_names:
        raise ValueError(f"flatten_captions needs a 'captions' column; got {dataset.column_names}")
    keep = [c for c in dataset.column_names if c != "captions"] if columns is None else list(columns)
    unknown = sorted(set(keep) - set(dataset.column_names))
    if unknown or "captions" in keep:
        raise ValueError(
            f"columns must be per-image columns of the dataset other than 'captions'; bad: {unknown or ['captions']}"
        )
    features = datasets.Features(
        {
            **{c: dataset.features[c] for c in keep},
            "caption": datasets.Value("string"),
            "image_index": datasets.Value("int64"),
            "caption_index": datasets.Value("int32"),
        }
    )

    def explode(batch: pa.Table, indices: list[int]) -> pa.Table:
        captions = batch["captions"].combine_chunks()
        if isinstance(captions.type, pa.FixedSizeListType):
            captions = captions.cast(pa.list_(captions.type.value_type))
        parents = pc.list_parent_indices(captions).to_numpy()
        lengths = pc.list_value_length(captions).to_numpy(zero_copy_only=False)
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        table = {c: batch[c].take(pa.array(parents)) for c in keep}
        table["caption"] = pc.list_flatten(captions)
        table["image_index"] = pa.array(np.asarray(indices, dtype=np.int64)[parents])
        table["caption_index"] = pa.array((np.arange(len(parents)) - starts).astype(np.int32))
        return pa.table(table)

    return (
        dataset.with_format("arrow")
        .map(
            explode,
            batched=True,
            batch_size=1000,
            with_indices=True,
            remove_columns=dataset.column_names,
            features=features,
            desc="flatten captions",
        )
        .with_format(dataset.format["type"], **dataset.format["format_kwargs"])
    )


def warn_blank_captions(captions: Sequence[str], where: str) -> int:
    """Warn once with the count of empty / whitespace-only captions (they are kept: the published
    splits contain some); returns the count. `rs-retrieval data info` lists them by file."""
    blank = sum(1 for caption in captions if not caption.strip())
    if blank:
        logger.warning(
            "%d of %d captions in %s are blank (kept as they are; `rs-retrieval data info` lists them)",
            blank,
            len(captions),
            where,
        )
    return blank


def rows_naming_bad_images(dataset: datasets.Dataset, indices) -> dict[str, list]:
    """`dataset[indices]` (column -> list; `indices` a slice or list); an image that `datasets` cannot
    decode raises `ImageReadError` naming its file instead of a bare PIL error."""
    from PIL import Image

    from ..imagery import ImageReadError

    try:
        return dataset[indices]
    except (OSError, Image.DecompressionBombError) as err:
        rows = range(len(dataset))[indices] if isinstance(indices, slice) else indices
        raise ImageReadError(f"cannot read image {_first_bad_image(dataset, rows)}: {err}") from err


def _first_bad_image(dataset: datasets.Dataset, rows) -> str:
    import datasets

    for row in rows:
        try:
            dataset[int(row)]
        except Exception:  # the row whose image fails to decode
            if "filename" in dataset.column_names:
                return f"{dataset.select_columns(['filename'])[int(row)]['filename']} (row {row})"
            raw = dataset.select_columns(["image"]).cast_column("image", datasets.Image(decode=False))[int(row)][
                "image"
            ]
            return f"{raw.get('path') or 'with embedded bytes'} (row {row})"
    return f"in rows {rows}"
