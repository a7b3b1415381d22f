"""MSA processor: resize to 224 + ImageNet normalisation (no augmentation, as the reference) and the
bert-base-uncased WordPiece tokenizer padded to 31 tokens."""

from ..common.bert import BertRetrievalProcessor


class MSAProcessor(BertRetrievalProcessor):
    default_max_text_length = 31
    #: train_resize=224: training views are the eval view (the reference does no augmentation).
    image_processor_defaults = {"size": 224, "resample": "bilinear", "train_resize": 224}
