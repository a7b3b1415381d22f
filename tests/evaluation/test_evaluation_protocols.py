"""The named protocols against transcriptions of the code they follow, on hand-built cases with ties and duplicates.

`remoteclip_reference` transcribes RemoteCLIP `retrieval.py` (JsonDataset.read_json/duplicate,
retrieval_evaluation) with clip_benchmark's `recall_at_k`/`batchify`; `skyscript_reference`
transcribes the retrieval cells of SkyScript's `cross_modal_retrieval.ipynb`. Both take the score
matrix in place of the encoders.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rs_retrieval.evaluation.metrics import (
    resolve_tie_policy,
    retrieval_metrics,
    retrieval_ranks,
)
from rs_retrieval.evaluation.protocols import (
    DEFAULT_PROTOCOL,
    PROTOCOLS,
    SKYSCRIPT_PREFIX,
)


def remoteclip_reference(sim: torch.Tensor, text_to_image, keys, batch_size: int = 3, ks=(1, 5, 10)) -> dict:
    # read_json: one (filename, caption) entry per sentence, in release order.
    images = [keys[i] for i in text_to_image]
    captions = list(range(len(text_to_image)))  # caption = its column in sim
    # duplicate(): np.unique (sorted file names, first index); captions of every entry with that name.
    unique_images, indexs = np.unique(images, return_index=True)
    grouped = [[captions[i] for i, x in enumerate(images) if x == images[index]] for index in indexs]
    rows = [keys.index(name) for name in unique_images]  # the image file's embedding = its first row
    texts_image_index = [image for image, caps in enumerate(grouped) for _ in caps]
    columns = [c for caps in grouped for c in caps]
    scores = sim[rows][:, columns].t()  # texts_emb @ images_emb.t()
    positive_pairs = torch.zeros_like(scores, dtype=bool)
    positive_pairs[torch.arange(len(scores)), texts_image_index] = True

    def recall_at_k(scores, positive_pairs, k):
        nb_texts, nb_images = scores.shape
        topk_indices = torch.topk(scores, k, dim=1)[1]
        nb_positive = positive_pairs.sum(dim=1)
        topk_indices_onehot = torch.nn.functional.one_hot(topk_indices, num_classes=nb_images)
        positive_pairs_reshaped = positive_pairs.view(nb_texts, 1, nb_images)
        nb_true_positive = (topk_indices_onehot * positive_pairs_reshaped).sum(dim=(1, 2))
        return nb_true_positive / nb_positive

    def batchify(func, X, Y, batch_size, *args, **kwargs):
        return torch.cat(
            [func(X[s : s + batch_size], Y[s : s + batch_size], *args, **kwargs) for s in range(0, len(X), batch_size)]
        )

    metrics = {}
    for k in ks:
        metrics[f"i2t_R@{k}"] = (
            batchify(recall_at_k, scores.T, positive_pairs.T, batch_size, k=k) > 0
        ).float().mean().item() * 100
    for k in ks:
        metrics[f"t2i_R@{k}"] = (
            batchify(recall_at_k, scores, positive_pairs, batch_size, k=k) > 0
        ).float().mean().item() * 100
    metrics["mR"] = np.mean(list(metrics.values()))
    return metrics


def skyscript_reference(sim: torch.Tensor, text_to_image, keys, texts, ks=(1, 5, 10)) -> dict:
    df_filepath = [keys[i] for i in text_to_image]
    df_caption = [SKYSCRIPT_PREFIX + t for t in texts]
    all_image_paths = sorted(set(df_filepath))  # df.groupby('filepath')
    all_texts = sorted(set(df_caption))  # df.groupby(caption_key)
    image_rows = [keys.index(p) for p in all_image_paths]
    text_columns = [df_caption.index(t) for t in all_texts]
    all_image_features, all_text_features = sim[image_rows], sim[:, text_columns]
    text_indices = {x: i for i, x in enumerate(all_texts)}
    img_indices = {x: i for i, x in enumerate(all_image_paths)}
    img_path2text, text2img_path = {}, {}
    for text, img_path in zip(df_caption, df_filepath):
        img_path2text.setdefault(img_path, set()).add(text_indices[text])
        text2img_path.setdefault(text, set()).add(img_indices[img_path])
    res = {}
    for i in range(len(all_texts)):
        logits = 100 * all_text_features[image_rows, i]
        ranking = torch.argsort(logits, descending=True).cpu().numpy()
        for k in ks:
            res[f"t2i_R@{k}"] = res.get(f"t2i_R@{k}", 0) + bool(set(ranking[:k]) & set(text2img_path[all_texts[i]]))
    for i in range(len(all_image_paths)):
        logits = 100 * all_image_features[i, text_columns]
        ranking = torch.argsort(logits, descending=True).cpu().numpy()
        for k in ks:
            res[f"i2t_R@{k}"] = res.get(f"i2t_R@{k}", 0) + bool(set(ranking[:k]) & img_path2text[all_image_paths[i]])
    return {
        key: 100 * value / (len(all_texts) if key.startswith("t2i") else len(all_image_paths))
        for key, value in res.items()
    }


def tie_heavy_case(seed: int, n_img: int = 12, per_image: int = 3):
    """Scores from {0, 1, 2} (ties everywhere), a file name used by two rows (the same image
    listed twice, so identical rows), unsorted names, and captions shared across images."""
    rng = np.random.default_rng(seed)
    keys = [f"img_{k:02d}.tif" for k in rng.permutation(n_img)]
    keys[-1] = keys[2]
    text_to_image = np.repeat(np.arange(n_img), per_image)
    texts = [f"a scene with {rng.integers(0, 6)} planes" for _ in text_to_image]
    sim = torch.from_numpy(rng.integers(0, 3, (n_img, len(texts))).astype(np.float32))
    sim[-1] = sim[2]
    return sim, text_to_image, keys, texts


@pytest.mark.parametrize("seed", range(6))
def test_remoteclip_matches_its_retrieval_py_with_ties_and_duplicate_files(seed):
    sim, text_to_image, keys, _ = tie_heavy_case(seed)
    ours = retrieval_metrics(sim, text_to_image, protocol="remoteclip", image_keys=keys, chunk_size=2)
    expected = remoteclip_reference(sim, text_to_image, keys)
    assert {key: ours[key] for key in expected} == expected  # bit-identical, mR included
    assert ours["tie_policy"] == "torch_topk" and ours["i2t_queries"] == 11 and ours["t2i_queries"] == 36


@pytest.mark.parametrize("seed", range(6))
def test_skyscript_matches_its_notebook_with_ties_and_shared_captions(seed):
    sim, text_to_image, keys, texts = tie_heavy_case(seed)
    prefixed = [PROTOCOLS["skyscript"].prepare_caption(t) for t in texts]
    ours = retrieval_metrics(sim, text_to_image, protocol="skyscript", texts=prefixed, image_keys=keys, chunk_size=4)
    expected = skyscript_reference(sim, text_to_image, keys, texts)
    assert {key: ours[key] for key in expected} == pytest.approx(expected, abs=1e-12)
    assert ours["i2t_queries"] == 11 and ours["t2i_queries"] == len(set(texts))


def test_skyscript_counts_any_image_sharing_the_caption():
    # Image 0: "x", "y"; image 1: "x", "z". Caption "x" scores image 1 highest.
    texts, text_to_image, keys = ["x", "y", "x", "z"], [0, 0, 1, 1], ["b.png", "a.png"]
    sim = torch.tensor([[0.1, 0.9, 0.1, 0.2], [0.8, 0.3, 0.8, 0.7]])
    sky = retrieval_metrics(sim, text_to_image, protocol="skyscript", texts=texts, image_keys=keys, ks=(1,))
    amfmn = retrieval_metrics(sim, text_to_image, protocol="amfmn", ks=(1,))
    # SkyScript: 3 unique texts (x, y, z); x is a hit (image 1 has x), y and z too -> 100.
    assert (sky["t2i_R@1"], sky["t2i_queries"]) == (100.0, 3)
    # Index-based: image 0's "x" (column 0) misses, its own image scores 0.1 < 0.8 -> 3 of 4.
    assert amfmn["t2i_R@1"] == 75.0


def test_remoteclip_ties_follow_torch_topk_not_argsort():
    # Image 0's captions tie with image 1's caption at the top score: torch.topk decides.
    sim = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    keys, text_to_image = ["a.jpg", "b.jpg"], [0, 1, 1]
    hits = retrieval_metrics(sim, text_to_image, protocol="remoteclip", image_keys=keys, ks=(1,))
    top = torch.topk(sim[0], 1).indices.item()  # the candidate order is a.jpg's caption first
    assert hits["i2t_R@1"] == (100.0 if top == 0 else 50.0)
    with pytest.raises(ValueError, match="torch_topk"):
        retrieval_ranks(sim, text_to_image, protocol="remoteclip", image_keys=keys)


def test_protocol_fixes_its_tie_order_and_registry_is_documented():
    assert resolve_tie_policy("remoteclip", None) == "torch_topk"
    assert resolve_tie_policy(DEFAULT_PROTOCOL, None) == "numpy"
    with pytest.raises(ValueError, match="orders ties as its source code"):
        resolve_tie_policy("skyscript", "numpy")
    assert PROTOCOLS["remoteclip"].prepare_caption("Many PLANES at the airport") == "Many planes at the airport"
    assert all(p.source and p.summary for p in PROTOCOLS.values())
    with pytest.raises(ValueError, match="needs image_keys"):
        retrieval_metrics(torch.eye(2), [0, 1], protocol="skyscript", texts=["a", "b"])
