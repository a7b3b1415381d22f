"""AMFMN configuration: the AMFMN-family fields (`models/amfmn_family/family.py`) plus the
visual-guided attention type."""

from ..amfmn_family.family import AMFMNFamilyConfig

ATT_TYPES = ("soft_att", "fusion_att", "similarity_att")


class AMFMNConfig(AMFMNFamilyConfig):
    """AMFMN: the family fields plus the visual-guided attention type `att_type`
    (`soft_att` in the released configs, or `fusion_att`, `similarity_att`)."""

    model_type = "amfmn"

    def __init__(self, att_type: str = "soft_att", **kwargs):
        if att_type not in ATT_TYPES:
            raise ValueError(f"att_type must be one of {ATT_TYPES}, got {att_type!r}")
        self.att_type = att_type
        super().__init__(**kwargs)
