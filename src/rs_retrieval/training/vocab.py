"""Processors for a recipe: a saved one, or the method's own built from a vocabulary.

A recipe's `processor.vocab` is a vocabulary file of the method's tokenizer family (word-level:
the reference `vocab.json`; WordPiece: a `vocab.txt`) or `train_captions`: a vocabulary the
family builds from the training captions, for models trained from scratch (the rs_synth recipes).
The model config's vocabulary size then follows the built vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..models import get_method
from ..models.clip.processing_clip import CLIP_BPE
from ..models.common.pairing import check_model_config
from .recipe import ProcessorSpec, RecipeError

#: `processor.vocab` value that builds the vocabulary from the training captions.
TRAIN_CAPTIONS = "train_captions"


def vocabulary_from_captions(method: str, captions: Iterable[str], min_count: int = 1) -> tuple[dict[str, int], dict]:
    """(vocabulary, model-config overrides) for `method` trained from scratch on `captions`."""
    family = get_method(method).tokenizer_family
    if family is None:
        raise RecipeError(
            f"{method!r} models keep their own tokenizer: set processor.vocab: "
            f"{CLIP_BPE} (or a CLIP BPE file) or processor.path"
        )
    vocab = family.vocabulary_from_captions(list(captions), min_count)
    return vocab, family.config_overrides(vocab)


def build_processor(spec: ProcessorSpec, config, vocab=None):
    """The recipe's processor: `spec.path` (saved), or the method's own for `vocab` (file path or dict)."""
    from ..models import load_retrieval_processor

    if spec.path is not None:  # a saved processor must fit the recipe's model (method, input size)
        processor = load_retrieval_processor(spec.path)
        check_model_config(processor, config, f"the recipe's model (processor.path {spec.path})")
        return processor
    vocab = vocab if vocab is not None else spec.vocab
    if vocab == TRAIN_CAPTIONS:
        raise RecipeError("processor.vocab 'train_captions': pass the vocabulary built by vocabulary_from_captions")
    try:
        return get_method(config.model_type).processor_class.from_config(config, vocab, **spec.options)
    except TypeError as error:
        raise RecipeError(f"processor.options: {error}") from error
