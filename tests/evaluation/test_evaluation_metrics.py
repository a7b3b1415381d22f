import numpy as np
import pytest
import torch

from rs_retrieval.evaluation.metrics import RetrievalRanks, metrics_from_ranks, retrieval_metrics, retrieval_ranks
from rs_retrieval.evaluation.protocols import normalize_caption


def reference_ranks(sim, text_to_image):
    """Full-matrix argsort ranks (index-based protocol), written plainly."""
    sim = np.asarray(sim, dtype=np.float64)
    text_to_image = np.asarray(text_to_image)
    i2t = []
    for image in range(sim.shape[0]):
        order = np.argsort(-sim[image], kind="stable")
        i2t.append(np.flatnonzero(np.isin(order, np.flatnonzero(text_to_image == image))).min())
    t2i = [
        np.flatnonzero(np.argsort(-sim[:, text], kind="stable") == text_to_image[text])[0]
        for text in range(sim.shape[1])
    ]
    return np.array(i2t), np.array(t2i)


def reference_metrics(sim, text_to_image, ks=(1, 5, 10)):
    i2t, t2i = reference_ranks(sim, text_to_image)
    out = {}
    for name, ranks in (("i2t", i2t), ("t2i", t2i)):
        for k in ks:
            out[f"{name}_R@{k}"] = 100.0 * np.mean(ranks < k)
    recalls = list(out.values())
    out["mR"], out["rsum"] = np.mean(recalls), np.sum(recalls)
    for name, ranks in (("i2t", i2t), ("t2i", t2i)):
        out[f"{name}_medr"] = np.floor(np.median(ranks)) + 1
        out[f"{name}_meanr"] = ranks.mean() + 1
    return out


def official_acc_i2t2(sims):
    """Re-implementation of AMFMN/GaLR `utils.acc_i2t2` (5 captions per image)."""
    ranks = np.zeros(sims.shape[0])
    for index in range(sims.shape[0]):
        inds = np.argsort(sims[index])[::-1]
        rank = 1e20
        for i in range(5 * index, 5 * index + 5, 1):
            tmp = np.where(inds == i)[0][0]
            if tmp < rank:
                rank = tmp
        ranks[index] = rank
    return _official_summary(ranks)


def official_acc_t2i2(sims):
    """Re-implementation of AMFMN/GaLR `utils.acc_t2i2`."""
    image_size = sims.shape[0]
    ranks = np.zeros(5 * image_size)
    sims = sims.T
    for index in range(image_size):
        for i in range(5):
            inds = np.argsort(sims[5 * index + i])[::-1]
            ranks[5 * index + i] = np.where(inds == index)[0][0]
    return _official_summary(ranks)


def _official_summary(ranks):
    r1 = 100.0 * len(np.where(ranks < 1)[0]) / len(ranks)
    r5 = 100.0 * len(np.where(ranks < 5)[0]) / len(ranks)
    r10 = 100.0 * len(np.where(ranks < 10)[0]) / len(ranks)
    return r1, r5, r10, np.floor(np.median(ranks)) + 1, ranks.mean() + 1


def _random_case(captions_per_image, seed, shuffle=False):
    rng = np.random.default_rng(seed)
    text_to_image = np.repeat(np.arange(len(captions_per_image)), captions_per_image)
    if shuffle:
        text_to_image = rng.permutation(text_to_image)
    sim = rng.standard_normal((len(captions_per_image), len(text_to_image)))
    sim[text_to_image, np.arange(len(text_to_image))] += 1.5  # some hits at every cut-off
    return sim, text_to_image


CASES = {
    "5_per_image": [5] * 40,
    "1_per_image": [1] * 60,
    "uneven": list(np.random.default_rng(7).integers(1, 8, size=35)),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("chunk_size", [1, 7, None])
@pytest.mark.parametrize("tie_policy", ["optimistic", "pessimistic", "numpy"])
def test_chunked_metrics_equal_full_matrix_reference(case, chunk_size, tie_policy):
    sim, text_to_image = _random_case(CASES[case], seed=len(case), shuffle=case == "uneven")
    expected = reference_metrics(sim, text_to_image)
    for matrix in (sim, torch.from_numpy(sim).float()):
        got = retrieval_metrics(matrix, text_to_image, chunk_size=chunk_size, tie_policy=tie_policy)
        assert got["tie_policy"] == tie_policy and got["protocol"] == "amfmn"
        assert got["i2t_queries"] == sim.shape[0] and got["t2i_queries"] == sim.shape[1]
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, abs=1e-9), key
            assert type(got[key]) is float


def test_custom_ks_and_plain_float_outputs():
    sim, text_to_image = _random_case([3] * 20, seed=1)
    got = retrieval_metrics(torch.from_numpy(sim), torch.from_numpy(text_to_image), ks=(2, 50))
    expected = reference_metrics(sim, text_to_image, ks=(2, 50))
    assert got["i2t_R@50"] == got["t2i_R@50"] == 100.0
    assert {key: got[key] for key in expected} == pytest.approx(expected)
    assert "i2t_R@1" not in got


def test_matches_official_amfmn_loops_on_tie_free_matrix():
    rng = np.random.default_rng(3)
    sim = rng.random((30, 150))  # float64, continuous: no ties
    official = official_acc_i2t2(sim) + official_acc_t2i2(sim)
    names = [f"{d}_{m}" for d in ("i2t", "t2i") for m in ("R@1", "R@5", "R@10", "medr", "meanr")]
    for tie_policy in ("optimistic", "pessimistic", "numpy"):
        got = retrieval_metrics(sim, np.arange(150) // 5, tie_policy=tie_policy, chunk_size=4)
        assert [got[name] for name in names] == list(official)  # bit-identical
        assert got["mR"] == pytest.approx(sum(official[i] for i in (0, 1, 2, 5, 6, 7)) / 6)


def test_numpy_policy_reproduces_official_order_with_ties():
    rng = np.random.default_rng(4)
    sim = np.round(rng.random((20, 100)), 1)  # ten distinct values: ties everywhere
    official = official_acc_i2t2(sim) + official_acc_t2i2(sim)
    got = retrieval_metrics(sim.astype(np.float32), np.arange(100) // 5, tie_policy="numpy", chunk_size=3)
    assert [got[f"{d}_{m}"] for d in ("i2t", "t2i") for m in ("R@1", "R@5", "R@10", "medr", "meanr")] == list(official)
    low = retrieval_ranks(sim, np.arange(100) // 5, tie_policy="optimistic")
    high = retrieval_ranks(sim, np.arange(100) // 5, tie_policy="pessimistic")
    exact = retrieval_ranks(sim, np.arange(100) // 5, tie_policy="numpy")
    for direction in ("i2t", "t2i"):
        lo, hi, mid = getattr(low, direction), getattr(high, direction), getattr(exact, direction)
        assert (lo <= mid).all() and (mid <= hi).all() and (lo < hi).any()


def test_tie_policies_on_hand_made_matrix():
    # Image 0 owns texts 0, 1; image 1 owns texts 2, 3.
    sim = torch.tensor([[0.5, 0.2, 0.5, 0.3], [0.3, 0.3, 0.3, 0.3]])
    text_to_image = [0, 0, 1, 1]
    optimistic = retrieval_ranks(sim, text_to_image, tie_policy="optimistic")
    pessimistic = retrieval_ranks(sim, text_to_image, tie_policy="pessimistic")
    # Image 0: its best caption (0.5) ties with text 2. Image 1: everything ties; two negatives.
    assert optimistic.i2t.tolist() == [0, 0] and pessimistic.i2t.tolist() == [1, 2]
    # Text 3: both images score 0.3; text 1 is beaten, text 2 is beaten, text 0 wins.
    assert optimistic.t2i.tolist() == [0, 1, 1, 0] and pessimistic.t2i.tolist() == [0, 1, 1, 1]
    numpy_ranks = retrieval_ranks(sim, text_to_image, tie_policy="numpy")
    order_row1 = np.argsort(sim[1].double().numpy())[::-1]
    assert numpy_ranks.i2t[1] == min(np.flatnonzero(order_row1 == 2)[0], np.flatnonzero(order_row1 == 3)[0])
    metrics = retrieval_metrics(sim, text_to_image, tie_policy="pessimistic", ks=(1, 2))
    assert metrics["i2t_R@1"] == 0.0 and metrics["i2t_R@2"] == 50.0 and metrics["t2i_R@1"] == 25.0
    assert metrics["i2t_medr"] == 2.0 and metrics["i2t_meanr"] == 2.5 and metrics["t2i_meanr"] == 1.75


# Three images with two captions each. Text 3 ("A", image 1) is the same caption as text 0
# ("a ", image 0), so their columns are identical, as a real text encoder makes them.
DUP_TEXTS = ["a ", "b", "c", "A", "d", "e"]
DUP_TEXT_TO_IMAGE = [0, 0, 1, 1, 2, 2]
DUP_SIM = np.array(
    [
        [0.8, 0.1, 0.0, 0.8, 0.2, 0.3],
        [0.5, 0.6, 0.4, 0.5, 0.7, 0.1],
        [0.0, 0.0, 0.1, 0.0, 0.5, 0.6],
    ]
)


@pytest.mark.parametrize(
    "protocol, tie_policy, i2t, t2i",
    [
        # Index-based: text 3 counts as a negative for image 0 and text 0 for image 1.
        ("amfmn", "optimistic", [0, 2, 0], [0, 1, 0, 1, 1, 0]),
        ("amfmn", "pessimistic", [1, 3, 0], [0, 1, 0, 1, 1, 0]),
        # Text-aware positives: the duplicate is a hit in both directions; no tie left to break.
        ("multi_positive", "optimistic", [0, 2, 0], [0, 1, 0, 0, 1, 0]),
        ("multi_positive", "pessimistic", [0, 2, 0], [0, 1, 0, 0, 1, 0]),
        # SkyCLIP: texts 0 and 3 merge into one candidate and one query (5 unique texts).
        ("dedup_text", "pessimistic", [0, 2, 0], [0, 1, 0, 1, 0]),
    ],
)
def test_duplicate_caption_protocols(protocol, tie_policy, i2t, t2i):
    ranks = retrieval_ranks(DUP_SIM, DUP_TEXT_TO_IMAGE, protocol=protocol, tie_policy=tie_policy, texts=DUP_TEXTS)
    assert ranks.i2t.tolist() == i2t and ranks.t2i.tolist() == t2i
    numpy_ranks = retrieval_ranks(DUP_SIM, DUP_TEXT_TO_IMAGE, protocol=protocol, tie_policy="numpy", texts=DUP_TEXTS)
    low = retrieval_ranks(DUP_SIM, DUP_TEXT_TO_IMAGE, protocol=protocol, tie_policy="optimistic", texts=DUP_TEXTS)
    assert (numpy_ranks.i2t >= low.i2t).all() and (numpy_ranks.t2i >= low.t2i).all()


def test_dedup_image_merges_images_with_the_same_key():
    # Images 0 and 2 are the same file: one query holding captions 0, 1, 4, 5.
    ranks = retrieval_ranks(
        DUP_SIM,
        DUP_TEXT_TO_IMAGE,
        protocol="dedup_image",
        tie_policy="optimistic",
        image_keys=["x.jpg", "y.jpg", "x.jpg"],
    )
    assert ranks.i2t.tolist() == [0, 2]
    assert ranks.t2i.tolist() == [0, 1, 0, 1, 1, 0]  # ranked among images 0 and 1 only
    metrics = retrieval_metrics(
        DUP_SIM, DUP_TEXT_TO_IMAGE, protocol="dedup_image", image_keys=["x.jpg", "y.jpg", "x.jpg"]
    )
    assert metrics["i2t_queries"] == 2 and metrics["t2i_queries"] == 6 and metrics["protocol"] == "dedup_image"


def test_text_protocols_on_random_matrix_with_duplicates_match_brute_force():
    rng = np.random.default_rng(5)
    text_to_image = np.repeat(np.arange(25), 5)
    texts = [f"caption {rng.integers(0, 60)}" for _ in text_to_image]
    sim = rng.standard_normal((25, 125))
    positive = np.array(
        [
            [
                normalize_caption(texts[j])
                in {normalize_caption(texts[t]) for t in np.flatnonzero(text_to_image == i)}
                for j in range(125)
            ]
            for i in range(25)
        ]
    )
    i2t = [np.count_nonzero(sim[i][~positive[i]] > sim[i][positive[i]].max()) for i in range(25)]
    t2i = [np.count_nonzero(sim[:, j][~positive[:, j]] > sim[:, j][positive[:, j]].max()) for j in range(125)]
    ranks = retrieval_ranks(sim, text_to_image, protocol="multi_positive", texts=texts, chunk_size=4)
    assert ranks.i2t.tolist() == i2t and ranks.t2i.tolist() == t2i
    unique = sorted({normalize_caption(t): j for j, t in reversed(list(enumerate(texts)))}.values())
    dedup = retrieval_ranks(sim, text_to_image, protocol="dedup_text", texts=texts)
    assert dedup.t2i.tolist() == [t2i[j] for j in unique]
    assert dedup.i2t.tolist() == [
        np.count_nonzero(sim[i, unique][~positive[i, unique]] > sim[i, unique][positive[i, unique]].max())
        for i in range(25)
    ]


def test_separate_t2i_matrix_ranks_images():
    sim, text_to_image = _random_case([5] * 20, seed=8)
    other, _ = _random_case([5] * 20, seed=9)
    got = retrieval_metrics(sim, text_to_image, t2i_sim=other, chunk_size=3)
    on_sim, on_other = reference_metrics(sim, text_to_image), reference_metrics(other, text_to_image)
    assert got["i2t_R@5"] == pytest.approx(on_sim["i2t_R@5"]) and got["i2t_meanr"] == pytest.approx(
        on_sim["i2t_meanr"]
    )
    assert got["t2i_R@5"] == pytest.approx(on_other["t2i_R@5"]) and got["t2i_meanr"] == pytest.approx(
        on_other["t2i_meanr"]
    )


def test_memmap_and_transposed_inputs_are_read_in_place(tmp_path):
    sim, text_to_image = _random_case([5] * 12, seed=10)
    stored = np.memmap(tmp_path / "sim.f32", dtype=np.float32, mode="w+", shape=sim.shape)
    stored[:] = sim
    stored.flush()
    readonly = np.memmap(tmp_path / "sim.f32", dtype=np.float32, mode="r", shape=sim.shape)
    fortran = np.asfortranarray(sim.astype(np.float32))
    expected = retrieval_metrics(sim.astype(np.float32), text_to_image)
    assert retrieval_metrics(readonly, text_to_image) == expected
    assert retrieval_metrics(fortran, text_to_image, chunk_size=5) == expected


def test_clear_errors_for_bad_input():
    sim = np.random.default_rng(0).random((3, 6))
    with pytest.raises(ValueError, match="no positive.*images \\[2\\]"):
        retrieval_metrics(sim, [0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="one entry per text \\(6\\)"):
        retrieval_metrics(sim, [0, 1, 2])
    with pytest.raises(ValueError, match="outside \\[0, 3\\)"):
        retrieval_metrics(sim, [0, 1, 2, 3, 0, 1])
    with pytest.raises(TypeError, match="integer image indices"):
        retrieval_metrics(sim, [0.0, 1.0, 2.0, 0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="pass texts="):
        retrieval_metrics(sim, [0, 1, 2, 0, 1, 2], protocol="dedup_text")
    with pytest.raises(ValueError, match="image_keys"):
        retrieval_metrics(sim, [0, 1, 2, 0, 1, 2], protocol="dedup_image", image_keys=["a"])
    with pytest.raises(ValueError, match="tie_policy"):
        retrieval_metrics(sim, [0, 1, 2, 0, 1, 2], tie_policy="random")
    with pytest.raises(ValueError, match="protocol"):
        retrieval_metrics(sim, [0, 1, 2, 0, 1, 2], protocol="coco")
    with pytest.raises(TypeError, match="floating"):
        retrieval_metrics(np.ones((3, 6), dtype=np.int64), [0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match="2-D"):
        retrieval_metrics(np.ones(6), [0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match="t2i_sim must match"):
        retrieval_metrics(sim, [0, 1, 2, 0, 1, 2], t2i_sim=sim[:, :5])
    with pytest.raises(ValueError, match="ks must be positive"):
        retrieval_metrics(sim, [0, 1, 2, 0, 1, 2], ks=(0, 5))
    nan = sim.copy()
    nan[1, 4] = np.nan
    for policy in ("optimistic", "numpy"):
        with pytest.raises(ValueError, match="NaN"):
            retrieval_metrics(nan, [0, 1, 2, 0, 1, 2], tie_policy=policy)


def test_default_is_the_reference_argsort_order_and_mr_sums_in_its_order():
    # Ties everywhere (scores quantised to 3 levels): the default reproduces a per-query
    # `np.argsort(row)[::-1]` loop, the official code's ranking.
    rng = np.random.default_rng(11)
    sim = rng.integers(0, 3, (12, 60)).astype(np.float32)
    text_to_image = np.arange(60) // 5
    ranks = retrieval_ranks(sim, text_to_image, chunk_size=5)
    expected_i2t = [min(np.flatnonzero(np.argsort(sim[i].astype(np.float64))[::-1] // 5 == i)) for i in range(12)]
    expected_t2i = [
        int(np.flatnonzero(np.argsort(sim[:, j].astype(np.float64))[::-1] == j // 5)[0]) for j in range(60)
    ]
    assert ranks.i2t.tolist() == expected_i2t and ranks.t2i.tolist() == expected_t2i
    assert retrieval_metrics(sim, text_to_image)["tie_policy"] == "numpy"
    # Recalls whose sum depends on the order: the reference adds t2i then i2t, (r1t + r5t + r10t + r1i + r5i + r10i) / 6.
    metrics = metrics_from_ranks(RetrievalRanks(np.array([2, 5, 5]), np.array([1, 2, 2, 2, 2, 4])), ks=(1, 2, 3))
    r1i, r5i, r10i = (metrics[f"i2t_R@{k}"] for k in (1, 2, 3))
    r1t, r5t, r10t = (metrics[f"t2i_R@{k}"] for k in (1, 2, 3))
    assert metrics["mR"] == (r1t + r5t + r10t + r1i + r5i + r10i) / 6.0 != (r1i + r5i + r10i + r1t + r5t + r10t) / 6.0
