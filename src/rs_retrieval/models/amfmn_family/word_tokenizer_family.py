"""The word tokenizer family of AMFMN and GaLR (see `rs_retrieval.models.common.tokenizer_families`)."""

from __future__ import annotations

import os
from collections.abc import Iterable

from ..common.tokenizer_families import TokenizerFamily
from .tokenization_word import RSWordTokenizer, build_vocab


class WordTokenizerFamily(TokenizerFamily):
    """The AMFMN/GaLR reference pipeline: `RSWordTokenizer` over a reference `vocab.json`
    (ids from 1, `<unk>` last, 0 = padding); the config's `vocab_size` counts the padding id."""

    name = "word"
    tokenizer_class = RSWordTokenizer

    def tokenizer(self, vocab, max_length: int | None = None) -> RSWordTokenizer:
        if isinstance(vocab, RSWordTokenizer):
            return vocab
        if isinstance(vocab, dict):
            return RSWordTokenizer(vocab=vocab)
        if isinstance(vocab, (str, os.PathLike)):
            return RSWordTokenizer(vocab_file=os.fspath(vocab))
        raise TypeError(
            f"vocab must be a vocab.json path, a word2idx dict or an RSWordTokenizer, got {type(vocab).__name__}"
        )

    def vocabulary_from_captions(self, captions: Iterable[str], min_count: int = 1) -> dict[str, int]:
        """The reference layout (`build_vocab`: stop-words dropped, ids from 1, `<unk>` last)."""
        return build_vocab(captions, min_count=min_count)

    def config_overrides(self, vocab: dict[str, int]) -> dict:
        return {"vocab_size": len(vocab) + 1}

    def check_fits(self, tokenizer, config) -> None:
        if tokenizer.vocab_size != config.vocab_size:
            raise ValueError(
                f"vocabulary has {tokenizer.vocab_size - 1} words (+ padding = {tokenizer.vocab_size} ids) but "
                f"config.vocab_size is {config.vocab_size}"
            )


WORD = WordTokenizerFamily()
