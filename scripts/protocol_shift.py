"""How far one score matrix's numbers move between evaluation protocols (docs/protocols.md).

The matrix is simulated on the real caption text of a test split (precomp files: captions and
file names, no images): a caption's embedding is the normalised sum of seeded random word vectors,
so identical captions get identical embeddings, as any text encoder gives them; an image's
embedding is the normalised mean of its captions' embeddings plus Gaussian noise (`--noise` sets
how hard retrieval is). Every protocol then scores the same matrix.

    PYTHONPATH=src python scripts/protocol_shift.py --data-dir RSICD_PRECOMP --dataset rsicd
"""

from __future__ import annotations

import argparse
import re

import numpy as np
import torch

from rs_retrieval.data import load_dataset
from rs_retrieval.evaluation.metrics import retrieval_metrics
from rs_retrieval.evaluation.protocols import PROTOCOLS


def simulated_scores(
    captions: list[list[str]], noise: float, dim: int = 256, seed: int = 0
) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    words: dict[str, np.ndarray] = {}
    texts = [text for row in captions for text in row]
    text_to_image = np.repeat(np.arange(len(captions)), [len(row) for row in captions])

    def embed(text: str) -> np.ndarray:
        vector = np.zeros(dim)
        for word in re.findall(r"[a-z]+", text.lower()):
            if word not in words:
                words[word] = rng.standard_normal(dim)
            vector += words[word]
        return vector / max(np.linalg.norm(vector), 1e-9)

    text_emb = np.stack([embed(text) for text in texts])
    image_emb = np.stack([text_emb[text_to_image == i].mean(axis=0) for i in range(len(captions))])
    image_emb += noise * rng.standard_normal(image_emb.shape) / np.sqrt(dim)
    image_emb /= np.linalg.norm(image_emb, axis=1, keepdims=True)
    return torch.from_numpy((image_emb @ text_emb.T).astype(np.float32)), text_to_image, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data-dir", required=True, help="folder of the precomp caption files (test_caps.txt, test_filename.txt)"
    )
    parser.add_argument("--dataset", required=True, choices=["rsicd", "rsitmd", "ucm_captions", "sydney_captions"])
    parser.add_argument("--noise", type=float, default=1.6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    test = load_dataset(args.dataset, data_dir=args.data_dir, source="precomp", split="test", image_check="none")
    sim, text_to_image, texts = simulated_scores(test["captions"], args.noise, seed=args.seed)
    keys = list(test["filename"])
    print(
        f"{args.dataset} test: {sim.shape[0]} images, {sim.shape[1]} captions, "
        f"{len(set(texts))} distinct; noise {args.noise}, seed {args.seed}"
    )
    print(
        "| protocol | tie order | i2t queries | t2i queries | i2t "
        "R@1 | i2t R@5 | i2t R@10 | t2i R@1 | t2i R@5 | t2i R@10 | mR |"
    )
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for name in PROTOCOLS:
        m = retrieval_metrics(sim, text_to_image, protocol=name, texts=texts, image_keys=keys)
        recalls = " | ".join(f"{m[f'{d}_R@{k}']:.2f}" for d in ("i2t", "t2i") for k in (1, 5, 10))
        print(
            f"| `{name}` | {m['tie_policy']} | {m['i2t_queries']} | {m['t2i_queries']} | {recalls} | {m['mR']:.2f} |"
        )


if __name__ == "__main__":
    main()
