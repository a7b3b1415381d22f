"""Names of the evaluation options, importable without torch (the command line lists them in --help)."""

TIE_POLICIES = ("optimistic", "pessimistic", "numpy")
#: Every method's reference evaluation ranks by `np.argsort`, so that order is the default.
DEFAULT_TIE_POLICY = "numpy"
PROTOCOLS = ("amfmn", "multi_positive", "dedup_text", "dedup_image")
#: Keys of `rerank.RERANKERS`.
RERANKER_NAMES = ("galr_mr", "none", "smr")
