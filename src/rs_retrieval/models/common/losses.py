"""Ranking losses shared by the methods.

All functions take a square score matrix `scores[i, j]` = score(image i, text j) for a batch of
matched pairs (positives on the diagonal) and return a scalar.
"""

import math
import os
import sys
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from ...fileio import atomic_file


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


# --- prior caption similarity for the dynamic margin (AMFMN Eq. 29-30) ---------------------------

BLEU_ORDER = 4


def sentence_bleu4(references: Sequence[Sequence[str]], hypothesis: Sequence[str]) -> float:
    """`nltk.translate.bleu_score.sentence_bleu(references, hypothesis)`: BLEU-4, uniform weights,
    no smoothing (a zero n-gram precision counts as the smallest float, as NLTK does)."""
    return _PriorReferences([_PriorCaption(tuple(r), frozenset()) for r in references]).bleu(_PriorCaption(tuple(hypothesis), frozenset()))


class _PriorCaption:
    """One caption, pre-processed once: stemmed tokens, n-gram counts, content-word set."""

    __slots__ = ("tokens", "ngrams", "top_ngrams", "content", "content_length")

    def __init__(self, tokens: tuple[str, ...], content: frozenset[str], content_length: int = 0):
        self.tokens = tokens
        self.ngrams = [Counter(zip(*(tokens[k:] for k in range(n)))) for n in range(1, BLEU_ORDER + 1)]
        self.top_ngrams = frozenset(self.ngrams[-1])
        self.content = content
        self.content_length = content_length


class _PriorReferences:
    """The reference captions of one image, merged for BLEU clipping and overlap."""

    def __init__(self, captions: Sequence[_PriorCaption]):
        self.token_lists = {c.tokens for c in captions}
        self.lengths = [len(c.tokens) for c in captions]
        self.max_counts = [Counter() for _ in range(BLEU_ORDER)]
        for caption in captions:
            for merged, counts in zip(self.max_counts, caption.ngrams):
                for gram, count in counts.items():
                    merged[gram] = max(merged[gram], count)
        self.top_ngrams = frozenset().union(*(c.top_ngrams for c in captions)) if captions else frozenset()
        self.content = [(c.content, c.content_length) for c in captions if c.content_length]

    def bleu(self, hypothesis: _PriorCaption) -> float:
        numerators, denominators = [], []
        for counts, limits in zip(hypothesis.ngrams, self.max_counts):
            numerators.append(sum(min(count, limits.get(gram, 0)) for gram, count in counts.items()))
            denominators.append(max(1, sum(counts.values())))
        if numerators[0] == 0:
            return 0.0
        length = len(hypothesis.tokens)
        closest = min(self.lengths, key=lambda r: (abs(r - length), r))
        penalty = 1.0 if length > closest else math.exp(1 - closest / length)
        logs = (math.log(n / d) if n else math.log(sys.float_info.min) for n, d in zip(numerators, denominators))
        return penalty * math.exp(math.fsum(lg / BLEU_ORDER for lg in logs))

    def similarity(self, candidate: _PriorCaption) -> float:
        """(score1 + score2) / 2 of the released `generate_t2i_sim_matrix.py` recipe."""
        if candidate.tokens in self.token_lists:
            score1 = 1.0
        elif candidate.top_ngrams & self.top_ngrams:
            score1 = self.bleu(candidate)
        else:  # no shared 4-gram: NLTK's unsmoothed BLEU is below 1e-76 here
            score1 = 0.0
        score2 = sum(len(ref & candidate.content) / length for ref, length in self.content) / len(self.content) if self.content else 0.0
        return (score1 + score2) / 2


class CaptionPriorSimilarity:
    """Prior similarity P[image, caption] in [0, 1] between a caption and an image's reference
    captions, the input of AMFMN's dynamic margin (AMFMN paper Eq. 29-30, released recipe; docs/methods/amfmn.md#dynamic-margin):

    tokens = Porter stems of the NLTK-tokenised lower-cased caption; score1 = 1 if the caption's
    tokens equal a reference's, else NLTK BLEU-4 (no smoothing) against the image's references;
    score2 = mean over references of |stems(ref) & stems(caption)| / len(stems(ref)) with stop-words
    and "," "." removed (references left empty are skipped); P = (score1 + score2) / 2.

    `captions` are in image order, `captions_per_image` consecutive captions per image (the
    training captions; P is indexed by their image and caption positions).
    """

    def __init__(self, captions: Sequence[str], captions_per_image: int = 5, stopwords: Iterable[str] | None = None):
        from ..amfmn_family.tokenization_word import load_stopwords, porter_stem, word_tokenize

        if captions_per_image < 1 or len(captions) % captions_per_image:
            raise ValueError(f"{len(captions)} captions do not split into images of {captions_per_image} captions")
        stop = (load_stopwords() if stopwords is None else frozenset(stopwords)) | {",", "."}
        stem_cache: dict[str, str] = {}
        self.captions = []
        for caption in captions:
            tokens = tuple(stem_cache.setdefault(t, porter_stem(t)) for t in word_tokenize(caption.lower()))
            content = [t for t in tokens if t not in stop]
            self.captions.append(_PriorCaption(tokens, frozenset(content), len(content)))
        self.captions_per_image = captions_per_image
        self.images = [
            _PriorReferences(self.captions[start : start + captions_per_image]) for start in range(0, len(self.captions), captions_per_image)
        ]

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.images), len(self.captions)

    def __call__(self, image_indices: Sequence[int] | torch.Tensor, caption_indices: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """P[image_indices[i], caption_indices[j]] as a float32 [I, J] tensor (e.g. one batch)."""
        images, captions = _index_list(image_indices, len(self.images), "image"), _index_list(caption_indices, len(self.captions), "caption")
        values = [[self.images[i].similarity(self.captions[j]) for j in captions] for i in images]
        return torch.tensor(values, dtype=torch.float32).reshape(len(images), len(captions))

    def full_matrix(self) -> np.ndarray:
        """The whole float32 [N_img, N_cap] matrix. The overlap term is two matrix products; BLEU
        is evaluated only for pairs that share a 4-gram (or match exactly): every other pair is
        below 1e-76 in NLTK, i.e. 0 in float32, and 0 in `__call__`."""
        num_images, num_captions = self.shape
        vocabulary: dict[str, int] = {}
        rows, cols = [], []
        for j, caption in enumerate(self.captions):
            for stem in caption.content:
                rows.append(j)
                cols.append(vocabulary.setdefault(stem, len(vocabulary)))
        presence = np.zeros((num_captions, max(1, len(vocabulary))))
        presence[rows, cols] = 1.0
        weights = np.zeros((num_images, num_captions))  # image i: 1 / (|non-empty refs| * len(ref)) per ref
        for i, refs in enumerate(self.images):
            start = i * self.captions_per_image
            used = [j for j in range(start, start + self.captions_per_image) if self.captions[j].content_length]
            for j in used:
                weights[i, j] = 1.0 / (len(used) * self.captions[j].content_length)
        matrix = (weights @ presence) @ presence.T / 2  # score2 / 2

        by_ngram: dict[tuple, set[int]] = {}
        by_tokens: dict[tuple, set[int]] = {}
        for i, refs in enumerate(self.images):
            for gram in refs.top_ngrams:
                by_ngram.setdefault(gram, set()).add(i)
            for tokens in refs.token_lists:
                by_tokens.setdefault(tokens, set()).add(i)
        for j, caption in enumerate(self.captions):
            exact = by_tokens.get(caption.tokens, set())
            matrix[list(exact), j] += 0.5
            for i in set().union(*(by_ngram.get(g, ()) for g in caption.top_ngrams)) - exact:
                matrix[i, j] += self.images[i].bleu(caption) / 2
        return matrix.astype(np.float32)

    def save(self, path: str | os.PathLike) -> str:
        """Compute `full_matrix` and write it as a .npy file (atomic)."""
        return save_caption_prior(self.full_matrix(), path)


class PrecomputedCaptionPrior:
    """A prior matrix [N_img, N_cap] computed once (`scripts/compute_caption_prior.py`), indexed like
    `CaptionPriorSimilarity`."""

    def __init__(self, matrix: np.ndarray):
        matrix = np.asarray(matrix, dtype=np.float32)
        if matrix.ndim != 2 or (matrix.size and (matrix.min() < 0 or matrix.max() > 1)):
            raise ValueError(f"a prior similarity matrix must be 2-D with values in [0, 1], got shape {matrix.shape}")
        self.matrix = torch.from_numpy(matrix)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PrecomputedCaptionPrior":
        return cls(np.load(path, allow_pickle=False))

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.matrix.shape)

    def __call__(self, image_indices, caption_indices) -> torch.Tensor:
        images = torch.as_tensor(_index_list(image_indices, self.matrix.size(0), "image"), dtype=torch.long)
        captions = torch.as_tensor(_index_list(caption_indices, self.matrix.size(1), "caption"), dtype=torch.long)
        return self.matrix[images][:, captions]


def save_caption_prior(matrix: np.ndarray, path: str | os.PathLike) -> str:
    """Write a prior matrix as float32 .npy, atomically."""
    with atomic_file(path, suffix=".npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.asarray(matrix, dtype=np.float32))
    return os.fspath(path)


def _index_list(indices, size: int, what: str) -> list[int]:
    values = indices.tolist() if isinstance(indices, torch.Tensor) else [int(i) for i in indices]
    bad = [i for i in values if not 0 <= i < size]
    if bad:
        raise IndexError(f"{what} indices {bad[:5]} out of range [0, {size})")
    return values


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
