"""Test-time re-ranking of a finished similarity matrix (docs/evaluation.md#re-ranking).

A re-ranker returns one score matrix per direction (`DirectionalScores`): `i2t` ranks texts for
each image (compare within a row), `t2i` ranks images for each text (compare within a column).
Both are [N_img, N_txt]; pass them to `retrieval_metrics(scores.i2t, ..., t2i_sim=scores.t2i)`.

All sorts here are stable: ties go to the lower index, where the official NumPy code leaves the
order of ties unspecified.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .metrics import BLOCK_ELEMENTS, as_score_matrix


class DirectionalScores(NamedTuple):
    """Scores that rank texts per image (`i2t`) and images per text (`t2i`), both [N_img, N_txt]."""

    i2t: torch.Tensor
    t2i: torch.Tensor


def _descending_order(scores: torch.Tensor, top: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of `scores`: the first `top` indices of the stable descending order and the 0-based
    position of every entry in that order (int32, same shape as `scores`)."""
    n_rows, n_cols = scores.shape
    top_indices = torch.empty(n_rows, top, dtype=torch.long, device=scores.device)
    positions = torch.empty(n_rows, n_cols, dtype=torch.int32, device=scores.device)
    block = max(1, BLOCK_ELEMENTS // n_cols)
    arange = torch.arange(n_cols, dtype=torch.int32, device=scores.device).expand(min(block, n_rows), n_cols)
    for start in range(0, n_rows, block):
        order = torch.argsort(scores[start : start + block], dim=1, descending=True, stable=True)
        top_indices[start : start + block] = order[:, :top]
        positions[start : start + block].scatter_(1, order, arange[: order.shape[0]])
    return top_indices, positions


def no_rerank(sim) -> DirectionalScores:
    """The original scores for both directions (no copy)."""
    sim = as_score_matrix(sim)
    return DirectionalScores(sim, sim)


def _galr_direction(
    scores: torch.Tensor,
    candidates: torch.Tensor,
    reverse_positions: torch.Tensor,
    wp1: float,
    wp2: float,
    decay: float,
) -> torch.Tensor:
    """GaLR's `i2t_rerank_optim` for queries on the rows of `scores` [Q, C].

    `candidates` [Q, K] holds each query's top-K in descending order; `reverse_positions` [Q, K]
    the position of the query in each candidate's own ranking (the reverse search). The
    arithmetic follows the official code: float64 terms, accumulated into a float32 matrix.
    """
    k = candidates.shape[1]
    steps = torch.arange(1, k + 1, dtype=torch.float64, device=scores.device)
    # Saliency: the score divided by the candidate's total over all queries.
    saliency = scores.gather(1, candidates).double() / scores.sum(dim=0, dtype=torch.float64)[candidates]
    rank_term = torch.exp(-decay * steps)
    # Position of each candidate after sorting the K candidates by reverse-search position.
    by_reverse = torch.argsort(reverse_positions, dim=1, stable=True)
    reverse_rank = torch.empty_like(by_reverse).scatter_(
        1, by_reverse, torch.arange(k, device=scores.device).expand_as(by_reverse)
    )
    reverse_term = wp2 * torch.exp(-decay * (reverse_rank.double() + 1))
    values = (wp1 * saliency).float()
    values = (values.double() + rank_term).float()
    values = (values.double() + reverse_term).float()
    if not torch.isfinite(values).all():
        raise ValueError(
            "galr_mr produced non-finite scores: a candidate's scores "
            "sum to 0 over all queries (the saliency denominator)"
        )
    return torch.zeros(scores.shape, dtype=torch.float32, device=scores.device).scatter_(1, candidates, values)


def galr_multivariate_rerank(
    sim, k1: int = 30, wp1: float = 0.3, wp2: float = 1.1, decay: float = 0.05
) -> DirectionalScores:
    """GaLR's multivariate re-rank (MR), `i2t_rerank_optim` / `t2i_rerank_optim` (docs/evaluation.md#re-ranking).

    For query i and its candidate t at original rank r among the top K = max(10, k1) (capped at the
    number of candidates), with q(t) its position after ordering the K candidates by where i
    appears in t's own ranking:
        S'[i, t] = wp1 * S[i, t] / sum_i' S[i', t] + exp(-decay (r + 1)) + wp2 * exp(-decay (q(t) + 1));
    non-candidates score 0. Defaults are the official script's (K1=30, Wp1=0.3, Wp2=1.1, xi=0.05).

    Vectorised: one stable argsort per row and per column of S gives every candidate list and
    the reverse-search positions as a lookup; the K candidates of all queries are then
    re-ordered at once. Output is float32, as in the official code.
    """
    sim = as_score_matrix(sim)
    n_img, n_txt = sim.shape
    k_i2t, k_t2i = min(max(10, k1), n_txt), min(max(10, k1), n_img)
    text_top, text_positions = _descending_order(sim, k_i2t)  # texts ranked per image
    image_top, image_positions = _descending_order(sim.t(), k_t2i)  # images ranked per text
    # Reverse search for image i and candidate text t: position of i in t's ranking of images.
    i2t = _galr_direction(sim, text_top, image_positions.t().gather(1, text_top), wp1, wp2, decay)
    t2i = _galr_direction(sim.t(), image_top, text_positions.t().gather(1, image_top), wp1, wp2, decay)
    return DirectionalScores(i2t, t2i.t().contiguous())


def _top_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Per row, True at the k highest scores; ties at the k-th score go to the lower index
    (the same set as a stable descending sort's first k, without sorting)."""
    kth = torch.topk(scores, k, dim=1).values[:, -1:]
    above = scores > kth
    at_kth = scores == kth
    missing = k - above.sum(dim=1, keepdim=True)
    return above | (at_kth & (at_kth.cumsum(dim=1) <= missing))


def _keep_top_k(original: torch.Tensor, reweighted: torch.Tensor, top_k: int) -> torch.Tensor:
    """Per row (query): the top-k candidates of `original`, ordered by `reweighted`, lifted above
    every other candidate, which keeps its original score and order (float64 for exact shifts)."""
    is_candidate = _top_k_mask(original, min(top_k, original.shape[1]))
    original, reweighted = original.double(), reweighted.double()
    lowest_candidate = reweighted.masked_fill(~is_candidate, float("inf")).amin(dim=1, keepdim=True)
    highest_other = original.masked_fill(is_candidate, float("-inf")).amax(dim=1, keepdim=True)
    floor = torch.where(torch.isfinite(highest_other), highest_other, torch.zeros_like(highest_other))
    return torch.where(is_candidate, reweighted - lowest_candidate + floor + 1.0, original)


def smr_rerank(sim, tau: float = 0.05, top_k: int | None = None) -> DirectionalScores:
    """Similarity-matrix reweighting (CMPAGL's SMR, reconstructed as dual-softmax, docs/evaluation.md#re-ranking).

    i2t uses S * softmax(S / tau) over images (how much each text prefers this image); t2i uses
    S * softmax(S / tau) over texts. With `top_k`, only each query's top-k candidates (by S) are
    re-ordered; the rest keep their order below them. This is a reconstruction, not the paper's
    (unpublished) formula.
    """
    sim = as_score_matrix(sim)
    if not tau > 0:
        raise ValueError(f"smr tau must be > 0, got {tau}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"smr top_k must be a positive integer or None, got {top_k}")
    scaled = sim / tau
    i2t = sim * torch.softmax(scaled, dim=0)
    t2i = sim * torch.softmax(scaled, dim=1)
    del scaled
    if top_k is not None:
        i2t = _keep_top_k(sim, i2t, top_k)
        t2i = _keep_top_k(sim.t(), t2i.t(), top_k).t().contiguous()
    return DirectionalScores(i2t, t2i)


#: Re-rankers by name: `fn(sim, **params) -> DirectionalScores`.
RERANKERS = {"none": no_rerank, "galr_mr": galr_multivariate_rerank, "smr": smr_rerank}


def apply_rerank(sim, name: str, **params) -> DirectionalScores:
    """Run the re-ranker `name` (a key of `RERANKERS`) with its keyword parameters."""
    if name not in RERANKERS:
        raise ValueError(f"unknown re-ranker {name!r}; choose from {sorted(RERANKERS)}")
    return RERANKERS[name](sim, **params)
