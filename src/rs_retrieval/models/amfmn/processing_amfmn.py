"""AMFMN processor: the AMFMN-family processor (RS image processor + reference word tokenizer)."""

from ..amfmn_family.family import AMFMNFamilyProcessor


class AMFMNProcessor(AMFMNFamilyProcessor):
    """AMFMN: eval resize 256; train resize 278 + random crop 256 (no rotation: the reference's
    `RandomRotation(0, 90)` is a no-op, docs/methods/amfmn.md#image-pipeline)."""
