"""Ranking losses shared by the methods.

All functions take a square score matrix `scores[i, j]` = score(image i, text j) for a batch of
matched pairs (positives on the diagonal) and return a scalar.
"""

import torch


def same_image_mask(image_ids: torch.Tensor | None, size: int, device) -> torch.Tensor:
    """Boolean [B, B] mask of pairs that are positives: the diagonal, plus texts of the same image."""
    mask = torch.eye(size, dtype=torch.bool, device=device)
    if image_ids is not None:
        mask |= image_ids.view(-1, 1) == image_ids.view(1, -1)
    return mask


def hinge_triplet_loss(
    scores: torch.Tensor,
    margin: float | torch.Tensor = 0.2,
    hardest_negative: bool = False,
    image_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bidirectional hinge triplet loss, summed over the batch (VSE0 / VSE++).

    image->text: [m + S[i, j] - S[i, i]]_+ over texts j; text->image: [m + S[i, j] - S[j, j]]_+ over
    images i. `hardest_negative` keeps only the largest violation per anchor (VSE++); otherwise all
    negatives are summed (AMFMN/GaLR reference code). `margin` may be a [B, B] matrix (dynamic
    margin). With `image_ids`, texts of the anchor's own image are not used as negatives (the
    reference code does not do this; pass None to reproduce it).
    """
    size = scores.size(0)
    if scores.dim() != 2 or scores.size(1) != size:
        raise ValueError(f"scores must be a square [B, B] matrix, got shape {tuple(scores.shape)}")
    positives = scores.diagonal()
    cost_text = (margin + scores - positives.view(-1, 1)).clamp(min=0)  # anchor = image (row)
    cost_image = (margin + scores - positives.view(1, -1)).clamp(min=0)  # anchor = text (column)
    ignore = same_image_mask(image_ids, size, scores.device)
    cost_text = cost_text.masked_fill(ignore, 0)
    cost_image = cost_image.masked_fill(ignore, 0)
    if hardest_negative:
        return cost_text.max(dim=1).values.sum() + cost_image.max(dim=0).values.sum()
    return cost_text.sum() + cost_image.sum()


def dynamic_margin(prior_similarity: torch.Tensor, gamma: float, beta: float) -> torch.Tensor:
    """AMFMN's dynamic variable margin (paper Eq. 29): gamma * (e^beta - e^(beta*S)) / (e^beta - 1).

    `prior_similarity` in [0, 1] (e.g. caption-overlap similarity of a negative caption to the
    anchor image's captions); the margin is gamma at S = 0 and 0 at S = 1.
    """
    if beta == 0:
        return gamma * (1.0 - prior_similarity)
    e_beta = torch.exp(torch.tensor(float(beta), dtype=prior_similarity.dtype, device=prior_similarity.device))
    return gamma * (e_beta - torch.exp(beta * prior_similarity)) / (e_beta - 1.0)
