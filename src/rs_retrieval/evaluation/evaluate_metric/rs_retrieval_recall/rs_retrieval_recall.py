"""Image-text retrieval recall (R@1/5/10 both ways, mR, rsum) as a Hugging Face `evaluate` metric.

The numbers come from `rs_retrieval.evaluation.retrieval_metrics`, so they equal the package's
evaluator (same protocols and tie policies); the `rs-retrieval` package must be installed.
"""

import datasets
import evaluate
import numpy as np

from rs_retrieval.evaluation.metrics import PROTOCOLS, TIE_POLICIES, retrieval_metrics

_DESCRIPTION = """
Recall@K of cross-modal retrieval in both directions: image-to-text (i2t; an image query is a hit
when any of its captions ranks in the top K) and text-to-image (t2i; per caption), their mean mR,
their sum rsum, and median/mean ranks. Protocols and tie policies follow the AMFMN/GaLR evaluation
code and the SkyCLIP/RemoteCLIP variants (see the README).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: one row per image: its scores against every caption (all rows the same length
        N_texts); together the [N_images, N_texts] score matrix, higher = more similar.
    references: one list per image: the caption (column) indices that describe it; every column
        belongs to exactly one image.
    ks: recall cut-offs (default (1, 5, 10)).
    tie_policy: "numpy" (default: the official code's argsort order), "optimistic" or "pessimistic".
    protocol: "amfmn" (default), "multi_positive", "dedup_text" (need `texts`) or "dedup_image"
        (needs `image_keys`).
    texts: the caption strings, one per column.
    image_keys: one key per image (e.g. its file name).
Returns:
    i2t_R@K, t2i_R@K (percent), mR, rsum, i2t/t2i medr and meanr, i2t/t2i query counts, protocol, tie_policy.
Examples:
    >>> metric = evaluate.load("rs_retrieval_recall")
    >>> metric.compute(predictions=[[0.9, 0.1], [0.2, 0.8]], references=[[0], [1]])["mR"]
    100.0
"""

_CITATION = """
@article{yuan2022amfmn,
  title={Exploring a Fine-Grained Multiscale Method for Cross-Modal Remote Sensing Image Retrieval},
  author={Yuan, Zhiqiang and Zhang, Wenkai and Fu, Kun and Li, Xuan and Deng, Chubo and Wang, Hongqi and Sun, Xian},
  journal={IEEE Transactions on Geoscience and Remote Sensing},
  volume={60},
  year={2022}
}
"""


def text_to_image_index(references, n_texts: int) -> np.ndarray:
    """The image index of every caption column, from per-image lists of column indices."""
    owner = np.full(n_texts, -1, dtype=np.int64)
    for image, columns in enumerate(references):
        columns = np.asarray(columns, dtype=np.int64)
        if columns.size and (columns.min() < 0 or columns.max() >= n_texts):
            raise ValueError(f"references[{image}] holds caption indices outside [0, {n_texts})")
        if (owner[columns] != -1).any():
            raise ValueError(f"references[{image}] claims captions that another image already holds: {sorted(set(columns[owner[columns] != -1].tolist()))}")
        owner[columns] = image
    orphans = np.flatnonzero(owner == -1)
    if orphans.size:
        raise ValueError(f"{orphans.size} caption columns belong to no image (first: {orphans[:5].tolist()}); every column needs one owner")
    return owner


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RsRetrievalRecall(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Sequence(datasets.Value("float64")),
                "references": datasets.Sequence(datasets.Value("int64")),
            }),
            reference_urls=["https://github.com/xiaoyuan1996/AMFMN"],
        )

    def _compute(self, predictions, references, ks=(1, 5, 10), tie_policy="numpy", protocol="amfmn", texts=None, image_keys=None):
        if tie_policy not in TIE_POLICIES or protocol not in PROTOCOLS:
            raise ValueError(f"tie_policy must be one of {TIE_POLICIES} and protocol one of {PROTOCOLS}; got {tie_policy!r}, {protocol!r}")
        lengths = {len(row) for row in predictions}
        if len(lengths) != 1:
            raise ValueError(f"every prediction row must score the same captions; got row lengths {sorted(lengths)}")
        scores = np.asarray(predictions, dtype=np.float64)
        owner = text_to_image_index(references, scores.shape[1])
        return retrieval_metrics(scores, owner, ks=tuple(ks), tie_policy=tie_policy, protocol=protocol, texts=texts, image_keys=image_keys)
