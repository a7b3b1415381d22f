"""Word-level tokenizer of the AMFMN/GaLR reference pipeline, without NLTK.

The reference code encodes a caption as `nltk.word_tokenize(caption.lower())`, drops a fixed set
of punctuation tokens and maps words outside the vocabulary (stop-words included) to `<unk>`
(docs/methods/amfmn.md#text-pipeline). `word_tokenize` first splits sentences with NLTK's Punkt model, then applies
NLTK's improved Treebank rules per sentence. Both steps are re-implemented here:

* `treebank_tokenize` follows the regular-expression rules of NLTK's `NLTKWordTokenizer`;
* `split_sentences` reproduces Punkt's decisions on lower-cased text: a sentence ends at a
  period-final word followed by white space unless the word is a known abbreviation, an initial,
  a number or an ellipsis (for lower-case text Punkt's orthographic evidence never restarts a
  sentence after those). Without it ("preserve_line" mode) a word such as "river." inside a
  caption stays one token and becomes `<unk>`; the reference pipeline splits it.

`RSWordTokenizer` wraps this as a `transformers` tokenizer whose vocabulary file is the reference
`vocab.json` (`{"word2idx", "idx2word", "idx"}`; ids from 1, `<unk>` last, id 0 = padding).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable
from importlib import resources

from transformers import PreTrainedTokenizer

from ...fileio import atomic_file

#: Tokens the reference code removes after tokenisation (`vocab.py` and `data.py`).
PUNCTUATION_TOKENS = frozenset([",", ".", ":", ";", "?", "(", ")", "[", "]", "&", "!", "*", "@", "#", "$", "%"])
UNK_TOKEN = "<unk>"
PAD_TOKEN = "<pad>"

# --- Treebank word rules (NLTK `NLTKWordTokenizer`), applied in this order -----------------------
_STARTING_QUOTES = [
    (re.compile(r"([«“‘„]|[`]+)"), r" \1 "),
    (re.compile(r'^"'), r"``"),
    (re.compile(r"(``)"), r" \1 "),
    (re.compile(r"([ (\[{<])(\"|'{2})"), r"\1 `` "),
    (re.compile(r"(?i)(?<!\w)(')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)"), r"\1 "),
]
_FINAL_PERIOD_CLOSERS = r"""\])}>"'»”’"""
_PUNCTUATION = [
    (re.compile(r"([^.])(\.)([" + _FINAL_PERIOD_CLOSERS + r" ]*+)\s*$"), r"\1 \2 \3 "),
    (re.compile(r"([:,])([^\d])"), r" \1 \2"),
    (re.compile(r"([:,])$"), r" \1 "),
    (re.compile(r"\.{2,}"), r" \g<0> "),
    (re.compile(r"[;@#$%&]"), r" \g<0> "),
    (re.compile("[\u2012-\u2015]"), r" \g<0> "),
    (re.compile(r"""([^.])(\.)([\])}>"']*)\s*$"""), r"\1 \2\3 "),
    (re.compile(r"[?!]"), r" \g<0> "),
    (re.compile(r"([^'])' "), r"\1 ' "),
    (re.compile(r"[*]"), r" \g<0> "),
    (re.compile(r"[\]\[(){}<>]"), r" \g<0> "),
    (re.compile(r"--"), r" -- "),
]
_ENDING_QUOTES = [
    (re.compile(r"([»”’])"), r" \1 "),
    (re.compile(r"''"), " '' "),
    (re.compile(r'"'), " '' "),
    (re.compile(r"\s+"), " "),
    (re.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') "), r"\1 \2 "),
    (re.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r"\1 \2 "),
]
_CONTRACTIONS = [
    re.compile(pattern)
    for pattern in (
        r"(?i)\b(can)(not)\b",
        r"(?i)\b(d)('ye)\b",
        r"(?i)\b(gim)(me)\b",
        r"(?i)\b(gon)(na)\b",
        r"(?i)\b(got)(ta)\b",
        r"(?i)\b(lem)(me)\b",
        r"(?i)\b(more)('n)\b",
        r"(?i)\b(wan)(na)(?=\s)",
        r"(?i) ('t)(is)\b",
        r"(?i) ('t)(was)\b",
    )
]

# --- Punkt sentence-boundary decisions for lower-cased text --------------------------------------
#: Abbreviations after which Punkt's English model does not end a sentence (common ones only).
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr co corp inc ltd vs etc e.g i.e u.s u.k no fig approx dept est jan feb mar apr "
    "jun jul aug sep sept oct nov dec".split()
)
_PERIOD_CONTEXT = re.compile(r"(\S*)\.(?=\s+\S)")
_NUMBER = re.compile(r"^-?[.,]?\d[\d,.-]*$")
_INITIAL = re.compile(r"^[^\W\d]$")


def treebank_tokenize(sentence: str) -> list[str]:
    """Split one sentence into words and punctuation with NLTK's improved Treebank rules."""
    text = sentence
    for pattern, replacement in _STARTING_QUOTES + _PUNCTUATION:
        text = pattern.sub(replacement, text)
    text = f" {text} "
    for pattern, replacement in _ENDING_QUOTES:
        text = pattern.sub(replacement, text)
    for pattern in _CONTRACTIONS:
        text = pattern.sub(r" \1 \2 ", text)
    return text.split()


def _ends_sentence(word: str) -> bool:
    """Punkt's decision for a period-final `word` (period removed) followed by a lower-case word."""
    word = word.lstrip('("`{[:;&#*@)}]-,')
    if not word or word.endswith("."):  # bare period or ellipsis
        return False
    if word in _ABBREVIATIONS or word.split("-")[-1] in _ABBREVIATIONS:
        return False
    return not (_INITIAL.match(word) or _NUMBER.match(word))


def split_sentences(text: str) -> list[str]:
    """Sentence spans of lower-cased `text` as Punkt splits them (see the module docstring)."""
    sentences, start = [], 0
    for match in _PERIOD_CONTEXT.finditer(text):
        if _ends_sentence(match.group(1)):
            sentences.append(text[start : match.end()])
            start = match.end()
    sentences.append(text[start:])
    return [s.strip() for s in sentences if s.strip()]


def word_tokenize(text: str, preserve_line: bool = False) -> list[str]:
    """`nltk.word_tokenize` equivalent; `preserve_line=True` skips the sentence split."""
    sentences = [text] if preserve_line else split_sentences(text)
    return [token for sentence in sentences for token in treebank_tokenize(sentence)]


def caption_tokens(caption: str, preserve_line: bool = False) -> list[str]:
    """Tokens of a caption exactly as the reference code sees them (lower-cased, punctuation removed)."""
    return [t for t in word_tokenize(caption.lower(), preserve_line) if t not in PUNCTUATION_TOKENS]


# --- vocabulary files --------------------------------------------------------------------------


def load_stopwords(path: str | os.PathLike | None = None) -> frozenset[str]:
    """English stop-words (one per line); the default is NLTK's 179-word English list shipped with us."""
    if path is None:
        text = resources.files("rs_retrieval").joinpath("resources/english_stopwords.txt").read_text(encoding="utf-8")
    else:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def build_vocab(
    captions: Iterable[str], min_count: int = 5, stopwords: Iterable[str] | None = None, preserve_line: bool = False
) -> dict[str, int]:
    """A reference-style `word2idx` from training captions (docs/methods/amfmn.md#text-pipeline).

    Words of count >= `min_count` that are not stop-words, numbered from 1 in order of first
    appearance, then `<unk>`. `stopwords=None` uses the shipped NLTK English list.
    """
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    stop = load_stopwords() if stopwords is None else frozenset(stopwords)
    counts = Counter(t for caption in captions for t in caption_tokens(caption, preserve_line) if t not in stop)
    words = [w for w, c in counts.items() if c >= min_count and w != UNK_TOKEN]
    word2idx = {w: i for i, w in enumerate(words, start=1)}
    word2idx[UNK_TOKEN] = len(words) + 1
    return word2idx


def validate_word2idx(word2idx: dict, source: str = "vocabulary") -> dict[str, int]:
    """Check the reference layout: ids 1..V contiguous, `<unk>` present with the last id."""
    if not isinstance(word2idx, dict) or not word2idx:
        raise ValueError(f"{source}: word2idx must be a non-empty dict, got {type(word2idx).__name__}")
    ids = sorted(word2idx.values())
    if ids != list(range(1, len(ids) + 1)):
        raise ValueError(
            f"{source}: ids must be contiguous from 1 (0 is padding); "
            f"got min {ids[0]}, max {ids[-1]}, count {len(ids)}"
        )
    if word2idx.get(UNK_TOKEN) != len(ids):
        raise ValueError(f"{source}: {UNK_TOKEN!r} must have the last id {len(ids)}, got {word2idx.get(UNK_TOKEN)}")
    return {str(w): int(i) for w, i in word2idx.items()}


def load_vocab(path: str | os.PathLike) -> dict[str, int]:
    """`word2idx` of a reference `vocab.json` (`{"word2idx", "idx2word", "idx"}`), validated."""
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict) or "word2idx" not in data:
        raise ValueError(f"{path}: expected a JSON object with a 'word2idx' field (reference vocab.json format)")
    return validate_word2idx(data["word2idx"], str(path))


def save_vocab(word2idx: dict[str, int], path: str | os.PathLike) -> str:
    """Write `word2idx` in the reference `vocab.json` format, atomically."""
    word2idx = validate_word2idx(word2idx)
    data = {"word2idx": word2idx, "idx2word": {str(i): w for w, i in word2idx.items()}, "idx": len(word2idx) + 1}
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False)
    return os.fspath(path)


class RSWordTokenizer(PreTrainedTokenizer):
    """Word-level tokenizer of AMFMN/GaLR: reference tokenisation, `<unk>` for unknown words,
    id 0 (`<pad>`) for right padding, no special tokens added.

    Build it from a reference `vocab.json` (`RSWordTokenizer(vocab_file=...)`) or a `word2idx`
    dict (`RSWordTokenizer(vocab=...)`, e.g. from `build_vocab`). `preserve_line=True` skips the
    Punkt sentence split (not the reference behaviour; see the module docstring).
    """

    vocab_files_names = {"vocab_file": "vocab.json"}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file=None, vocab: dict[str, int] | None = None, preserve_line: bool = False, **kwargs):
        if (vocab_file is None) == (vocab is None):
            raise ValueError("give exactly one of `vocab_file` (a reference vocab.json) or `vocab` (a word2idx dict)")
        word2idx = load_vocab(vocab_file) if vocab is None else validate_word2idx(vocab)
        if PAD_TOKEN in word2idx:
            raise ValueError(f"{PAD_TOKEN!r} is reserved for id 0 and must not be a vocabulary word")
        self.encoder = {PAD_TOKEN: 0, **word2idx}
        self.decoder = {i: w for w, i in self.encoder.items()}
        self.preserve_line = bool(preserve_line)
        kwargs.setdefault("unk_token", UNK_TOKEN)
        kwargs.setdefault("pad_token", PAD_TOKEN)
        kwargs.setdefault("padding_side", "right")
        super().__init__(
            preserve_line=self.preserve_line,
            special_tokens_pattern="none",
            token_type_ids_pattern="all_zeros",
            **kwargs,
        )

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.encoder)

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return caption_tokens(text, self.preserve_line)

    def _convert_token_to_id(self, token: str) -> int:
        return self.encoder.get(token, self.encoder[UNK_TOKEN])

    def _convert_id_to_token(self, index: int) -> str:
        return self.decoder.get(index, UNK_TOKEN)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return " ".join(tokens)

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        name = (f"{filename_prefix}-" if filename_prefix else "") + self.vocab_files_names["vocab_file"]
        word2idx = {w: i for w, i in self.encoder.items() if w != PAD_TOKEN}
        return (save_vocab(word2idx, os.path.join(save_directory, name)),)


# --- Porter stemmer (NLTK's default "NLTK_EXTENSIONS" variant) ---------------------------------
# Used by the caption prior similarity of AMFMN's dynamic margin (docs/methods/amfmn.md#dynamic-margin), whose released
# script stems with `nltk.stem.PorterStemmer()`.

_VOWELS = frozenset("aeiou")
_IRREGULAR_STEMS = {
    "skies": "sky",
    "sky": "sky",
    "dying": "die",
    "lying": "lie",
    "tying": "tie",
    "news": "news",
    "innings": "inning",
    "inning": "inning",
    "outings": "outing",
    "outing": "outing",
    "cannings": "canning",
    "canning": "canning",
    "howe": "howe",
    "proceed": "proceed",
    "exceed": "exceed",
    "succeed": "succeed",
}


def _consonants(word: str) -> list[bool]:
    """Per letter: consonant? ("y" is a consonant unless it follows a consonant.)"""
    flags: list[bool] = []
    for i, ch in enumerate(word):
        flags.append(False if ch in _VOWELS else (not flags[i - 1] if ch == "y" and i else True))
    return flags


def _measure(stem: str) -> int:
    """Porter's m: the number of vowel-consonant sequences."""
    flags = _consonants(stem)
    return sum(1 for a, b in zip(flags, flags[1:]) if not a and b)


def _ends_cvc(word: str) -> bool:
    flags = _consonants(word)
    if len(word) >= 3:
        return flags[-3] and not flags[-2] and flags[-1] and word[-1] not in "wxy"
    return len(word) == 2 and not flags[0] and flags[1]


def _first_rule(word: str, rules) -> str:
    """Apply the rule of the first matching suffix (or leave `word` if its condition fails)."""
    for suffix, replacement, condition in rules:
        if word.endswith(suffix):
            stem = word[: len(word) - len(suffix)]
            return stem + replacement if condition is None or condition(stem) else word
    return word


def _positive(stem: str) -> bool:
    return _measure(stem) > 0


def _above_one(stem: str) -> bool:
    return _measure(stem) > 1


_STEP1A = [("sses", "ss", None), ("ies", "i", None), ("ss", "ss", None), ("s", "", None)]
_STEP2 = [
    (s, r, _positive)
    for s, r in (
        ("ational", "ate"),
        ("tional", "tion"),
        ("enci", "ence"),
        ("anci", "ance"),
        ("izer", "ize"),
        ("bli", "ble"),
        ("alli", "al"),
        ("entli", "ent"),
        ("eli", "e"),
        ("ousli", "ous"),
        ("ization", "ize"),
        ("ation", "ate"),
        ("ator", "ate"),
        ("alism", "al"),
        ("iveness", "ive"),
        ("fulness", "ful"),
        ("ousness", "ous"),
        ("aliti", "al"),
        ("iviti", "ive"),
        ("biliti", "ble"),
        ("fulli", "ful"),
    )
]
_STEP3 = [
    (s, r, _positive)
    for s, r in (
        ("icate", "ic"),
        ("ative", ""),
        ("alize", "al"),
        ("iciti", "ic"),
        ("ical", "ic"),
        ("ful", ""),
        ("ness", ""),
    )
]
_STEP4 = (
    [(s, "", _above_one) for s in ("al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent")]
    + [("ion", "", lambda stem: _measure(stem) > 1 and stem[-1:] in ("s", "t"))]
    + [(s, "", _above_one) for s in ("ou", "ism", "ate", "iti", "ous", "ive", "ize")]
)


def _step1b(word: str) -> str:
    if word.endswith("ied"):
        return word[:-3] + ("ie" if len(word) == 4 else "i")
    if word.endswith("eed"):
        return word[:-1] if _positive(word[:-3]) else word
    for suffix in ("ed", "ing"):
        if word.endswith(suffix) and not all(_consonants(word[: -len(suffix)])):
            stem = word[: -len(suffix)]
            break
    else:
        return word
    if stem.endswith(("at", "bl", "iz")):
        return stem + "e"
    if len(stem) >= 2 and stem[-1] == stem[-2] and _consonants(stem)[-1]:
        return stem if stem[-1] in "lsz" else stem[:-1]
    return stem + "e" if _measure(stem) == 1 and _ends_cvc(stem) else stem


def _step2(word: str) -> str:
    if word.endswith("alli") and _positive(word[:-4]):
        return _step2(word[:-4] + "al")
    if word.endswith("logi"):  # no other step-2 suffix ends in "logi"
        return word[:-1] if _positive(word[:-3]) else word
    return _first_rule(word, _STEP2)


def _step5(word: str) -> str:
    if word.endswith("e"):
        stem = word[:-1]
        m = _measure(stem)
        if m > 1 or (m == 1 and not _ends_cvc(stem)):
            word = stem
    if word.endswith("ll") and _measure(word[:-1]) > 1:
        word = word[:-1]
    return word


def porter_stem(word: str) -> str:
    """Porter stem of `word` (lower-cased), equal to `nltk.stem.PorterStemmer().stem(word)`."""
    stem = word.lower()
    if stem in _IRREGULAR_STEMS:
        return _IRREGULAR_STEMS[stem]
    if len(word) <= 2:
        return stem
    stem = stem[:-3] + "ie" if stem.endswith("ies") and len(stem) == 4 else _first_rule(stem, _STEP1A)
    stem = _step1b(stem)
    if stem.endswith("y") and len(stem) > 2 and _consonants(stem[:-1])[-1]:
        stem = stem[:-1] + "i"
    stem = _first_rule(_step2(stem), _STEP3)
    return _step5(_first_rule(stem, _STEP4))
