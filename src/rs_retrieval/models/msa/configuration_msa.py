"""Configuration of MSA (Yang et al., "Transcending Fusion: A Multi-Scale Alignment Method for Remote
Sensing Image-Text Retrieval", IEEE TGRS 2024; official code `yr666666/MSA`)."""

from transformers import BertConfig, PretrainedConfig, ResNetConfig

from ..common.towers import resnet_config

SCALE_POOLS = ("max", "avg")


class MSAConfig(PretrainedConfig):
    """ResNet + BERT dual encoder with the training-only multi-scale cross-attention scorer (MSCMAT).

    Sub-configs follow CLIP's pattern: `vision_config` is a `ResNetConfig` (default ResNet-50 v1.5,
    the four stage widths are the MSA scales), `text_config` a `BertConfig` (default
    `bert-base-uncased`). Defaults reproduce the official code; the boolean flags below turn on
    corrected behaviour for its known oddities (all off by default).

    Args:
        hidden_size: width of the fused image feature, the image head and MSCMAT (must equal the
            BERT hidden size: the text [CLS] is the text embedding, without projection).
        scale_pool: pooling per ResNet stage ("max" or "avg"); reference: max, max, max, avg.
        mscmat_heads: attention heads of each per-scale cross-attention.
        max_text_len: fixed token length including [CLS]/[SEP] (reference 31).
        image_size: input side; the reference's fixed-size pools equal global pools only at 224.
        w_triplet, w_mscma, w_csmmc: loss weights (reference 1, 15, 10).
        triplet_margin, triplet_pos_weight: margin m and positive weight alpha of the triplet loss.
        csmmc_tau: softmax temperature of the cross-scale consistency loss (reference 2).
        teacher_scale: 0-based index of the teacher scale of the consistency loss (layer4 = 3).
        mscmat_mask_padding: mask [PAD] keys in MSCMAT (the reference attends to them).
        triplet_mask_same_image: exclude captions of the anchor's own image from the hardest
            negatives (the reference does not).
        csmmc_forward_kl: use KL(teacher || student) averaged over texts instead of the reference's
            reverse KL(student || teacher) averaged over all B^2 entries.
        mscma_temperature: divide the MSCMAT sigmoid scores by this before the cross-entropy
            (reference 1.0: no temperature).
        mscma_symmetric: add the text->image cross-entropy (reference: image->text only).
        vision_model_name, text_model_name: provenance of the initial tower weights.
    """

    model_type = "msa"
    sub_configs_defaults = {"text_config": BertConfig, "vision_config": ResNetConfig}

    def __init__(
        self,
        text_config=None,
        vision_config=None,
        hidden_size=768,
        scale_pool=("max", "max", "max", "avg"),
        mscmat_heads=12,
        max_text_len=31,
        image_size=224,
        w_triplet=1.0,
        w_mscma=15.0,
        w_csmmc=10.0,
        triplet_margin=0.5,
        triplet_pos_weight=1.0,
        csmmc_tau=2.0,
        teacher_scale=3,
        mscmat_mask_padding=False,
        triplet_mask_same_image=False,
        csmmc_forward_kl=False,
        mscma_temperature=1.0,
        mscma_symmetric=False,
        vision_model_name="resnet50",
        text_model_name="bert-base-uncased",
        **kwargs,
    ):
        self.text_config = text_config
        self.vision_config = vision_config if vision_config is not None else resnet_config("resnet50")
        self.hidden_size = hidden_size
        self.scale_pool = list(scale_pool)
        self.mscmat_heads = mscmat_heads
        self.max_text_len = max_text_len
        self.image_size = image_size
        self.w_triplet = w_triplet
        self.w_mscma = w_mscma
        self.w_csmmc = w_csmmc
        self.triplet_margin = triplet_margin
        self.triplet_pos_weight = triplet_pos_weight
        self.csmmc_tau = csmmc_tau
        self.teacher_scale = teacher_scale
        self.mscmat_mask_padding = mscmat_mask_padding
        self.triplet_mask_same_image = triplet_mask_same_image
        self.csmmc_forward_kl = csmmc_forward_kl
        self.mscma_temperature = mscma_temperature
        self.mscma_symmetric = mscma_symmetric
        self.vision_model_name = vision_model_name
        self.text_model_name = text_model_name
        super().__init__(**kwargs)
        self._validate()

    @property
    def scale_dims(self) -> list[int]:
        """Channel widths of the four ResNet stages (the MSA scales)."""
        return list(self.vision_config.hidden_sizes)

    def _validate(self) -> None:
        if len(self.scale_dims) != len(self.scale_pool):
            raise ValueError(
                f"scale_pool has {len(self.scale_pool)} entries but the ResNet has {len(self.scale_dims)} stages"
            )
        if any(pool not in SCALE_POOLS for pool in self.scale_pool):
            raise ValueError(f"scale_pool entries must be one of {SCALE_POOLS}, got {self.scale_pool}")
        if self.text_config.hidden_size != self.hidden_size:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must equal "
                f"text_config.hidden_size ({self.text_config.hidden_size}): "
                "MSA uses the BERT [CLS] state as the text embedding"
            )
        if self.hidden_size % self.mscmat_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by mscmat_heads {self.mscmat_heads}")
        if not 0 <= self.teacher_scale < len(self.scale_dims):
            raise ValueError(
                f"teacher_scale must index one of the {len(self.scale_dims)} scales, got {self.teacher_scale}"
            )
        if self.max_text_len < 2:
            raise ValueError(f"max_text_len must leave room for [CLS] and [SEP], got {self.max_text_len}")
