"""Tokenizer families: how a method turns a vocabulary into its tokenizer.

A family owns everything vocabulary-shaped about a method's text side: building the tokenizer
from a vocabulary file or dict, building a vocabulary from training captions (models trained
from scratch), and naming the model-config fields whose size follows the vocabulary. A processor
class names its family (`RetrievalProcessor.tokenizer_family`); the trainer and the recipe code
only talk to the family, never to a concrete tokenizer. The word family of AMFMN and GaLR lives with
them (`models.amfmn_family.word_tokenizer_family`).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable

from transformers import BertTokenizer

BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


class TokenizerFamily(ABC):
    """Interface of a tokenizer family (see the module docstring)."""

    name: str = ""
    tokenizer_class: type

    @abstractmethod
    def tokenizer(self, vocab, max_length: int | None = None):
        """The tokenizer for `vocab` (a vocabulary file path, a token -> id dict or a tokenizer)."""

    @abstractmethod
    def vocabulary_from_captions(self, captions: Iterable[str], min_count: int = 1) -> dict[str, int]:
        """A token -> id vocabulary built from training captions."""

    @abstractmethod
    def config_overrides(self, vocab: dict[str, int]) -> dict:
        """Model-config fields (nested dicts for sub-configs) that follow the vocabulary size."""

    @abstractmethod
    def check_fits(self, tokenizer, config) -> None:
        """Raise `ValueError` if `tokenizer` produces ids outside the model's embedding table."""


class WordPieceTokenizerFamily(TokenizerFamily):
    """BERT WordPiece (MSA, CMPAGL): a `vocab.txt` or token -> id dict; the config's
    `text_config.vocab_size` must cover every id."""

    name = "wordpiece"
    tokenizer_class = BertTokenizer

    def tokenizer(self, vocab, max_length: int | None = None) -> BertTokenizer:
        """`BertTokenizerFast(vocab_file=...)` silently ignores the file in transformers 5 (every
        word becomes [UNK]), so this goes through `BertTokenizer(vocab=...)` and checks the
        special tokens."""
        if isinstance(vocab, BertTokenizer):
            return vocab
        if not isinstance(vocab, dict):
            path = os.fspath(vocab)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"WordPiece vocabulary file not found: {path}")
            with open(path, encoding="utf-8") as handle:
                vocab = {line.rstrip("\n"): index for index, line in enumerate(handle) if line.rstrip("\n")}
        missing = [token for token in BERT_SPECIAL_TOKENS[:4] if token not in vocab]
        if missing:
            raise ValueError(f"WordPiece vocabulary lacks the special tokens {missing}")
        kwargs = {"model_max_length": max_length} if max_length is not None else {}
        return BertTokenizer(vocab=vocab, do_lower_case=True, **kwargs)

    def vocabulary_from_captions(self, captions: Iterable[str], min_count: int = 1) -> dict[str, int]:
        """A whole-word vocabulary: BERT's normaliser and word splitter, so every caption word is one
        token; special tokens first, then words by decreasing count."""
        from tokenizers import normalizers, pre_tokenizers

        normalizer, splitter = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
        counts = Counter(
            word for caption in captions for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(caption))
        )
        words = sorted(
            (w for w, c in counts.items() if c >= min_count and w not in BERT_SPECIAL_TOKENS),
            key=lambda w: (-counts[w], w),
        )
        return {token: i for i, token in enumerate([*BERT_SPECIAL_TOKENS, *words])}

    def config_overrides(self, vocab: dict[str, int]) -> dict:
        return {"text_config": {"vocab_size": len(vocab)}}

    def check_fits(self, tokenizer, config) -> None:
        if len(tokenizer) > config.text_config.vocab_size:
            raise ValueError(
                f"vocabulary has {len(tokenizer)} tokens but "
                f"config.text_config.vocab_size is {config.text_config.vocab_size}"
            )


WORDPIECE = WordPieceTokenizerFamily()
