"""Evaluation protocols by name: who the queries, candidates and positives are, and in which order.

Published retrieval numbers come from different evaluation code; the same score matrix gives
different numbers under each (docs/protocols.md has the table). A `Protocol` states one code
base's rules: the queries and candidates of each direction (`structure`), the caption text that
code encodes (`prepare_caption`: RemoteCLIP capitalises, SkyScript adds a prefix) and, where the
code fixes it, the order of tied scores (`tie_policy`). Imports NumPy only, so the command line
lists the names without torch.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Direction:
    """Queries of one direction, their candidates and their positives.

    `query_index`/`candidate_index` index the query/candidate axis of the score matrix (None =
    the whole axis, in order); the candidate order is the order ties are broken in by the
    order-sensitive tie policies. Positives of query q are `positives[indptr[q]:indptr[q + 1]]`,
    given as positions in the candidate list.
    """

    n_queries: int
    query_index: np.ndarray | None
    candidate_index: np.ndarray | None
    indptr: np.ndarray
    positives: np.ndarray


def _group(owners: np.ndarray, items: np.ndarray, n_owners: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr, items) listing `items[k]` under `owners[k]`, items in ascending order per owner."""
    order = np.lexsort((items, owners))
    indptr = np.zeros(n_owners + 1, dtype=np.int64)
    np.cumsum(np.bincount(owners, minlength=n_owners), out=indptr[1:])
    return indptr, items[order]


def _expand(
    owners: np.ndarray, groups: np.ndarray, indptr: np.ndarray, members: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (owner, member) for every member of `groups[k]` (CSR `indptr`/`members`), per k."""
    lengths = indptr[groups + 1] - indptr[groups]
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(owners, lengths), members[np.repeat(indptr[groups], lengths) + offsets]


def _direction(n_queries, owners, items, query_index=None, candidate_index=None) -> Direction:
    indptr, positives = _group(np.asarray(owners, dtype=np.int64), np.asarray(items, dtype=np.int64), n_queries)
    return Direction(n_queries, query_index, candidate_index, indptr, positives)


def _first_occurrence_ids(keys: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray]:
    """Class id of each key (numbered by first occurrence) and the first index of each class."""
    ids: dict = {}
    classes = np.fromiter((ids.setdefault(key, len(ids)) for key in keys), dtype=np.int64, count=len(keys))
    first = np.unique(classes, return_index=True)[1].astype(np.int64)
    return classes, first


def _sorted_ids(keys: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Class id of each key numbered in sorted key order, and the first index of each class
    (`np.unique(keys, return_index=True)`, which RemoteCLIP and pandas' `groupby` both amount to)."""
    _, first, classes = np.unique(np.asarray([str(key) for key in keys]), return_index=True, return_inverse=True)
    return classes.astype(np.int64).ravel(), first.astype(np.int64)


def normalize_caption(text: str) -> str:
    """The text identity of `multi_positive` and `dedup_text`: case-folded, whitespace collapsed."""
    return " ".join(text.casefold().split())


# Each structure: (n_img, n_txt, text_to_image, texts, image_keys) -> (i2t, t2i).


def _amfmn(n_img, n_txt, text_to_image, texts, image_keys):
    all_texts = np.arange(n_txt, dtype=np.int64)
    return _direction(n_img, text_to_image, all_texts), _direction(n_txt, all_texts, text_to_image)


def _dedup_image(n_img, n_txt, text_to_image, texts, image_keys):
    all_texts = np.arange(n_txt, dtype=np.int64)
    image_class, first_image = _first_occurrence_ids(image_keys)
    text_class = image_class[text_to_image]
    i2t = _direction(len(first_image), text_class, all_texts, query_index=first_image)
    return i2t, _direction(n_txt, all_texts, text_class, candidate_index=first_image)


def _text_links(text_to_image, text_class):
    """Unique (image, text class) pairs: the image has at least one caption of that text."""
    return np.unique(np.stack([np.asarray(text_to_image, dtype=np.int64), text_class], axis=1), axis=0)


def _dedup_text(n_img, n_txt, text_to_image, texts, image_keys):
    text_class, first_text = _first_occurrence_ids([normalize_caption(text) for text in texts])
    links = _text_links(text_to_image, text_class)
    i2t = _direction(n_img, links[:, 0], links[:, 1], candidate_index=first_text)
    return i2t, _direction(len(first_text), links[:, 1], links[:, 0], query_index=first_text)


def _multi_positive(n_img, n_txt, text_to_image, texts, image_keys):
    all_texts = np.arange(n_txt, dtype=np.int64)
    text_class, first_text = _first_occurrence_ids([normalize_caption(text) for text in texts])
    n_cls = len(first_text)
    links = _text_links(text_to_image, text_class)
    texts_of_class = _group(text_class, all_texts, n_cls)
    images_of_class = _group(links[:, 1], links[:, 0], n_cls)
    i2t = _direction(n_img, *_expand(links[:, 0], links[:, 1], *texts_of_class))
    return i2t, _direction(n_txt, *_expand(all_texts, text_class, *images_of_class))


def _remoteclip(n_img, n_txt, text_to_image, texts, image_keys):
    """Images merged by key and ordered by `np.unique` (sorted keys); each merged image's captions
    follow in their original order (RemoteCLIP's `JsonDataset.duplicate`), so the text candidates
    of i2t are ordered image by sorted image. Positives: the image's own captions."""
    image_class, first_image = _sorted_ids(image_keys)
    text_class = image_class[np.asarray(text_to_image, dtype=np.int64)]
    text_order = np.lexsort((np.arange(n_txt), text_class))  # stable: original order inside an image
    position = np.empty(n_txt, dtype=np.int64)
    position[text_order] = np.arange(n_txt)
    i2t = _direction(len(first_image), text_class, position, query_index=first_image, candidate_index=text_order)
    return i2t, _direction(n_txt, np.arange(n_txt), text_class, candidate_index=first_image)


def _skyscript(n_img, n_txt, text_to_image, texts, image_keys):
    """Unique images (`groupby('filepath')`) and unique caption strings (`groupby(caption)`), both
    sorted; a text's positives are every image that has it, an image's every text it has."""
    image_class, first_image = _sorted_ids(image_keys)
    text_class, first_text = _sorted_ids(texts)
    links = _text_links(image_class[np.asarray(text_to_image, dtype=np.int64)], text_class)
    i2t = _direction(len(first_image), links[:, 0], links[:, 1], query_index=first_image, candidate_index=first_text)
    return i2t, _direction(
        len(first_text), links[:, 1], links[:, 0], query_index=first_text, candidate_index=first_image
    )


def _capitalize(text: str) -> str:
    return text.capitalize()


SKYSCRIPT_PREFIX = "a satellite image. "


def _skyscript_prefix(text: str) -> str:
    return SKYSCRIPT_PREFIX + text


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol: its rules, the code it follows, and what it needs from the caller."""

    name: str
    summary: str
    #: The code whose logic the protocol reproduces (repository, file, lines).
    source: str
    structure: Callable
    needs_texts: bool = False
    needs_image_keys: bool = False
    #: Applied to every caption before it is encoded (None: the captions as stored).
    prepare_caption: Callable[[str], str] | None = None
    #: The tie order the source code imposes (None: the caller's `tie_policy`).
    tie_policy: str | None = None


PROTOCOLS: dict[str, Protocol] = {
    protocol.name: protocol
    for protocol in (
        Protocol(
            "amfmn",
            "index-based: an image's positives are its own captions; every caption is a text query",
            "xiaoyuan1996/AMFMN utils.py acc_i2t2 / acc_t2i2 (also GaLR, MSA eval.py)",
            _amfmn,
        ),
        Protocol(
            "multi_positive",
            "every caption whose normalised text equals one of the image's captions is a positive, both directions",
            "clip_benchmark metrics/zeroshot_retrieval.py (positive_pairs), extended to identical texts",
            _multi_positive,
            needs_texts=True,
        ),
        Protocol(
            "dedup_text",
            "identical captions (normalised) merged into one text "
            "query/candidate, positive for every image it describes",
            "approximates wangzhecheng/SkyScript cross_modal_retrieval.ipynb; `skyscript` is the exact one",
            _dedup_text,
            needs_texts=True,
        ),
        Protocol(
            "dedup_image",
            "images with the same key merged into one (first occurrence) holding all their captions",
            "approximates ChenDelong1999/RemoteCLIP retrieval.py; `remoteclip` is the exact one",
            _dedup_image,
            needs_image_keys=True,
        ),
        Protocol(
            "remoteclip",
            "RemoteCLIP's retrieval.py: captions capitalised, images merged by file name in sorted order, "
            "hit if any own caption / the own image is in torch.topk's top k, mR = np.mean of the six recalls",
            "ChenDelong1999/RemoteCLIP retrieval.py: JsonDataset.read_json (`text['raw'].capitalize()`), "
            "JsonDataset.duplicate (`np.unique(self.images, return_index=True)`), retrieval_evaluation "
            "(`positive_pairs[torch.arange(len(scores)), texts_image_index] = True`; clip_benchmark recall_at_k "
            "`torch.topk(scores, k, dim=1)`, `> 0`; `np.mean(list(metrics.values()))`)",
            _remoteclip,
            needs_image_keys=True,
            prepare_caption=_capitalize,
            tie_policy="torch_topk",
        ),
        Protocol(
            "skyscript",
            "SkyScript's cross_modal_retrieval.ipynb: 'a satellite image. ' prepended, caption strings and images "
            "de-duplicated (sorted), any image sharing the caption counts, ranks by torch.argsort(descending=True)",
            "wangzhecheng/SkyScript cross_modal_retrieval.ipynb: `'a satellite image. ' + x`, "
            "`df.groupby('filepath')`, `df.groupby(caption_key)`, `text2img_path[text].add(img_id)`, "
            "`torch.argsort(logits, descending=True)`, `set(ranking[:k]) & set(text2img_path[...])`",
            _skyscript,
            needs_texts=True,
            needs_image_keys=True,
            prepare_caption=_skyscript_prefix,
            tie_policy="torch_argsort",
        ),
    )
}
#: The protocol of the AMFMN/GaLR/MSA tables, which most published numbers use.
DEFAULT_PROTOCOL = "amfmn"
PROTOCOL_NAMES = tuple(PROTOCOLS)


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOL_NAMES}, got {name!r}")
    return PROTOCOLS[name]


def protocol_directions(
    protocol: Protocol, n_img: int, n_txt: int, text_to_image: np.ndarray, texts, image_keys
) -> tuple[Direction, Direction]:
    """(i2t, t2i) of `protocol`, after checking it got the texts / image keys it needs."""
    if protocol.needs_texts and texts is None:
        raise ValueError(f"protocol {protocol.name!r} compares caption strings: pass texts=")
    if protocol.needs_image_keys and (image_keys is None or len(image_keys) != n_img):
        got = "none" if image_keys is None else len(image_keys)
        raise ValueError(
            f"protocol {protocol.name!r} needs image_keys with one key per row of sim ({n_img}), got {got}"
        )
    return protocol.structure(n_img, n_txt, text_to_image, texts, image_keys)
