"""AMFMN processor: the RS image processor + the reference word-level tokenizer."""

from __future__ import annotations

import os

from ..common.processing import RetrievalProcessor, RSImageProcessor
from ..common.tokenization_word import RSWordTokenizer


def word_tokenizer(vocab) -> RSWordTokenizer:
    """An `RSWordTokenizer` from a reference `vocab.json` path, a `word2idx` dict or a tokenizer."""
    if isinstance(vocab, RSWordTokenizer):
        return vocab
    if isinstance(vocab, dict):
        return RSWordTokenizer(vocab=vocab)
    if isinstance(vocab, (str, os.PathLike)):
        return RSWordTokenizer(vocab_file=os.fspath(vocab))
    raise TypeError(f"vocab must be a vocab.json path, a word2idx dict or an RSWordTokenizer, got {type(vocab).__name__}")


class AMFMNFamilyProcessor(RetrievalProcessor):
    """Processor base of AMFMN and GaLR: `RSImageProcessor` (AMFMN/GaLR transforms) + `RSWordTokenizer`."""

    @classmethod
    def from_config(cls, config, vocab, **kwargs):
        """The processor matching `config` (image size, train transforms) for vocabulary `vocab`.

        Raises if the vocabulary does not fit `config.vocab_size` (words + padding id 0).
        """
        tokenizer = word_tokenizer(vocab)
        if tokenizer.vocab_size != config.vocab_size:
            raise ValueError(
                f"vocabulary has {tokenizer.vocab_size - 1} words (+ padding = {tokenizer.vocab_size} ids) but "
                f"config.vocab_size is {config.vocab_size}"
            )
        return cls(image_processor=RSImageProcessor(**config.image_processor_kwargs()), tokenizer=tokenizer, **kwargs)


class AMFMNProcessor(AMFMNFamilyProcessor):
    """AMFMN: eval resize 256; train resize 278 + random crop 256 (no rotation: the reference's
    `RandomRotation(0, 90)` is a no-op, `amfmn.md` §3.1)."""
