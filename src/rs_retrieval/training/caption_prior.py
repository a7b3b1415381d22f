"""Prior caption similarity for AMFMN's dynamic margin (AMFMN paper Eq. 29-30): data preparation
that runs before training, once per training set. The model only receives its [B, B] slices
(`prior_similarity`, added to each batch by the collator); the margin itself is
`models.common.losses.dynamic_margin`.
"""

from __future__ import annotations

import math
import os
import sys
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from ..fileio import atomic_file
from ..models.amfmn_family.tokenization_word import load_stopwords, porter_stem, word_tokenize

BLEU_ORDER = 4


def sentence_bleu4(references: Sequence[Sequence[str]], hypothesis: Sequence[str]) -> float:
    """`nltk.translate.bleu_score.sentence_bleu(references, hypothesis)`: BLEU-4, uniform weights,
    no smoothing (a zero n-gram precision counts as the smallest float, as NLTK does)."""
    return _PriorReferences([_PriorCaption(tuple(r), frozenset()) for r in references]).bleu(
        _PriorCaption(tuple(hypothesis), frozenset())
    )


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
        score2 = (
            sum(len(ref & candidate.content) / length for ref, length in self.content) / len(self.content)
            if self.content
            else 0.0
        )
        return (score1 + score2) / 2


class CaptionPriorSimilarity:
    """Prior similarity P[image, caption] in [0, 1] between a caption and an image's reference captions, the input of
    AMFMN's dynamic margin (AMFMN paper Eq. 29-30, released recipe; docs/methods/amfmn.md#dynamic-margin):

    tokens = Porter stems of the NLTK-tokenised lower-cased caption; score1 = 1 if the caption's
    tokens equal a reference's, else NLTK BLEU-4 (no smoothing) against the image's references;
    score2 = mean over references of |stems(ref) & stems(caption)| / len(stems(ref)) with stop-words
    and "," "." removed (references left empty are skipped); P = (score1 + score2) / 2.

    `captions` are in image order, `captions_per_image` consecutive captions per image (the
    training captions; P is indexed by their image and caption positions).
    """

    def __init__(self, captions: Sequence[str], captions_per_image: int = 5, stopwords: Iterable[str] | None = None):
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
            _PriorReferences(self.captions[start : start + captions_per_image])
            for start in range(0, len(self.captions), captions_per_image)
        ]

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.images), len(self.captions)

    def __call__(
        self, image_indices: Sequence[int] | torch.Tensor, caption_indices: Sequence[int] | torch.Tensor
    ) -> torch.Tensor:
        """P[image_indices[i], caption_indices[j]] as a float32 [I, J] tensor (e.g. one batch)."""
        images, captions = (
            _index_list(image_indices, len(self.images), "image"),
            _index_list(caption_indices, len(self.captions), "caption"),
        )
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
        for i in range(len(self.images)):
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
    def load(cls, path: str | os.PathLike) -> PrecomputedCaptionPrior:
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
