"""GaLR configuration: the AMFMN-family fields (docs/methods/amfmn.md#configuration) plus the local GCN branch and the
MIDF fusion (docs/methods/galr.md#configuration)."""

from ..amfmn_family.family import AMFMNFamilyConfig

RERANK_KEYS = {"K1", "Wp1", "Wp2"}


class GaLRConfig(AMFMNFamilyConfig):
    """Args (besides `AMFMNFamilyConfig`'s):
    num_nodes, node_dim: local graph size (nodes x node features), 20 x 20 in the official files.
    gcn_dims: widths of the three GCN layers (20, 10, 20); the flattened output (num_nodes x
        gcn_dims[-1]) is projected to `embed_dim`.
    mca_hidden, mca_heads, mca_ff, mca_dropout: the MCAN-style SA/SGA blocks of MIDF.
    dynamic_fusion_dim, dynamic_fusion_dropout: MIDF's dynamic-weight MLP.
    paper_fusion_fix: False reproduces the released code (column 0 of the dynamic weights for
        both branches, which makes the weights cancel in the cosine); True uses column 1 for
        the local term as the paper's figure describes.
    rerank: None, or the multivariate-rerank parameters {"K1", "Wp1", "Wp2"} an evaluator applies.
    """

    model_type = "galr"

    def __init__(
        self,
        num_nodes: int = 20,
        node_dim: int = 20,
        gcn_dims: tuple[int, int, int] = (20, 10, 20),
        mca_hidden: int = 512,
        mca_heads: int = 8,
        mca_ff: int = 1024,
        mca_dropout: float = 0.1,
        dynamic_fusion_dim: int = 512,
        dynamic_fusion_dropout: float = 0.2,
        paper_fusion_fix: bool = False,
        rerank: dict | None = None,
        **kwargs,
    ):
        self.num_nodes = int(num_nodes)
        self.node_dim = int(node_dim)
        self.gcn_dims = [int(d) for d in gcn_dims]
        self.mca_hidden = int(mca_hidden)
        self.mca_heads = int(mca_heads)
        self.mca_ff = int(mca_ff)
        self.mca_dropout = float(mca_dropout)
        self.dynamic_fusion_dim = int(dynamic_fusion_dim)
        self.dynamic_fusion_dropout = float(dynamic_fusion_dropout)
        self.paper_fusion_fix = bool(paper_fusion_fix)
        self.rerank = dict(rerank) if rerank is not None else None
        super().__init__(**kwargs)
        if len(self.gcn_dims) != 3:
            raise ValueError(f"gcn_dims must hold the 3 GCN layer widths, got {self.gcn_dims}")
        if self.mca_hidden != self.embed_dim:
            raise ValueError(
                f"mca_hidden ({self.mca_hidden}) must equal embed_dim ({self.embed_dim}): MIDF fuses embed_dim vectors"
            )
        if self.mca_hidden % self.mca_heads:
            raise ValueError(f"mca_hidden ({self.mca_hidden}) must be divisible by mca_heads ({self.mca_heads})")
        if self.rerank is not None and set(self.rerank) != RERANK_KEYS:
            raise ValueError(f"rerank must be None or a dict with keys {sorted(RERANK_KEYS)}, got {self.rerank}")
