"""Names of the evaluation options, importable without torch.

This module exists so that the command line (`rs-retrieval evaluate --help`) and recipe checks can
list the choices without importing torch, which `metrics` and `rerank` need. Every name here is
either defined here (the tie policies, which `metrics` dispatches on), taken from a torch-free
registry (the protocols), or a copy that tests/evaluation/test_evaluation_rerank.py checks
against its registry (the re-rankers, whose module imports torch).
"""

from .protocols import DEFAULT_PROTOCOL, PROTOCOL_NAMES

#: Orders of tied scores: counted (optimistic, pessimistic), NumPy's argsort (the AMFMN/GaLR/MSA
#: code), `torch.topk` per k (clip_benchmark, RemoteCLIP) and `torch.argsort` (SkyScript).
TIE_POLICIES = ("optimistic", "pessimistic", "numpy", "torch_topk", "torch_argsort")
#: Every method's reference evaluation ranks by `np.argsort`, so that order is the default.
DEFAULT_TIE_POLICY = "numpy"
#: The keys of `rerank.RERANKERS` (tested equal).
RERANKER_NAMES = ("galr_mr", "none", "smr")

__all__ = ["DEFAULT_PROTOCOL", "DEFAULT_TIE_POLICY", "PROTOCOL_NAMES", "RERANKER_NAMES", "TIE_POLICIES"]
