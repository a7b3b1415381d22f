"""Retrieval evaluation: metrics under the published protocols, re-ranking, fold averaging, model runs."""

from .._lazy import lazy_exports

_EXPORTS = {
    ".evaluator": ["encode_dataset", "evaluate_retrieval", "score_matrix"],
    ".folds": ["aggregate_folds", "format_table"],
    ".metrics": [
        "TIE_POLICIES",
        "RetrievalRanks",
        "metrics_from_hits",
        "metrics_from_ranks",
        "retrieval_metrics",
        "retrieval_ranks",
    ],
    ".protocols": ["DEFAULT_PROTOCOL", "PROTOCOLS", "Protocol", "get_protocol", "normalize_caption"],
    ".rerank": [
        "RERANKERS",
        "DirectionalScores",
        "apply_rerank",
        "galr_multivariate_rerank",
        "no_rerank",
        "smr_rerank",
    ],
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "DEFAULT_PROTOCOL",
    "PROTOCOLS",
    "RERANKERS",
    "TIE_POLICIES",
    "DirectionalScores",
    "Protocol",
    "RetrievalRanks",
    "aggregate_folds",
    "apply_rerank",
    "encode_dataset",
    "evaluate_retrieval",
    "format_table",
    "galr_multivariate_rerank",
    "get_protocol",
    "metrics_from_hits",
    "metrics_from_ranks",
    "no_rerank",
    "normalize_caption",
    "retrieval_metrics",
    "retrieval_ranks",
    "score_matrix",
    "smr_rerank",
]
