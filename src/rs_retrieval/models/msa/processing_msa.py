"""MSA processor: resize to the config's `image_size` (224) + ImageNet normalisation, no
augmentation (as the reference), and the WordPiece tokenizer padded to `max_text_len` (31)."""

from ..common.bert import BertRetrievalProcessor


class MSAProcessor(BertRetrievalProcessor):
    @classmethod
    def image_settings(cls, config) -> dict:
        # train_resize = size: training views are the eval view.
        return {"resample": "bilinear", "train_resize": config.image_size}
