"""Processors for a recipe: a saved one, or the method's own built from a vocabulary.

A recipe's `processor.vocab` is a vocabulary file of the method's tokenizer (AMFMN/GaLR: the
reference `vocab.json`; BERT methods: a WordPiece `vocab.txt`) or `train_captions`: a vocabulary
built from the training captions, for models trained from scratch (the rs_synth recipes). The
model config's vocabulary size then follows the built vocabulary.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from .recipe import ProcessorSpec, RecipeError

#: `processor.vocab` value that builds the vocabulary from the training captions.
TRAIN_CAPTIONS = "train_captions"
#: `processor.vocab` value of a CLIP model: the CLIP BPE vocabulary packaged with rs_retrieval.
CLIP_BPE = "clip_bpe"
BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def processor_class_for(model_type: str):
    """The processor class registered with `AutoProcessor` for a method."""
    from transformers import AutoConfig
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    from ..models.clip import DUAL_ENCODER_CLASSES

    if model_type in DUAL_ENCODER_CLASSES:
        raise RecipeError(f"{model_type!r} models keep their own tokenizer: set processor.vocab: {CLIP_BPE} (or a CLIP BPE file) or processor.path")

    config_class = type(AutoConfig.for_model(model_type))
    if config_class not in PROCESSOR_MAPPING:
        raise RecipeError(f"method {model_type!r} registers no processor with AutoProcessor; set processor.path")
    return PROCESSOR_MAPPING[config_class]


def _family(processor_class) -> str:
    from ..models.amfmn import AMFMNFamilyProcessor
    from ..models.bert_towers import BertRetrievalProcessor

    if issubclass(processor_class, AMFMNFamilyProcessor):
        return "word"
    if issubclass(processor_class, BertRetrievalProcessor):
        return "wordpiece"
    raise RecipeError(f"{processor_class.__name__}: unknown tokenizer family; set processor.path to a saved processor")


def vocabulary_from_captions(processor_class, captions: Iterable[str], min_count: int = 1) -> tuple[dict[str, int], dict]:
    """(vocabulary, model-config overrides) for a method trained from scratch on `captions`.

    Word-level methods get the reference layout (`tokenization.build_vocab`: stop-words dropped,
    ids from 1, `<unk>` last) and `vocab_size`; BERT methods get a whole-word WordPiece vocabulary
    (BERT basic tokenisation, special tokens first) and `text_config.vocab_size`.
    """
    captions = list(captions)
    if _family(processor_class) == "word":
        from ..tokenization import build_vocab

        word2idx = build_vocab(captions, min_count=min_count)
        return word2idx, {"vocab_size": len(word2idx) + 1}
    from tokenizers import normalizers, pre_tokenizers

    # The normaliser and word splitter of BertTokenizer, so every caption word is one token.
    normalizer, splitter = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    counts = Counter(word for caption in captions for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(caption)))
    words = sorted((w for w, c in counts.items() if c >= min_count and w not in BERT_SPECIAL_TOKENS), key=lambda w: (-counts[w], w))
    vocab = {token: i for i, token in enumerate([*BERT_SPECIAL_TOKENS, *words])}
    return vocab, {"text_config": {"vocab_size": len(vocab)}}


def build_processor(spec: ProcessorSpec, config, vocab=None):
    """The recipe's processor: `spec.path` (saved), or the method's own for `vocab` (file path or dict)."""
    from ..models import load_retrieval_processor

    if spec.path is not None:
        return load_retrieval_processor(spec.path)
    vocab = vocab if vocab is not None else spec.vocab
    if vocab == TRAIN_CAPTIONS:
        raise RecipeError("processor.vocab 'train_captions': pass the vocabulary built by vocabulary_from_captions")
    if config.model_type == "clip":
        return _clip_processor(config, vocab, spec.options)
    processor_class = processor_class_for(config.model_type)
    if _family(processor_class) == "word":
        return processor_class.from_config(config, vocab, **spec.options)
    return processor_class.from_vocab(vocab, **spec.options)


def _clip_processor(config, vocab: str, options: dict):
    """CLIP tokenizer (`clip_bpe` or a BPE merges file) + image processor at the config's image size.

    Options: `image_mean`, `image_std` (default OpenAI CLIP's) and `train_scale` (area range of
    the training crop, default [0.9, 1.0])."""
    from ..models.clip import DualEncoderProcessor, build_clip_processor

    unknown = sorted(set(options) - {"image_mean", "image_std", "train_scale"})
    if unknown:
        raise RecipeError(f"processor.options {unknown} do not apply to a CLIP processor (image_mean, image_std, train_scale)")
    bpe_path = None if vocab == CLIP_BPE else vocab
    colour = {key: options[key] for key in ("image_mean", "image_std") if key in options}
    processor = build_clip_processor(config.vision_config.image_size, bpe_path, **colour)
    return DualEncoderProcessor(processor, train_scale=tuple(options.get("train_scale", (0.9, 1.0))))
