"""Retrieval metrics (R@K, mR, rsum, median/mean rank) for any number of captions per image.

A query's 0-based rank is the number of negative candidates that score above its best positive
(docs/evaluation.md#the-standard-protocol). Ranks are counted, not sorted: the matrix is read in blocks of rows, both
directions in the same pass, so a 20000 x 100000 float32 matrix (8 GB) is scored without a copy.

Tie policies (identical captions give identical columns, so ties are real, docs/evaluation.md#duplicate-captions):

* ``optimistic``: candidates that tie with the best positive rank below it (strictly-higher count).
* ``pessimistic``: tied negatives rank above it.
* ``numpy`` (default): the exact order of the official AMFMN/GaLR/MSA code
  (``np.argsort(row)[::-1]`` on a float64 copy, per query), so published tables are reproduced;
  one sort per query, done a block of queries at a time.
* ``torch_argsort``: ``torch.argsort(row, descending=True)`` in the score matrix's dtype (SkyScript).
* ``torch_topk``: a query is a hit at k when ``torch.topk(row, k)`` holds a positive (clip_benchmark,
  RemoteCLIP); gives hits per k, not ranks, so no medr/meanr.

Protocols (which queries, candidates and positives; `protocols.PROTOCOLS`, docs/protocols.md):
``amfmn`` (default), ``multi_positive``, ``dedup_text``, ``dedup_image``, ``remoteclip``, ``skyscript``.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .choices import DEFAULT_PROTOCOL, DEFAULT_TIE_POLICY, TIE_POLICIES
from .protocols import Direction, get_protocol, protocol_directions

#: Matrix entries compared per block (rows x candidates); bounds the temporary memory.
BLOCK_ELEMENTS = 1 << 22


def as_score_matrix(sim, name: str = "sim") -> torch.Tensor:
    """A 2-D floating torch view of `sim` (torch tensor or NumPy array, memmaps included); no copy."""
    if isinstance(sim, np.ndarray):
        if any(stride < 0 for stride in sim.strides):
            sim = np.ascontiguousarray(sim)  # torch cannot view negative strides
        with warnings.catch_warnings():  # read-only arrays are fine: scores are never written
            warnings.simplefilter("ignore", UserWarning)
            sim = torch.from_numpy(sim)
    elif isinstance(sim, torch.Tensor):
        sim = sim.detach()
    else:
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(sim).__name__}")
    if sim.ndim != 2:
        raise ValueError(f"{name} must be a 2-D [N_images, N_texts] matrix, got shape {tuple(sim.shape)}")
    if not sim.is_floating_point():
        raise TypeError(f"{name} must hold floating-point scores, got dtype {sim.dtype}")
    return sim


@dataclass(frozen=True)
class RetrievalRanks:
    """0-based rank of every query: `i2t[q]` for image queries, `t2i[q]` for text queries."""

    i2t: np.ndarray
    t2i: np.ndarray


def _check_every_query_has_a_positive(direction: Direction, name: str) -> None:
    empty = np.flatnonzero(np.diff(direction.indptr) == 0)
    if empty.size:
        axis = "images" if name == "i2t" else "texts"
        queries = empty if direction.query_index is None else direction.query_index[empty]
        raise ValueError(
            f"{empty.size} {name} queries have no positive ({axis} "
            f"{queries[:5].tolist()}...): every image needs at least one caption"
        )


def _pair_indices(direction: Direction, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(query number, query-axis index, candidate-axis index) of every positive pair."""
    query_of_pair = np.repeat(np.arange(direction.n_queries), np.diff(direction.indptr))
    query_axis = query_of_pair if direction.query_index is None else direction.query_index[query_of_pair]
    candidate_axis = (
        direction.positives if direction.candidate_index is None else direction.candidate_index[direction.positives]
    )
    return tuple(
        torch.as_tensor(index, dtype=torch.long, device=device)
        for index in (query_of_pair, query_axis, candidate_axis)
    )


def _best_positive(
    sim: torch.Tensor, direction: Direction, queries_on_rows: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best positive score of each query and how many of its positives reach it."""
    query_of_pair, query_axis, candidate_axis = _pair_indices(direction, sim.device)
    scores = sim[query_axis, candidate_axis] if queries_on_rows else sim[candidate_axis, query_axis]
    best = torch.full((direction.n_queries,), float("-inf"), dtype=sim.dtype, device=sim.device)
    best.scatter_reduce_(0, query_of_pair, scores, reduce="amax")
    at_best = torch.zeros(direction.n_queries, dtype=torch.long, device=sim.device)
    at_best.scatter_add_(0, query_of_pair, (scores == best[query_of_pair]).long())
    return best, at_best


def _axis_mask(index: np.ndarray | None, size: int, device) -> torch.Tensor | None:
    if index is None:
        return None
    mask = torch.zeros(size, dtype=torch.bool, device=device)
    mask[torch.as_tensor(index, device=device)] = True
    return mask


def _check_no_nan(block: torch.Tensor, name: str, first_row: int) -> None:
    if torch.isnan(block).any():
        row = first_row + int(torch.isnan(block).any(dim=1).nonzero()[0])
        raise ValueError(f"{name} has NaN scores (row {row}); ranks would be meaningless")


def _select(values: torch.Tensor, index: np.ndarray | None) -> torch.Tensor:
    return values if index is None else values[torch.as_tensor(index, device=values.device)]


def _count_true(mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Number of True per row/column; summing bytes into int32 avoids an int64 copy of the block."""
    return mask.view(torch.uint8).sum(dim=dim, dtype=torch.int32)


def _counted_ranks(sim_i2t, sim_t2i, i2t: Direction, t2i: Direction, strict: bool, block_rows: int) -> RetrievalRanks:
    """Ranks by counting candidates above (strict) or at/above (not strict) the best positive.

    One pass over row blocks serves both directions: image queries count along each row,
    text queries accumulate their counts down the columns.
    """
    n_img, n_txt = sim_i2t.shape
    device = sim_i2t.device
    best_i2t, at_best_i2t = _best_positive(sim_i2t, i2t, queries_on_rows=True)
    best_t2i, at_best_t2i = _best_positive(sim_t2i, t2i, queries_on_rows=False)
    # Per-row / per-column thresholds; rows or columns that are not queries are ignored.
    row_threshold = torch.full((n_img,), float("inf"), dtype=sim_i2t.dtype, device=device)
    row_threshold[_select(torch.arange(n_img, device=device), i2t.query_index)] = best_i2t
    column_threshold = torch.full((n_txt,), float("inf"), dtype=sim_t2i.dtype, device=device)
    column_threshold[_select(torch.arange(n_txt, device=device), t2i.query_index)] = best_t2i
    text_candidates = _axis_mask(i2t.candidate_index, n_txt, device)
    image_candidates = _axis_mask(t2i.candidate_index, n_img, device)
    above = torch.gt if strict else torch.ge
    row_counts = torch.empty(n_img, dtype=torch.long, device=device)
    column_counts = torch.zeros(n_txt, dtype=torch.long, device=device)
    hits = torch.empty(min(block_rows, n_img), n_txt, dtype=torch.bool, device=device)  # reused by every block
    for start in range(0, n_img, block_rows):
        stop = min(start + block_rows, n_img)
        block = sim_i2t[start:stop]
        _check_no_nan(block, "sim", start)
        block_hits = above(block, row_threshold[start:stop, None], out=hits[: stop - start])
        if text_candidates is not None:
            block_hits &= text_candidates
        row_counts[start:stop] = _count_true(block_hits, dim=1)
        if sim_t2i is not sim_i2t:
            block = sim_t2i[start:stop]
            _check_no_nan(block, "t2i_sim", start)
        if image_candidates is not None:
            block = block[image_candidates[start:stop]]
        column_counts += _count_true(above(block, column_threshold, out=hits[: len(block)]), dim=0)
    i2t_ranks = _select(row_counts, i2t.query_index)
    t2i_ranks = _select(column_counts, t2i.query_index)
    if not strict:  # the best positive and its tied positives were counted too
        i2t_ranks, t2i_ranks = i2t_ranks - at_best_i2t, t2i_ranks - at_best_t2i
    return RetrievalRanks(i2t_ranks.cpu().numpy(), t2i_ranks.cpu().numpy())


def _query_blocks(sim: torch.Tensor, direction: Direction, queries_on_rows: bool, block_queries: int, name: str):
    """(start, stop, block) per block of queries: the block's scores [queries, candidates] in the
    candidate order of `direction`, in the matrix's dtype, on the CPU."""
    query_ids = np.arange(direction.n_queries) if direction.query_index is None else direction.query_index
    for start in range(0, direction.n_queries, block_queries):
        stop = min(start + block_queries, direction.n_queries)
        index = torch.as_tensor(query_ids[start:stop], device=sim.device)
        block = sim.index_select(0 if queries_on_rows else 1, index)
        block = (block if queries_on_rows else block.t()).cpu()
        if torch.isnan(block).any():
            raise ValueError(f"{name} has NaN scores; ranks would be meaningless")
        if direction.candidate_index is not None:
            block = block[:, torch.as_tensor(direction.candidate_index)]
        yield start, stop, block.contiguous()


def _descending_order(block: torch.Tensor, tie_policy: str) -> np.ndarray:
    """Candidate indices per row, best first, in the order of the tie policy's reference code.

    NumPy and torch sort each row of a block exactly as they sort that row alone, so a block of
    queries is one call.
    """
    if tie_policy == "torch_argsort":
        return torch.argsort(block, dim=1, descending=True).numpy()
    return np.argsort(block.to(torch.float64).numpy(), axis=1)[:, ::-1]


def _argsort_ranks(
    sim: torch.Tensor, direction: Direction, queries_on_rows: bool, block_queries: int, name: str, tie_policy: str
) -> np.ndarray:
    """Ranks in the order of the reference code: `np.argsort(scores)[::-1]` on float64 (AMFMN,
    GaLR, MSA) or `torch.argsort(scores, descending=True)` (SkyScript), per query."""
    ranks = np.empty(direction.n_queries, dtype=np.int64)
    for start, stop, block in _query_blocks(sim, direction, queries_on_rows, block_queries, name):
        descending = _descending_order(block, tie_policy)
        position = np.empty_like(descending)
        np.put_along_axis(position, descending, np.arange(block.shape[1])[None, :], axis=1)
        first, last = direction.indptr[start], direction.indptr[stop]
        query_of_pair = np.repeat(np.arange(stop - start), np.diff(direction.indptr[start : stop + 1]))
        positive_positions = position[query_of_pair, direction.positives[first:last]]
        ranks[start:stop] = np.minimum.reduceat(positive_positions, direction.indptr[start:stop] - first)
    return ranks


def _topk_hits(
    sim: torch.Tensor, direction: Direction, queries_on_rows: bool, block_queries: int, name: str, ks: Sequence[int]
) -> dict[int, np.ndarray]:
    """Per k: whether `torch.topk(scores, k)` of each query holds a positive (clip_benchmark's
    `recall_at_k(...) > 0`; k is capped at the number of candidates)."""
    hits = {k: np.empty(direction.n_queries, dtype=bool) for k in ks}
    for start, stop, block in _query_blocks(sim, direction, queries_on_rows, block_queries, name):
        first, last = direction.indptr[start], direction.indptr[stop]
        query_of_pair = np.repeat(np.arange(stop - start), np.diff(direction.indptr[start : stop + 1]))
        positive = torch.zeros(block.shape, dtype=torch.bool)
        positive[torch.as_tensor(query_of_pair), torch.as_tensor(direction.positives[first:last])] = True
        for k in ks:
            top = torch.topk(block, min(k, block.shape[1]), dim=1).indices
            hits[k][start:stop] = positive.gather(1, top).any(dim=1).numpy()
    return hits


def _as_index_array(values, length: int, upper: int, name: str) -> np.ndarray:
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if array.ndim != 1 or len(array) != length:
        raise ValueError(f"{name} must have one entry per text ({length}), got shape {array.shape}")
    if length and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must hold integer image indices, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if length and (array.min() < 0 or array.max() >= upper):
        raise ValueError(f"{name} holds image indices outside [0, {upper}): min {array.min()}, max {array.max()}")
    return array


def resolve_tie_policy(protocol: str, tie_policy: str | None) -> str:
    """The tie policy to use: the protocol's own where its source code fixes one, else the
    caller's (default `DEFAULT_TIE_POLICY`); a conflicting explicit choice is an error."""
    fixed = get_protocol(protocol).tie_policy
    if tie_policy is not None and tie_policy not in TIE_POLICIES:
        raise ValueError(f"tie_policy must be one of {TIE_POLICIES}, got {tie_policy!r}")
    if fixed is not None and tie_policy not in (None, fixed):
        raise ValueError(
            f"protocol {protocol!r} orders ties as its source code does ({fixed!r}); got tie_policy={tie_policy!r}"
        )
    return fixed or tie_policy or DEFAULT_TIE_POLICY


def _prepare(sim, text_to_image, t2i_sim, protocol, texts, image_keys, chunk_size):
    """Checked inputs: (sim, t2i_sim, i2t, t2i, i2t block size, t2i block size)."""
    same_matrix = t2i_sim is None or t2i_sim is sim  # then one pass serves both directions
    sim = as_score_matrix(sim)
    t2i_sim = sim if same_matrix else as_score_matrix(t2i_sim, "t2i_sim")
    if t2i_sim.shape != sim.shape or t2i_sim.device != sim.device:
        raise ValueError(
            f"t2i_sim must match sim: got {tuple(t2i_sim.shape)} on "
            f"{t2i_sim.device}, sim is {tuple(sim.shape)} on {sim.device}"
        )
    n_img, n_txt = sim.shape
    if n_img == 0 or n_txt == 0:
        raise ValueError(f"sim is empty: shape {tuple(sim.shape)}")
    text_to_image = _as_index_array(text_to_image, n_txt, n_img, "text_to_image")
    if texts is not None and len(texts) != n_txt:
        raise ValueError(f"texts must have one entry per column of sim ({n_txt}), got {len(texts)}")
    i2t, t2i = protocol_directions(get_protocol(protocol), n_img, n_txt, text_to_image, texts, image_keys)
    _check_every_query_has_a_positive(i2t, "i2t")
    _check_every_query_has_a_positive(t2i, "t2i")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of queries, got {chunk_size}")
    return (
        sim,
        t2i_sim,
        i2t,
        t2i,
        chunk_size or max(1, BLOCK_ELEMENTS // n_txt),
        chunk_size or max(1, BLOCK_ELEMENTS // n_img),
    )


def retrieval_ranks(
    sim,
    text_to_image,
    *,
    t2i_sim=None,
    tie_policy: str | None = None,
    protocol: str = DEFAULT_PROTOCOL,
    texts: Sequence[str] | None = None,
    image_keys: Sequence[Hashable] | None = None,
    chunk_size: int | None = None,
) -> RetrievalRanks:
    """0-based ranks of every query; the arguments are those of `retrieval_metrics`."""
    tie_policy = resolve_tie_policy(protocol, tie_policy)
    if tie_policy == "torch_topk":
        raise ValueError(
            f"tie policy 'torch_topk' (protocol {protocol!r}) gives hits at each k, not ranks: use retrieval_metrics"
        )
    sim, t2i_sim, i2t, t2i, i2t_block, t2i_block = _prepare(
        sim, text_to_image, t2i_sim, protocol, texts, image_keys, chunk_size
    )
    if tie_policy in ("numpy", "torch_argsort"):
        return RetrievalRanks(
            _argsort_ranks(sim, i2t, True, i2t_block, "sim", tie_policy),
            _argsort_ranks(t2i_sim, t2i, False, t2i_block, "t2i_sim", tie_policy),
        )
    return _counted_ranks(sim, t2i_sim, i2t, t2i, tie_policy == "optimistic", i2t_block)


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks or any(not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {ks}")
    return ks


def metrics_from_ranks(ranks: RetrievalRanks, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float | int]:
    """R@K per direction (percent), mR (mean of all recalls), rsum, medr and meanr (1-based)."""
    ks = _check_ks(ks)
    directions = (("i2t", ranks.i2t), ("t2i", ranks.t2i))
    # Count-based percentages, as the official code computes them (bit-identical values).
    metrics = {f"{name}_R@{k}": 100.0 * int(np.count_nonzero(r < k)) / len(r) for name, r in directions for k in ks}
    # Summed in the reference's order, t2i then i2t ((r1t + r5t + r10t + r1i + r5i + r10i) / 6),
    # so mR matches the official code to the last bit.
    rsum = sum(metrics[f"{name}_R@{k}"] for name in ("t2i", "i2t") for k in ks)
    metrics["mR"] = rsum / (2 * len(ks))
    metrics["rsum"] = rsum
    for name, r in directions:
        metrics[f"{name}_medr"] = float(np.floor(np.median(r)) + 1)
        metrics[f"{name}_meanr"] = float(r.mean() + 1)
    for name, r in directions:
        metrics[f"{name}_queries"] = len(r)
    return metrics


def metrics_from_hits(
    i2t: dict[int, np.ndarray], t2i: dict[int, np.ndarray], ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float | int]:
    """R@K from hits per k, with RemoteCLIP's arithmetic: `hits.float().mean().item() * 100` and
    mR = `np.mean` of the recalls in the order i2t R@K..., t2i R@K... (its `retrieval.py` then
    rounds to 2 decimals for printing; these are the unrounded values)."""
    ks = _check_ks(ks)
    metrics = {
        f"{name}_R@{k}": torch.from_numpy(hits[k]).float().mean().item() * 100
        for name, hits in (("i2t", i2t), ("t2i", t2i))
        for k in ks
    }
    metrics["mR"] = float(np.mean(list(metrics.values())))
    metrics["rsum"] = float(sum(metrics[f"{name}_R@{k}"] for name in ("i2t", "t2i") for k in ks))
    metrics["i2t_queries"], metrics["t2i_queries"] = len(i2t[ks[0]]), len(t2i[ks[0]])
    return metrics


def retrieval_metrics(
    sim,
    text_to_image,
    *,
    ks: Sequence[int] = (1, 5, 10),
    tie_policy: str | None = None,
    protocol: str = DEFAULT_PROTOCOL,
    texts: Sequence[str] | None = None,
    image_keys: Sequence[Hashable] | None = None,
    t2i_sim=None,
    chunk_size: int | None = None,
) -> dict[str, float | int | str]:
    """Image-text retrieval metrics of a score matrix.

    Args:
        sim: [N_img, N_txt] scores (torch or NumPy, any float dtype, any device), higher = more
            similar; read block-wise, never copied.
        text_to_image: image index of every text (column); any number of captions per image.
        ks: cut-offs of R@K.
        tie_policy: order of tied scores (module docstring); None = the protocol's own where its
            source code fixes one, else "numpy" (the AMFMN/GaLR/MSA reference order).
        protocol: a name of `protocols.PROTOCOLS` (docs/protocols.md); default "amfmn".
        texts: caption strings as encoded (required by "multi_positive", "dedup_text", "skyscript").
        image_keys: one hashable key per image, e.g. file names (required by "dedup_image",
            "remoteclip", "skyscript").
        t2i_sim: a different matrix to rank images for each text (re-rankers produce one per
            direction); `sim` then only ranks texts for each image.
        chunk_size: rows per block (queries per block for the sorting policies); default bounds a
            block to `BLOCK_ELEMENTS` entries.

    Returns:
        ``i2t_R@K``/``t2i_R@K`` (percent), ``mR``, ``rsum``, ``{i2t,t2i}_{medr,meanr}`` as floats
        (not under "torch_topk"), the query counts ``i2t_queries``/``t2i_queries`` and the
        ``protocol``/``tie_policy`` used.
    """
    tie_policy = resolve_tie_policy(protocol, tie_policy)
    if tie_policy == "torch_topk":
        ks = _check_ks(ks)
        sim, t2i_sim, i2t, t2i, i2t_block, t2i_block = _prepare(
            sim, text_to_image, t2i_sim, protocol, texts, image_keys, chunk_size
        )
        metrics = metrics_from_hits(
            _topk_hits(sim, i2t, True, i2t_block, "sim", ks),
            _topk_hits(t2i_sim, t2i, False, t2i_block, "t2i_sim", ks),
            ks,
        )
    else:
        ranks = retrieval_ranks(
            sim,
            text_to_image,
            t2i_sim=t2i_sim,
            tie_policy=tie_policy,
            protocol=protocol,
            texts=texts,
            image_keys=image_keys,
            chunk_size=chunk_size,
        )
        metrics = metrics_from_ranks(ranks, ks)
    return metrics | {"protocol": protocol, "tie_policy": tie_policy}
