import numpy as np
import pytest
import torch

from rs_retrieval.evaluation.choices import RERANKER_NAMES
from rs_retrieval.evaluation.metrics import retrieval_metrics
from rs_retrieval.evaluation.rerank import RERANKERS, apply_rerank, galr_multivariate_rerank, smr_rerank


def galr_reference_i2t(sim, k1, wp1, wp2):
    """GaLR `i2t_rerank_optim` written from GaLR's released rerank.py (docs/evaluation.md#re-ranking), one loop per
    query and candidate
    (stable sorts, so ties in the reverse-search positions go to the better original rank; K capped
    at the number of candidates, where the official code would fail)."""
    k = min(max(10, k1), sim.shape[1])
    sort_i2t = np.argsort(-sim, axis=1, kind="stable")
    sort_t2i = np.argsort(-sim, axis=0, kind="stable")
    new = np.zeros(sim.shape, dtype=np.float32)
    for i in range(sim.shape[0]):
        address = []
        for j in range(k):
            t = sort_i2t[i, j]
            new[i, t] = wp1 * sim[i, t] / np.sum(sim[:, t])
            new[i, t] += np.exp(-0.05 * (j + 1))
            address.append(np.flatnonzero(sort_t2i[:, t] == i)[0])
        for q, t in enumerate(sort_i2t[i, :k][np.argsort(address, kind="stable")]):
            new[i, t] += wp2 * np.exp(-0.05 * (q + 1))
    return new


def _tie_free(shape, seed):
    return np.random.default_rng(seed).uniform(0.05, 1.0, shape)  # positive, like the cosine scores GaLR reranks


def test_galr_mr_equals_loop_reference_from_the_spec():
    sim = _tie_free((45, 225), seed=0)
    got = galr_multivariate_rerank(torch.from_numpy(sim), k1=30, wp1=0.3, wp2=1.1)
    expected_i2t = galr_reference_i2t(sim, 30, 0.3, 1.1)
    expected_t2i = galr_reference_i2t(sim.T, 30, 0.3, 1.1).T  # t2i_rerank_optim
    assert got.i2t.dtype == torch.float32 and got.i2t.shape == sim.shape and got.t2i.shape == sim.shape
    np.testing.assert_allclose(got.i2t.numpy(), expected_i2t, rtol=0, atol=2e-7)
    np.testing.assert_allclose(got.t2i.numpy(), expected_t2i, rtol=0, atol=2e-7)
    text_to_image = np.arange(225) // 5
    reranked = retrieval_metrics(got.i2t, text_to_image, t2i_sim=got.t2i)
    reference = retrieval_metrics(expected_i2t, text_to_image, t2i_sim=expected_t2i)
    assert reranked == reference


def test_galr_mr_keeps_top_k_structure_and_defaults():
    sim = _tie_free((12, 60), seed=1)
    scores = galr_multivariate_rerank(sim, k1=3)  # K = max(10, k1) = 10 texts; 10 images of 12
    assert ((scores.i2t > 0).sum(dim=1) == 10).all()
    assert ((scores.t2i > 0).sum(dim=0) == 10).all()
    top10 = np.argsort(-sim, axis=1, kind="stable")[:, :10]
    assert all(set(np.flatnonzero(scores.i2t[i].numpy())) == set(top10[i]) for i in range(12))
    small = galr_multivariate_rerank(_tie_free((4, 20), seed=2))  # fewer images than K: all re-ranked
    assert (small.t2i > 0).all()
    np.testing.assert_allclose(
        small.t2i.numpy(), galr_reference_i2t(_tie_free((4, 20), seed=2).T, 4, 0.3, 1.1).T, atol=2e-7
    )


def test_galr_mr_rejects_zero_saliency_denominator():
    sim = _tie_free((4, 20), seed=3)
    sim[:, 7] = [0.99, -0.99, 0.25, -0.25]  # in image 0's top 10; sums to exactly 0
    with pytest.raises(ValueError, match="sum to 0"):
        galr_multivariate_rerank(sim)


def smr_reference(sim, tau, top_k=None):
    """Per-query loops: dual-softmax reweighting, each direction normalised over the other axis."""
    n_img, n_txt = sim.shape
    i2t, t2i = np.empty_like(sim), np.empty_like(sim)
    for j in range(n_txt):
        weights = np.exp(sim[:, j] / tau) / np.exp(sim[:, j] / tau).sum()
        i2t[:, j] = sim[:, j] * weights
    for i in range(n_img):
        weights = np.exp(sim[i] / tau) / np.exp(sim[i] / tau).sum()
        t2i[i] = sim[i] * weights
    return i2t, t2i


def reference_order(original, reweighted, top_k):
    """Candidate order of one query: its top-k (by original) sorted by reweighted, then the rest."""
    top = np.argsort(-original, kind="stable")[:top_k]
    top = top[np.argsort(-reweighted[top], kind="stable")]
    rest = [c for c in np.argsort(-original, kind="stable") if c not in set(top)]
    return np.concatenate([top, rest])


def test_smr_equals_brute_force_reference():
    sim = np.random.default_rng(4).uniform(-0.2, 0.9, (30, 150))
    got = smr_rerank(torch.from_numpy(sim), tau=0.05)
    expected_i2t, expected_t2i = smr_reference(sim, 0.05)
    np.testing.assert_allclose(got.i2t.numpy(), expected_i2t, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got.t2i.numpy(), expected_t2i, rtol=1e-10, atol=1e-12)


def test_smr_top_k_reorders_only_the_top_candidates():
    sim = np.random.default_rng(5).uniform(0.0, 1.0, (20, 100))
    got = smr_rerank(sim, tau=0.1, top_k=7)
    full_i2t, full_t2i = smr_reference(sim, 0.1)
    for i in range(20):
        assert (
            np.argsort(-got.i2t[i].numpy(), kind="stable").tolist() == reference_order(sim[i], full_i2t[i], 7).tolist()
        )
    for j in range(100):
        assert (
            np.argsort(-got.t2i[:, j].numpy(), kind="stable").tolist()
            == reference_order(sim[:, j], full_t2i[:, j], 7).tolist()
        )
    unrestricted = smr_rerank(sim, tau=0.1, top_k=1000)  # k beyond the candidates = plain SMR order
    assert (np.argsort(-unrestricted.i2t.numpy(), axis=1) == np.argsort(-full_i2t, axis=1)).all()


def test_registry_and_errors():
    sim = torch.rand(5, 25)
    assert set(RERANKERS) == {"none", "galr_mr", "smr"}
    assert set(RERANKER_NAMES) == set(RERANKERS)  # the torch-free copy the command line offers
    none = apply_rerank(sim, "none")
    assert none.i2t is none.t2i and none.i2t.data_ptr() == sim.data_ptr()  # no copy
    assert torch.equal(apply_rerank(sim, "smr", tau=0.2).i2t, smr_rerank(sim, tau=0.2).i2t)
    assert torch.equal(apply_rerank(sim, "galr_mr", k1=12).t2i, galr_multivariate_rerank(sim, k1=12).t2i)
    with pytest.raises(ValueError, match="unknown re-ranker 'mr'"):
        apply_rerank(sim, "mr")
    with pytest.raises(ValueError, match="tau must be > 0"):
        smr_rerank(sim, tau=0.0)
    with pytest.raises(ValueError, match="top_k"):
        smr_rerank(sim, top_k=0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        apply_rerank(sim, "galr_mr", tau=0.1)


def test_smr_top_k_breaks_boundary_ties_by_index():
    sim = torch.tensor(
        [[0.5, 0.9, 0.5, 0.5, 0.1], [0.2, 0.3, 0.4, 0.6, 0.7], [0.1, 0.1, 0.1, 0.9, 0.8]], dtype=torch.float64
    )
    i2t = smr_rerank(sim, tau=0.1, top_k=2).i2t
    # Image 0: 0.9 and the first of the three tied 0.5 are the candidates; the rest keep their scores.
    assert i2t[0, :2].min() > i2t[0, 2:].max()
    assert torch.equal(i2t[0, 2:], sim[0, 2:])
    assert torch.equal(i2t[2, :3], sim[2, :3]) and i2t[2, 3:].min() > 0.9
