"""Image-text retrieval recall (R@1/5/10 both ways, mR, rsum) as a Hugging Face `evaluate` metric.

Self-contained: numpy, `datasets` and `evaluate` only, so `evaluate.load("org/name")` works
without rs_retrieval. The numbers equal `rs_retrieval.evaluation.retrieval_metrics` (its tests
compare both on randomized score matrices with ties, for every protocol and tie policy).

A protocol maps the score matrix to the images and captions that take part, in which order, and
which pairs are positives (`PROTOCOLS`, with the tie policy its source code fixes, if any); a tie
policy turns each query's scores and positives into its 0-based rank, or for `torch_topk` into a
hit per k (`TIE_POLICIES`). Adding either is one function and one registry entry.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Recall@K of cross-modal retrieval in both directions: image-to-text (i2t; an image query is a hit
when any of its captions ranks in the top K) and text-to-image (t2i; per caption), their mean mR,
their sum rsum, and median/mean ranks. Protocols and tie policies follow the AMFMN/GaLR evaluation
code, RemoteCLIP's retrieval.py and SkyScript's retrieval notebook (see the README).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: one row per image: its scores against every caption (all rows the same length
        N_texts); together the [N_images, N_texts] score matrix, higher = more similar.
    references: one list per image: the caption (column) indices that describe it; every column
        belongs to exactly one image.
    ks: recall cut-offs (default (1, 5, 10)).
    tie_policy: None (default: the protocol's own, "torch_topk" for remoteclip and "torch_argsort"
        for skyscript, else "numpy", the AMFMN/GaLR code's argsort order), "optimistic",
        "pessimistic", "numpy", "torch_argsort" or "torch_topk"; remoteclip and skyscript accept only their own.
    protocol: "amfmn" (default), "multi_positive", "dedup_text" (need `texts`), "dedup_image",
        "remoteclip" (need `image_keys`) or "skyscript" (needs both).
    texts: the caption strings, one per column.
    image_keys: one key per image (e.g. its file name).
Returns:
    i2t_R@K, t2i_R@K (percent), mR, rsum, i2t/t2i medr and meanr (not under "torch_topk"), i2t/t2i
    query counts, protocol, tie_policy.
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
            raise ValueError(
                f"references[{image}] claims captions that another image already "
                f"holds: {sorted(set(columns[owner[columns] != -1].tolist()))}"
            )
        owner[columns] = image
    orphans = np.flatnonzero(owner == -1)
    if orphans.size:
        raise ValueError(
            f"{orphans.size} caption columns belong to no image (first: "
            f"{orphans[:5].tolist()}); every column needs one owner"
        )
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


def _sorted_classes(keys) -> tuple[np.ndarray, np.ndarray]:
    """Class id of each key numbered in sorted order, and the index where each class first occurs
    (`np.unique(keys, return_index=True)`, as RemoteCLIP and pandas' `groupby` order them)."""
    _, first, classes = np.unique(np.asarray([str(key) for key in keys]), return_index=True, return_inverse=True)
    return classes.ravel(), first


def remoteclip(owner, n_images, texts, image_keys):
    """RemoteCLIP retrieval.py: images merged by key in sorted order, each holding its captions in
    their original order (so the caption candidates run image by sorted image); positives: own captions."""
    image_class, first_image = _sorted_classes(_need(image_keys, "image_keys", "remoteclip"))
    text_class = image_class[owner]
    columns = np.argsort(text_class, kind="stable")
    return first_image, columns, text_class[columns][None, :] == np.arange(len(first_image))[:, None]


def skyscript(owner, n_images, texts, image_keys):
    """SkyScript: images (by key) and caption strings (exact) de-duplicated, both in sorted order; a
    caption is a positive of every image that has it."""
    image_class, first_image = _sorted_classes(_need(image_keys, "image_keys", "skyscript"))
    text_class, first_text = _sorted_classes(_need(texts, "texts", "skyscript"))
    has_text = np.zeros((len(first_image), len(first_text)), dtype=bool)
    has_text[image_class[owner], text_class] = True
    return first_image, first_text, has_text


#: name -> (structure, the tie policy its source code fixes or None: the caller's choice).
PROTOCOLS = {
    "amfmn": (amfmn, None),
    "multi_positive": (multi_positive, None),
    "dedup_text": (dedup_text, None),
    "dedup_image": (dedup_image, None),
    "remoteclip": (remoteclip, "torch_topk"),
    "skyscript": (skyscript, "torch_argsort"),
}
#: The protocol of the AMFMN/GaLR/MSA tables (rs_retrieval's default too).
DEFAULT_PROTOCOL = "amfmn"


def _need(values, name, protocol):
    if values is None:
        raise ValueError(f"protocol {protocol!r} needs {name}=")
    return values


# -- torch's CPU order of tied scores, without torch --
# torch.argsort(descending=True) on the CPU is `std::sort` of (score, index) pairs and torch.topk is
# `std::nth_element` (or `std::partial_sort` when k * 64 <= n) on them, comparing scores only, so
# their tie order is that of the GNU C++ library's introsort / introselect / heap select, restated
# here step for step. They run only on the queries whose result depends on the order of ties.

_INSERTION_THRESHOLD = 16  # introsort leaves ranges this short to the final insertion sort


def _median_to_first(q, first, a, b, c):
    """Swap the median of q[a], q[b], q[c] (under the descending order) into q[first]."""
    va, vb, vc = q[a][0], q[b][0], q[c][0]
    if va > vb:
        pick = b if vb > vc else c if va > vc else a
    else:
        pick = a if va > vc else c if vb > vc else b
    q[first], q[pick] = q[pick], q[first]


def _partition(q, first, last):
    """Median-of-three pivot moved to q[first], then the unguarded partition of q[first + 1:last]."""
    _median_to_first(q, first, first + 1, first + (last - first) // 2, last - 1)
    pivot, low, high = q[first][0], first + 1, last
    while True:
        while q[low][0] > pivot:
            low += 1
        high -= 1
        while pivot > q[high][0]:
            high -= 1
        if low >= high:
            return low
        q[low], q[high] = q[high], q[low]
        low += 1


def _linear_insert(q, last):
    item, j = q[last], last - 1
    while item[0] > q[j][0]:
        q[j + 1] = q[j]
        j -= 1
    q[j + 1] = item


def _insertion_sort(q, first, last):
    for i in range(first + 1, last):
        if q[i][0] > q[first][0]:
            q[first : i + 1] = [q[i]] + q[first:i]
        else:
            _linear_insert(q, i)


def _adjust_heap(q, first, hole, length, item):
    """Sift `item` down from `hole` of the heap q[first:first + length] (top: the lowest score)."""
    top = child = hole
    while child < (length - 1) // 2:
        child = 2 * (child + 1)
        if q[first + child][0] > q[first + child - 1][0]:
            child -= 1
        q[first + hole], hole = q[first + child], child
    if length % 2 == 0 and child == (length - 2) // 2:
        child = 2 * (child + 1)
        q[first + hole], hole = q[first + child - 1], child - 1
    parent = (hole - 1) // 2
    while hole > top and q[first + parent][0] > item[0]:
        q[first + hole], hole = q[first + parent], parent
        parent = (hole - 1) // 2
    q[first + hole] = item


def _heap_select(q, first, middle, last):
    """Leave the highest scores of q[first:last] in q[first:middle], as a heap."""
    length = middle - first
    for parent in range((length - 2) // 2, -1, -1) if length > 1 else ():
        _adjust_heap(q, first, parent, length, q[first + parent])
    for i in range(middle, last):
        if q[i][0] > q[first][0]:
            item, q[i] = q[i], q[first]
            _adjust_heap(q, first, 0, length, item)


def _sort_heap(q, first, last):
    while last - first > 1:
        last -= 1
        item, q[last] = q[last], q[first]
        _adjust_heap(q, first, 0, last - first, item)


def _introsort(q, first, last, depth):
    while last - first > _INSERTION_THRESHOLD:
        if depth == 0:  # too many unbalanced partitions: heapsort the rest
            _heap_select(q, first, last, last)
            _sort_heap(q, first, last)
            return
        depth -= 1
        cut = _partition(q, first, last)
        _introsort(q, cut, last, depth)
        last = cut


def _torch_sort(q) -> None:
    """Sort (score, index) pairs in place as `torch.sort(descending=True)` does on the CPU."""
    n = len(q)
    if n > 1:
        _introsort(q, 0, n, 2 * (n.bit_length() - 1))
        _insertion_sort(q, 0, min(n, _INSERTION_THRESHOLD))
        for i in range(_INSERTION_THRESHOLD, n):
            _linear_insert(q, i)


def _torch_top(q, k: int) -> None:
    """Move the pairs `torch.topk(k)` picks into q[:k], in place (their order there is not torch's)."""
    n = len(q)
    if k * 64 <= n:  # partial_sort: a heap select (then a heap sort of q[:k], which keeps the set)
        _heap_select(q, 0, k, n)
        return
    first, last, depth = 0, n, 2 * (n.bit_length() - 1)  # nth_element: introselect
    while last - first > 3:
        if depth == 0:
            _heap_select(q, first, k, last)
            q[first], q[k - 1] = q[k - 1], q[first]
            return
        depth -= 1
        cut = _partition(q, first, last)
        first, last = (cut, last) if cut <= k - 1 else (first, cut)
    _insertion_sort(q, first, last)


def torch_sort_order(row) -> list:
    """Candidate indices of one query, best first, in the order of `torch.argsort(row, descending=True)`."""
    q = list(zip(row.tolist(), range(len(row))))
    _torch_sort(q)
    return [index for _, index in q]


def torch_topk_set(row, k: int) -> list:
    """Candidate indices of `torch.topk(row, k).indices`, in no particular order."""
    q = list(zip(row.tolist(), range(len(row))))
    _torch_top(q, k)
    return [index for _, index in q[:k]]


# -- tie policies: (scores[queries, candidates] float64, positive[queries, candidates]) -> 0-based ranks --


def _best_positive(scores, positive):
    return np.where(positive, scores, -np.inf).max(axis=1, keepdims=True)


def optimistic(scores, positive):
    """Candidates that tie with the best positive rank below it."""
    return (scores > _best_positive(scores, positive)).sum(axis=1)


def pessimistic(scores, positive):
    """Negatives that tie with the best positive rank above it."""
    return ((scores >= _best_positive(scores, positive)) & ~positive).sum(axis=1)


def numpy_order(scores, positive):
    """The official AMFMN/GaLR code's order: `np.argsort(row)[::-1]` per query."""
    descending = np.argsort(scores, axis=1)[:, ::-1]
    return np.argmax(np.take_along_axis(positive, descending, axis=1), axis=1)


def torch_argsort(scores, positive):
    """SkyScript's order: `torch.argsort(row, descending=True)` per query (torch's CPU tie order)."""
    ranks = optimistic(scores, positive)
    tied_negative = ((scores == _best_positive(scores, positive)) & ~positive).any(axis=1)
    for query in np.flatnonzero(tied_negative):  # the order of the tie decides
        ranks[query] = np.argmax(positive[query, torch_sort_order(scores[query])])
    return ranks


def torch_topk(scores, positive, ks):
    """Per k, whether `torch.topk(row, k)` holds a positive (clip_benchmark's recall_at_k > 0, used
    by RemoteCLIP); k is capped at the number of candidates. Hits per k, not ranks: torch's top-k
    sets for different k need not be nested when scores tie."""
    hits = {}
    for k in ks:
        k_capped = min(k, scores.shape[1])
        kth = -np.partition(-scores, k_capped - 1, axis=1)[:, k_capped - 1 : k_capped]
        tied = scores == kth
        positive_tied, negative_tied = (tied & positive).any(axis=1), (tied & ~positive).any(axis=1)
        hits[k] = ((scores > kth) & positive).any(axis=1) | (positive_tied & ~negative_tied)
        for query in np.flatnonzero(~hits[k] & positive_tied):  # which tied candidates enter decides
            hits[k][query] = positive[query, torch_topk_set(scores[query], k_capped)].any()
    return hits


#: Every policy but torch_topk gives ranks; torch_topk gives hits per k (`retrieval_hits`).
TIE_POLICIES = {
    "optimistic": optimistic,
    "pessimistic": pessimistic,
    "numpy": numpy_order,
    "torch_topk": torch_topk,
    "torch_argsort": torch_argsort,
}
#: The tie policy of protocols whose source code does not fix one.
DEFAULT_TIE_POLICY = "numpy"


def resolve_tie_policy(protocol, tie_policy=None) -> str:
    """The protocol's own tie policy where its source code fixes one, else `tie_policy` (default
    `DEFAULT_TIE_POLICY`); a conflicting explicit choice is an error."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {tuple(PROTOCOLS)}, got {protocol!r}")
    if tie_policy is not None and tie_policy not in TIE_POLICIES:
        raise ValueError(f"tie_policy must be one of {tuple(TIE_POLICIES)}, got {tie_policy!r}")
    fixed = PROTOCOLS[protocol][1]
    if fixed is not None and tie_policy not in (None, fixed):
        raise ValueError(
            f"protocol {protocol!r} orders ties as its source code does ({fixed!r}); got tie_policy={tie_policy!r}"
        )
    return fixed or tie_policy or DEFAULT_TIE_POLICY


def _queries_and_candidates(scores, owner, protocol, texts, image_keys):
    """(i2t scores, i2t positives, t2i scores, t2i positives) of the protocol, inputs checked."""
    n_images, n_texts = scores.shape
    if texts is not None and len(texts) != n_texts:
        raise ValueError(f"texts must have one entry per caption column ({n_texts}), got {len(texts)}")
    if image_keys is not None and len(image_keys) != n_images:
        raise ValueError(f"image_keys must have one key per image ({n_images}), got {len(image_keys)}")
    if np.isnan(scores).any():
        raise ValueError("predictions hold NaN scores; ranks would be meaningless")
    rows, columns, positive = PROTOCOLS[protocol][0](owner, n_images, texts, image_keys)
    for name, axis in (("i2t", 1), ("t2i", 0)):
        if not positive.any(axis=axis).all():
            raise ValueError(f"some {name} queries have no positive: every image needs at least one caption")
    chosen = scores[np.ix_(rows, columns)]
    return chosen, positive, np.ascontiguousarray(chosen.T), np.ascontiguousarray(positive.T)


def retrieval_ranks(scores, owner, tie_policy=None, protocol=DEFAULT_PROTOCOL, texts=None, image_keys=None):
    """(i2t ranks, t2i ranks) of a [N_images, N_texts] score matrix whose column t belongs to image owner[t]."""
    tie_policy = resolve_tie_policy(protocol, tie_policy)
    if tie_policy == "torch_topk":
        raise ValueError(
            f"tie policy 'torch_topk' (protocol {protocol!r}) gives hits at each k, not ranks: use retrieval_hits"
        )
    i2t_scores, i2t_positive, t2i_scores, t2i_positive = _queries_and_candidates(
        scores, owner, protocol, texts, image_keys
    )
    rank = TIE_POLICIES[tie_policy]
    return rank(i2t_scores, i2t_positive), rank(t2i_scores, t2i_positive)


def retrieval_hits(scores, owner, ks=(1, 5, 10), protocol=DEFAULT_PROTOCOL, texts=None, image_keys=None):
    """(i2t hits, t2i hits), each {k: hit of every query}, under the torch_topk tie policy."""
    resolve_tie_policy(protocol, "torch_topk")
    ks = _check_ks(ks)
    i2t_scores, i2t_positive, t2i_scores, t2i_positive = _queries_and_candidates(
        scores, owner, protocol, texts, image_keys
    )
    return torch_topk(i2t_scores, i2t_positive, ks), torch_topk(t2i_scores, t2i_positive, ks)


def retrieval_metrics(
    scores, owner, ks=(1, 5, 10), tie_policy=None, protocol=DEFAULT_PROTOCOL, texts=None, image_keys=None
):
    """The metrics of `rs_retrieval.evaluation.retrieval_metrics` for a float64 score matrix."""
    tie_policy = resolve_tie_policy(protocol, tie_policy)
    options = {"protocol": protocol, "texts": texts, "image_keys": image_keys}
    if tie_policy == "torch_topk":
        metrics = metrics_from_hits(*retrieval_hits(scores, owner, ks, **options), ks)
    else:
        metrics = metrics_from_ranks(*retrieval_ranks(scores, owner, tie_policy, **options), ks)
    return metrics | {"protocol": protocol, "tie_policy": tie_policy}


def _check_ks(ks):
    ks = tuple(ks)
    if not ks or any(not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {ks}")
    return ks


def metrics_from_ranks(i2t, t2i, ks=(1, 5, 10)):
    """R@K per direction (percent), mR, rsum, medr and meanr (1-based), query counts."""
    ks = _check_ks(ks)
    directions = (("i2t", i2t), ("t2i", t2i))
    metrics = {f"{name}_R@{k}": 100.0 * int(np.count_nonzero(r < k)) / len(r) for name, r in directions for k in ks}
    rsum = sum(metrics[f"{name}_R@{k}"] for name in ("t2i", "i2t") for k in ks)  # the reference's summation order
    metrics.update({"mR": rsum / (2 * len(ks)), "rsum": rsum})
    for name, r in directions:
        metrics.update({f"{name}_medr": float(np.floor(np.median(r)) + 1), f"{name}_meanr": float(r.mean() + 1)})
    metrics.update({f"{name}_queries": len(r) for name, r in directions})
    return metrics


def metrics_from_hits(i2t, t2i, ks=(1, 5, 10)):
    """R@K from hits per k with RemoteCLIP's arithmetic: the float32 hit rate times 100
    (`hits.float().mean().item() * 100`), mR = `np.mean` of the recalls in the order i2t..., t2i..."""
    ks = _check_ks(ks)
    directions = (("i2t", i2t), ("t2i", t2i))
    metrics = {
        f"{name}_R@{k}": float(np.float32(np.count_nonzero(hits[k])) / np.float32(len(hits[k]))) * 100
        for name, hits in directions
        for k in ks
    }
    metrics["mR"] = float(np.mean(list(metrics.values())))
    metrics["rsum"] = float(sum(metrics[f"{name}_R@{k}"] for name, _ in directions for k in ks))
    metrics.update({f"{name}_queries": len(hits[ks[0]]) for name, hits in directions})
    return metrics


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RsRetrievalRecall(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Sequence(datasets.Value("int64")),
                }
            ),
            reference_urls=["https://github.com/xiaoyuan1996/AMFMN"],
        )

    def _compute(
        self,
        predictions,
        references,
        ks=(1, 5, 10),
        tie_policy=None,
        protocol=DEFAULT_PROTOCOL,
        texts=None,
        image_keys=None,
    ):
        lengths = {len(row) for row in predictions}
        if len(lengths) != 1:
            raise ValueError(f"every prediction row must score the same captions; got row lengths {sorted(lengths)}")
        scores = np.asarray(predictions, dtype=np.float64)
        owner = text_to_image_index(references, scores.shape[1])
        return retrieval_metrics(scores, owner, ks, tie_policy, protocol, texts, image_keys)
