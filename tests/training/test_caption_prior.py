"""Prior caption similarity for AMFMN's dynamic margin (AMFMN Eq. 29-30; docs/methods/amfmn.md#dynamic-margin): BLEU-4
and the released score recipe (the Porter stems are tested with the word tokenizer). Exact parity with NLTK
(PorterStemmer on 47k words; the full recipe on 40 x 2260 RSITMD test pairs) was checked once with a throw-away script;
these tests pin hand cases."""

import math

import numpy as np
import pytest
import torch
from helpers import load_script

from rs_retrieval.training.caption_prior import CaptionPriorSimilarity, PrecomputedCaptionPrior, sentence_bleu4


def test_sentence_bleu4_hand_cases():
    # all n-gram precisions 1, brevity penalty exp(1 - 5/4)
    assert sentence_bleu4([list("abcde")], list("abcd")) == pytest.approx(math.exp(-0.25))
    # the closest reference length (ties -> shorter) sets the penalty; clipping uses the max count over references
    assert sentence_bleu4([list("abcdx"), list("abcdyy")], list("abcdx")) == pytest.approx(1.0)
    assert sentence_bleu4([list("abxd")], list("abcd")) < 1e-70  # no shared 3-gram: NLTK's tiny, unsmoothed value
    assert sentence_bleu4([list("xyz")], list("abc")) == 0.0


def test_prior_follows_the_released_recipe_by_hand():
    prior = CaptionPriorSimilarity(["There are two red planes on the runway.", "Green trees."], captions_per_image=1)
    candidates = CaptionPriorSimilarity(
        [
            "There are two red planes on the runway.",
            "two red planes on the runway.",
            "Red planes near two tanks",
            "green trees",
        ],
        captions_per_image=1,
    )
    prior.captions += candidates.captions  # score the candidates against the two images
    scores = prior([0, 1], [2, 3, 4, 5])
    # exact match: score1 = 1; content overlap {two, red, plane, runway} -> 1
    assert scores[0, 0] == pytest.approx(1.0)
    # all n-grams of the candidate are in the reference (7 vs 9 tokens): BLEU = exp(1 - 9/7); overlap 1
    assert scores[0, 1] == pytest.approx((math.exp(1 - 9 / 7) + 1) / 2)
    # no shared 4-gram -> score1 0; overlap 3 of the reference's 4 content stems
    assert scores[0, 2] == pytest.approx(0.75 / 2)
    # "green trees" vs "Green trees.": tokens differ by the ".", too short for a 4-gram -> score1 0, overlap 1
    assert scores[0, 3] == 0 and scores[1, 3] == pytest.approx(0.5) and scores[1, 2] == 0
    assert scores.dtype == torch.float32 and scores.shape == (2, 4)
    with pytest.raises(IndexError, match="caption indices"):
        prior([0], [9])
    with pytest.raises(ValueError, match="images of 5"):
        CaptionPriorSimilarity(["a", "b"])


def test_full_matrix_equals_per_pair_scores_and_round_trips_through_the_script(tmp_path):
    captions = [
        "Two white planes are parked at the airport.",
        "Planes are parked near the runway.",
        "An airport with two white planes.",
        "Many green trees surround a pond.",
        "A pond in the forest.",
        "Green trees and a blue pond.",
        "two white planes are parked at the airport.",
        "A big parking lot with cars.",
        "",
    ]
    prior = CaptionPriorSimilarity(captions, captions_per_image=3)
    full = prior.full_matrix()
    assert full.shape == (3, 9) and full.dtype == np.float32
    np.testing.assert_allclose(full, prior(range(3), range(9)).numpy(), rtol=1e-6, atol=1e-7)
    assert full[2, 6] > 0.5 and full[0, 6] > full[1, 6]  # the near-duplicate caption

    (tmp_path / "caps.txt").write_text("\n".join(captions) + "\n")
    script = load_script("compute_caption_prior.py")
    assert (
        script.main(
            ["--captions", str(tmp_path / "caps.txt"), "--captions-per-image", "3", "--out", str(tmp_path / "p.npy")]
        )
        == 0
    )
    loaded = PrecomputedCaptionPrior.load(tmp_path / "p.npy")
    assert loaded.shape == (3, 9)
    torch.testing.assert_close(loaded([2, 0], [6, 1, 8]), torch.from_numpy(full)[[2, 0]][:, [6, 1, 8]])
    assert (
        script.main(["--captions", str(tmp_path / "caps.txt"), "--out", str(tmp_path / "q.npy")]) == 1
    )  # 9 captions, not 5 per image
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        PrecomputedCaptionPrior(np.full((2, 2), 1.5))
