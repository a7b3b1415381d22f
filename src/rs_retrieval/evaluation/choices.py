"""Names of the evaluation options, importable without torch (the command line lists them in --help)."""

from .protocols import DEFAULT_PROTOCOL, PROTOCOL_NAMES

#: Orders of tied scores: counted (optimistic, pessimistic), NumPy's argsort (the AMFMN/GaLR/MSA
#: code), `torch.topk` per k (clip_benchmark, RemoteCLIP) and `torch.argsort` (SkyScript).
TIE_POLICIES = ("optimistic", "pessimistic", "numpy", "torch_topk", "torch_argsort")
#: Every method's reference evaluation ranks by `np.argsort`, so that order is the default.
DEFAULT_TIE_POLICY = "numpy"
PROTOCOLS = PROTOCOL_NAMES
#: Keys of `rerank.RERANKERS`.
RERANKER_NAMES = ("galr_mr", "none", "smr")

__all__ = ["DEFAULT_PROTOCOL", "DEFAULT_TIE_POLICY", "PROTOCOLS", "RERANKER_NAMES", "TIE_POLICIES"]
