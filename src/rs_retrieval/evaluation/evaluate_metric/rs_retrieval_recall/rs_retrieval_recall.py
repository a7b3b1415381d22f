"""Image-text retrieval recall (R@1/5/10 both ways, mR, rsum) as a Hugging Face `evaluate` metric.

Self-contained: numpy, `datasets` and `evaluate` only, so `evaluate.load("org/name")` works
without rs_retrieval. The numbers equal `rs_retrieval.evaluation.retrieval_metrics` (its tests
compare both on randomized score matrices with ties, for every protocol and tie policy).

A protocol maps the score matrix to the images and captions that take part and which pairs are
positives (`PROTOCOLS`); a tie policy turns one query's scores and positives into its 0-based rank
(`TIE_POLICIES`). Adding either is one function and one registry entry.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Recall@K of cross-modal retrieval in both directions: image-to-text (i2t; an image query is a hit
when any of its captions ranks in the top K) and text-to-image (t2i; per caption), their mean mR,
their sum rsum, and median/mean ranks. Protocols and tie policies follow the AMFMN/GaLR evaluation
code and the SkyCLIP/RemoteCLIP variants (see the README).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: one row per image: its scores against every caption (all rows the same length
        N_texts); together the [N_images, N_texts] score matrix, higher = more similar.
    references: one list per image: the caption (column) indices that describe it; every column
        belongs to exactly one image.
    ks: recall cut-offs (default (1, 5, 10)).
    tie_policy: "numpy" (default: the official code's argsort order), "optimistic" or "pessimistic".
    protocol: "amfmn" (default), "multi_positive", "dedup_text" (need `texts`) or "dedup_image"
        (needs `image_keys`).
    texts: the caption strings, one per column.
    image_keys: one key per image (e.g. its file name).
Returns:
    i2t_R@K, t2i_R@K (percent), mR, rsum, i2t/t2i medr and meanr, i2t/t2i query counts, protocol, tie_policy.
Examples:
    >>> metric = evaluate.load("rs_retrieval_recall")
    >>> metric.compute(predictions=[[0.9, 0.1], [0.2, 0.8]], references=[[0], [1]])["mR"]
    100.0
"""

_CITATION = """
@article{yuan2022amfmn,
  title={Exploring a Fine-Grained Multiscale Method for Cross-Modal Remote Sensing Image Retrieval},
  author={Yuan, Zhiqiang and Zhang, Wenkai and Fu, Kun and Li, Xuan and Deng, Chubo and Wang, Hongqi and Sun, Xian},
  journal={IEEE Transactions on Geoscience and Remote Sensing},
  volume={60},
  year={2022}
}
"""


def text_to_image_index(references, n_texts: int) -> np.ndarray:
    """The image index of every caption column, from per-image lists of column indices."""
    owner = np.full(n_texts, -1, dtype=np.int64)
    for image, columns in enumerate(references):
        columns = np.asarray(columns, dtype=np.int64)
        if columns.size and (columns.min() < 0 or columns.max() >= n_texts):
            raise ValueError(f"references[{image}] holds caption indices outside [0, {n_texts})")
        if (owner[columns] != -1).any():
            raise ValueError(f"references[{image}] claims captions that another image already holds: {sorted(set(columns[owner[columns] != -1].tolist()))}")
        owner[columns] = image
    orphans = np.flatnonzero(owner == -1)
    if orphans.size:
        raise ValueError(f"{orphans.size} caption columns belong to no image (first: {orphans[:5].tolist()}); every column needs one owner")
    return owner


# -- protocols: (owner, n_images, texts, image_keys) -> (image rows, caption columns, positive[rows, columns]) --
# Image queries rank the chosen columns of their row; caption queries rank the chosen rows of their column.


def normalize_caption(text: str) -> str:
    """Caption identity for the text-aware protocols: case-folded, whitespace collapsed."""
    return " ".join(text.casefold().split())


def _first_occurrence(keys) -> tuple[np.ndarray, np.ndarray]:
    """Class id of each key, numbered by first occurrence, and the index where each class first occurs."""
    ids = {}
    classes = np.array([ids.setdefault(key, len(ids)) for key in keys], dtype=np.int64)
    return classes, np.unique(classes, return_index=True)[1]


def amfmn(owner, n_images, texts, image_keys):
    """Index-based (AMFMN, GaLR, MSA): an image's positives are its own captions."""
    return np.arange(n_images), np.arange(len(owner)), owner[None, :] == np.arange(n_images)[:, None]


def multi_positive(owner, n_images, texts, image_keys):
    """A caption is a positive of every image that has an identical (normalised) caption."""
    text_class, _ = _first_occurrence(normalize_caption(t) for t in _need(texts, "texts", "multi_positive"))
    has_class = np.zeros((n_images, text_class.max() + 1), dtype=bool)
    has_class[owner, text_class] = True
    return np.arange(n_images), np.arange(len(owner)), has_class[:, text_class]


def dedup_text(owner, n_images, texts, image_keys):
    """SkyCLIP: identical captions are merged into one text (its first column), a positive of every image it describes."""
    text_class, first_text = _first_occurrence(normalize_caption(t) for t in _need(texts, "texts", "dedup_text"))
    has_class = np.zeros((n_images, len(first_text)), dtype=bool)
    has_class[owner, text_class] = True
    return np.arange(n_images), first_text, has_class


def dedup_image(owner, n_images, texts, image_keys):
    """RemoteCLIP: images with the same key are merged into one image (its first row) holding all their captions."""
    image_class, first_image = _first_occurrence(_need(image_keys, "image_keys", "dedup_image"))
    return first_image, np.arange(len(owner)), image_class[owner][None, :] == np.arange(len(first_image))[:, None]


PROTOCOLS = {"amfmn": amfmn, "multi_positive": multi_positive, "dedup_text": dedup_text, "dedup_image": dedup_image}


def _need(values, name, protocol):
    if values is None:
        raise ValueError(f"protocol {protocol!r} needs {name}=")
    return values


# -- tie policies: (scores[queries, candidates] float64, positive[queries, candidates]) -> 0-based ranks --


def optimistic(scores, positive):
    """Candidates that tie with the best positive rank below it."""
    best = np.where(positive, scores, -np.inf).max(axis=1, keepdims=True)
    return (scores > best).sum(axis=1)


def pessimistic(scores, positive):
    """Negatives that tie with the best positive rank above it."""
    best = np.where(positive, scores, -np.inf).max(axis=1, keepdims=True)
    return ((scores >= best) & ~positive).sum(axis=1)


def numpy_order(scores, positive):
    """The official AMFMN/GaLR code's order: `np.argsort(row)[::-1]` per query."""
    descending = np.argsort(scores, axis=1)[:, ::-1]
    return np.argmax(np.take_along_axis(positive, descending, axis=1), axis=1)


TIE_POLICIES = {"optimistic": optimistic, "pessimistic": pessimistic, "numpy": numpy_order}
DEFAULT_TIE_POLICY = "numpy"


def retrieval_ranks(scores, owner, tie_policy=DEFAULT_TIE_POLICY, protocol="amfmn", texts=None, image_keys=None):
    """(i2t ranks, t2i ranks) of a [N_images, N_texts] score matrix whose column t belongs to image owner[t]."""
    if tie_policy not in TIE_POLICIES or protocol not in PROTOCOLS:
        raise ValueError(f"tie_policy must be one of {tuple(TIE_POLICIES)} and protocol one of {tuple(PROTOCOLS)}; got {tie_policy!r}, {protocol!r}")
    n_images, n_texts = scores.shape
    if texts is not None and len(texts) != n_texts:
        raise ValueError(f"texts must have one entry per caption column ({n_texts}), got {len(texts)}")
    if image_keys is not None and len(image_keys) != n_images:
        raise ValueError(f"image_keys must have one key per image ({n_images}), got {len(image_keys)}")
    if np.isnan(scores).any():
        raise ValueError("predictions hold NaN scores; ranks would be meaningless")
    rows, columns, positive = PROTOCOLS[protocol](owner, n_images, texts, image_keys)
    for name, axis in (("i2t", 1), ("t2i", 0)):
        if not positive.any(axis=axis).all():
            raise ValueError(f"some {name} queries have no positive: every image needs at least one caption")
    chosen = scores[np.ix_(rows, columns)]
    rank = TIE_POLICIES[tie_policy]
    return rank(chosen, positive), rank(np.ascontiguousarray(chosen.T), np.ascontiguousarray(positive.T))


def metrics_from_ranks(i2t, t2i, ks=(1, 5, 10)):
    """R@K per direction (percent), mR, rsum, medr and meanr (1-based), query counts."""
    ks = tuple(ks)
    if not ks or any(not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {ks}")
    directions = (("i2t", i2t), ("t2i", t2i))
    metrics = {f"{name}_R@{k}": 100.0 * int(np.count_nonzero(r < k)) / len(r) for name, r in directions for k in ks}
    rsum = sum(metrics[f"{name}_R@{k}"] for name in ("t2i", "i2t") for k in ks)  # the reference's summation order
    metrics.update({"mR": rsum / (2 * len(ks)), "rsum": rsum})
    for name, r in directions:
        metrics.update({f"{name}_medr": float(np.floor(np.median(r)) + 1), f"{name}_meanr": float(r.mean() + 1)})
    metrics.update({f"{name}_queries": len(r) for name, r in directions})
    return metrics


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RsRetrievalRecall(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Sequence(datasets.Value("float64")),
                "references": datasets.Sequence(datasets.Value("int64")),
            }),
            reference_urls=["https://github.com/xiaoyuan1996/AMFMN"],
        )

    def _compute(self, predictions, references, ks=(1, 5, 10), tie_policy=DEFAULT_TIE_POLICY, protocol="amfmn", texts=None, image_keys=None):
        lengths = {len(row) for row in predictions}
        if len(lengths) != 1:
            raise ValueError(f"every prediction row must score the same captions; got row lengths {sorted(lengths)}")
        scores = np.asarray(predictions, dtype=np.float64)
        owner = text_to_image_index(references, scores.shape[1])
        i2t, t2i = retrieval_ranks(scores, owner, tie_policy=tie_policy, protocol=protocol, texts=texts, image_keys=image_keys)
        return metrics_from_ranks(i2t, t2i, ks) | {"protocol": protocol, "tie_policy": tie_policy}
