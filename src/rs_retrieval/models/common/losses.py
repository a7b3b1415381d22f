"""Ranking losses shared by the methods.

All functions take a square score matrix `scores[i, j]` = score(image i, text j) for a batch of
matched pairs (positives on the diagonal) and return a scalar.
"""

import math

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


#: open_clip clamps CLIP's learnable log-temperature to [0, ln 100] (open_clip's training loop).
MAX_LOGIT_SCALE = math.log(100.0)


def _gather_across_processes(tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(the tensor of every process concatenated along dim 0, this process's row offset);
    gradients flow back to each process's own rows. Outside a multi-process run: (tensor, 0)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor, 0
    offset = dist.get_rank() * len(tensor)
    if tensor.requires_grad:
        from torch.distributed.nn.functional import all_gather

        return torch.cat(all_gather(tensor.contiguous())), offset
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts), offset


def clip_contrastive_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    logit_scale: torch.Tensor,
    image_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Symmetric InfoNCE (the CLIP loss) with a learnable log-temperature `logit_scale`.

    In a multi-process run every process scores its own pairs against the pairs of all
    processes (global negatives; features gathered with gradients), which averaged over processes
    equals the loss of the whole global batch. Texts of the same image (`image_ids`) are not
    used as negatives of each other's image. `logit_scale` is clamped to [0, ln 100] as in open_clip.
    """
    image_embeds = torch.nn.functional.normalize(image_embeds, dim=-1)
    text_embeds = torch.nn.functional.normalize(text_embeds, dim=-1)
    all_images, offset = _gather_across_processes(image_embeds)
    all_texts, _ = _gather_across_processes(text_embeds)
    scale = logit_scale.clamp(0.0, MAX_LOGIT_SCALE).exp()
    logits_per_image = scale * image_embeds @ all_texts.t()
    logits_per_text = scale * text_embeds @ all_images.t()
    batch = len(image_embeds)
    targets = torch.arange(offset, offset + batch, device=image_embeds.device)
    if image_ids is not None:
        all_ids, _ = _gather_across_processes(image_ids)
        same_image = image_ids.view(-1, 1) == all_ids.view(1, -1)
        same_image[torch.arange(batch, device=same_image.device), targets] = False
        logits_per_image = logits_per_image.masked_fill(same_image, float("-inf"))
        logits_per_text = logits_per_text.masked_fill(same_image, float("-inf"))
    image_to_text = torch.nn.functional.cross_entropy(logits_per_image, targets)
    text_to_image = torch.nn.functional.cross_entropy(logits_per_text, targets)
    loss = (image_to_text + text_to_image) / 2
    return loss, {"i2t": image_to_text.detach(), "t2i": text_to_image.detach(), "logit_scale": scale.detach()}
