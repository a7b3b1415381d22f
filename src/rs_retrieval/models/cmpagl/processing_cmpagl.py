"""CMPAGL processor (reconstruction): bicubic resize to the config's image size (224) + ImageNet
normalisation at test time; training views add random resized crop (scale 0.5-1), horizontal flip
and RandAugment(2, 7) (PIR/X-VLM RS fine-tuning recipe, docs/methods/cmpagl.md#configuration); WordPiece tokens padded
to `max_text_len` (40)."""

from ..common.bert import BertRetrievalProcessor


class CMPAGLProcessor(BertRetrievalProcessor):
    @classmethod
    def image_settings(cls, config) -> dict:
        return {"resample": "bicubic", "train_scale": (0.5, 1.0), "train_hflip": True, "train_randaugment": (2, 7)}
