"""Configuration of CMPAGL (Sun et al., "Cross-Modal Pre-Aligned Method with Global and Local Information
for Remote-Sensing Image and Text Retrieval", IEEE TGRS 2024).

RECONSTRUCTION: no CMPAGL code is public and the paper's method section was not available. The
architecture is our reconstruction from the abstract (Swin + "Gswin" blocks, align-before-fuse,
fusion encoder, triplet loss with an intra-class term, SMR re-ranking; docs/methods/cmpagl.md). Every
uncertain choice is a field below so it can be corrected once the paper is read.
"""

from transformers import BertConfig, PretrainedConfig, SwinConfig

GLOBAL_WINDOW_POOLS = ("avg", "max")
GLOBAL_LOCAL_COMBINES = ("parallel", "sequential")
INTRA_CLASS_MODES = ("pair", "scene")
REDUCTIONS = ("mean", "sum")


class CMPAGLConfig(PretrainedConfig):
    """Gswin (Swin + global-local window attention) image encoder, BERT text encoder and BERT fusion
    encoder with an ITM head, ALBEF-style (reconstruction, docs/methods/cmpagl.md#our-reconstruction).

    Sub-configs: `vision_config` (`SwinConfig`, default Swin-T 224 / window 7 / drop-path 0.1) and
    `text_config` (`BertConfig`, default bert-base-uncased widths with 6 layers: the text encoder;
    `fusion_layers` more BERT layers with cross-attention form the fusion encoder, so a 12-layer
    bert-base-uncased fills both, layers 0-5 and 6-11).

    Args:
        fusion_layers: depth of the fusion encoder.
        gswin_stages: 0-based Swin stages whose blocks are Gswin blocks (default 0, 1, 2; at stage 4
            one 7x7 window covers the map, so global equals local there).
        global_window_pool: "avg" or "max" pooling that builds the global information window.
        global_local_combine: "parallel" (X + LWSA + GLWCA in one residual) or "sequential".
        glwca_rel_bias: add a relative position bias (local window position vs global window
            position) to the global-local cross-attention.
        embed_dim: width of the pre-aligned (contrastive) embeddings.
        temp_init: initial value of the learnable ITC temperature (clamped to [0.001, 0.5]).
        itc_multi_positive: ITC targets are uniform over all captions of the same image.
        max_text_len: fixed token length including [CLS]/[SEP].
        itm_k_test: candidates per query re-ranked by the fusion encoder at test time; 0 = dual
            encoder only.
        rerank_add_itc: final candidate score = ITM match probability + ITC cosine.
        rerank_batch_size: fused pairs per fusion-encoder call when re-ranking.
        triplet_margin: margin of the improved triplet loss (hardest negatives).
        triplet_reduction: "mean" (default) or "sum" over the batch for the triplet and pair terms.
            Our reconstruction (docs/methods/cmpagl.md#our-reconstruction) writes sums; summed hardest-negative hinges
            next to the batch-mean ITC/ITM losses at equal weights collapse training to a constant embedding (all
            cosines equal, measured on a toy task), so the default averages, which keeps the three terms on one scale.
        intra_class_weight: lambda of the intra-class distance term.
        intra_class_mode: "pair" (1 - cos of matched pairs) or "scene" (mean distance between all
            same-scene items, needs `scene_ids`).
        loss_weights: weights of (ITC, ITM, triplet).
        smr_tau, smr_top_k: defaults for the evaluator's SMR post-processing (not applied by the model).
        is_reconstruction: always True; surfaced in the model card.
    """

    model_type = "cmpagl"
    sub_configs_defaults = {"text_config": BertConfig, "vision_config": SwinConfig}

    def __init__(
        self,
        text_config=None,
        vision_config=None,
        fusion_layers=6,
        gswin_stages=(0, 1, 2),
        global_window_pool="avg",
        global_local_combine="parallel",
        glwca_rel_bias=False,
        embed_dim=256,
        temp_init=0.07,
        itc_multi_positive=True,
        max_text_len=40,
        itm_k_test=128,
        rerank_add_itc=False,
        rerank_batch_size=128,
        triplet_margin=0.2,
        triplet_reduction="mean",
        intra_class_weight=1.0,
        intra_class_mode="pair",
        loss_weights=(1.0, 1.0, 1.0),
        smr_tau=0.05,
        smr_top_k=None,
        is_reconstruction=True,
        vision_model_name="swin_tiny_patch4_window7_224",
        text_model_name="bert-base-uncased",
        **kwargs,
    ):
        self.text_config = text_config if text_config is not None else BertConfig(num_hidden_layers=6)
        self.vision_config = vision_config
        self.fusion_layers = fusion_layers
        self.gswin_stages = list(gswin_stages)
        self.global_window_pool = global_window_pool
        self.global_local_combine = global_local_combine
        self.glwca_rel_bias = glwca_rel_bias
        self.embed_dim = embed_dim
        self.temp_init = temp_init
        self.itc_multi_positive = itc_multi_positive
        self.max_text_len = max_text_len
        self.itm_k_test = itm_k_test
        self.rerank_add_itc = rerank_add_itc
        self.rerank_batch_size = rerank_batch_size
        self.triplet_margin = triplet_margin
        self.triplet_reduction = triplet_reduction
        self.intra_class_weight = intra_class_weight
        self.intra_class_mode = intra_class_mode
        self.loss_weights = list(loss_weights)
        self.smr_tau = smr_tau
        self.smr_top_k = smr_top_k
        self.is_reconstruction = is_reconstruction
        self.vision_model_name = vision_model_name
        self.text_model_name = text_model_name
        super().__init__(**kwargs)
        self._validate()

    @property
    def image_size(self) -> int:
        """Input side (the Swin sub-config's `image_size`): what the processor resizes to."""
        return int(self.vision_config.image_size)

    @property
    def vision_width(self) -> int:
        """Channel width of the last Swin stage (the image tokens)."""
        return int(self.vision_config.embed_dim * 2 ** (len(self.vision_config.depths) - 1))

    def _validate(self) -> None:
        choices = (
            ("global_window_pool", GLOBAL_WINDOW_POOLS),
            ("global_local_combine", GLOBAL_LOCAL_COMBINES),
            ("intra_class_mode", INTRA_CLASS_MODES),
            ("triplet_reduction", REDUCTIONS),
        )
        for field, allowed in choices:
            if getattr(self, field) not in allowed:
                raise ValueError(f"{field} must be one of {allowed}, got {getattr(self, field)!r}")
        num_stages = len(self.vision_config.depths)
        if any(not 0 <= stage < num_stages for stage in self.gswin_stages):
            raise ValueError(f"gswin_stages {self.gswin_stages} must index the {num_stages} Swin stages")
        if len(self.loss_weights) != 3:
            raise ValueError(f"loss_weights must be (itc, itm, triplet), got {self.loss_weights}")
        if self.itm_k_test < 0 or self.rerank_batch_size < 1:
            raise ValueError(
                f"itm_k_test must be >= 0 and rerank_batch_size >= 1, got {self.itm_k_test}, {self.rerank_batch_size}"
            )
