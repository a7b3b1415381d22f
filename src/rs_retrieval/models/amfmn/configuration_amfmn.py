"""AMFMN configuration, and the base configuration shared with its fork GaLR.

Defaults are the reference (checkpoint-faithful) numbers of `amfmn.md` §16.1 for RSITMD:
vocabulary of 1,349 words + padding, skip-thought 620/2400, 512-d embeddings, ResNet-18,
MVSA C = 3 / O = 1, 256 px inputs, sum-hinge triplet loss with margin 0.2.
"""

from transformers import PretrainedConfig

from ..common.mvsa import mvsa_map_size

ATT_TYPES = ("soft_att", "fusion_att", "similarity_att")


class AMFMNFamilyConfig(PretrainedConfig):
    """Fields shared by AMFMN and GaLR: text encoder, visual branch, loss and transform defaults.

    Args:
        vocab_size: word ids including padding id 0 (RSITMD 1,350; RSICD 1,226).
        word_embed_dim, text_hidden_dim, text_dropout: skip-thought embedding, GRU width and
            variational dropout.
        embed_dim: joint embedding size (Linear(text_hidden_dim -> embed_dim), ResNet `v_g`).
        backbone_*: the ResNet trunk (ResNet-18 by default).
        multiscale_in, multiscale_out: MVSA channels C and O.
        image_size: the only accepted input side (MVSA's linear layer depends on it).
        margin, max_violation: hinge triplet loss (sum over negatives unless `max_violation`).
        dynamic_margin: None, or {"gamma": float, "beta": float} for the paper's variable margin
            (needs a prior caption-similarity matrix at training time).
        train_resize, train_rotation_degrees: training transform (resize, then rotate U[0, deg],
            then random crop `image_size`).
    """

    def __init__(
        self,
        vocab_size: int = 1350,
        word_embed_dim: int = 620,
        text_hidden_dim: int = 2400,
        text_dropout: float = 0.25,
        embed_dim: int = 512,
        backbone_layer_type: str = "basic",
        backbone_depths: tuple[int, ...] = (2, 2, 2, 2),
        backbone_hidden_sizes: tuple[int, ...] = (64, 128, 256, 512),
        backbone_embedding_size: int = 64,
        multiscale_in: int = 3,
        multiscale_out: int = 1,
        image_size: int = 256,
        margin: float = 0.2,
        max_violation: bool = False,
        dynamic_margin: dict | None = None,
        train_resize: int = 278,
        train_rotation_degrees: float = 0.0,
        **kwargs,
    ):
        self.vocab_size = int(vocab_size)
        self.word_embed_dim = int(word_embed_dim)
        self.text_hidden_dim = int(text_hidden_dim)
        self.text_dropout = float(text_dropout)
        self.embed_dim = int(embed_dim)
        self.backbone_layer_type = backbone_layer_type
        self.backbone_depths = list(backbone_depths)
        self.backbone_hidden_sizes = list(backbone_hidden_sizes)
        self.backbone_embedding_size = int(backbone_embedding_size)
        self.multiscale_in = int(multiscale_in)
        self.multiscale_out = int(multiscale_out)
        self.image_size = int(image_size)
        self.margin = float(margin)
        self.max_violation = bool(max_violation)
        self.dynamic_margin = dict(dynamic_margin) if dynamic_margin is not None else None
        self.train_resize = int(train_resize) if train_resize else None
        self.train_rotation_degrees = float(train_rotation_degrees)
        self._validate_family()
        super().__init__(**kwargs)

    def _validate_family(self) -> None:
        mvsa_map_size(self.image_size)
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size must count padding id 0 plus at least '<unk>', got {self.vocab_size}")
        if len(self.backbone_hidden_sizes) != 4 or len(self.backbone_depths) != 4:
            raise ValueError(
                f"the ResNet trunk needs 4 stages; got hidden sizes {self.backbone_hidden_sizes}, depths {self.backbone_depths}"
            )
        if self.dynamic_margin is not None and set(self.dynamic_margin) != {"gamma", "beta"}:
            raise ValueError(f"dynamic_margin must be None or {{'gamma': float, 'beta': float}}, got {self.dynamic_margin}")
        if self.train_resize is not None and self.train_resize < self.image_size:
            raise ValueError(f"train_resize ({self.train_resize}) must be >= image_size ({self.image_size}) for the random crop")

    def image_processor_kwargs(self) -> dict:
        """Arguments of `RSImageProcessor` that reproduce this method's transforms."""
        return dict(
            size=self.image_size,
            resample="bilinear",
            train_resize=self.train_resize,
            train_rotation_degrees=self.train_rotation_degrees,
        )


class AMFMNConfig(AMFMNFamilyConfig):
    """AMFMN: the family fields plus the visual-guided attention type `att_type`
    (`soft_att` in the released configs, or `fusion_att`, `similarity_att`)."""

    model_type = "amfmn"

    def __init__(self, att_type: str = "soft_att", **kwargs):
        if att_type not in ATT_TYPES:
            raise ValueError(f"att_type must be one of {ATT_TYPES}, got {att_type!r}")
        self.att_type = att_type
        super().__init__(**kwargs)
