import json
from pathlib import Path

import pytest
import torch

from rs_retrieval.models.amfmn_family.tokenization_word import (
    RSWordTokenizer,
    build_vocab,
    caption_tokens,
    load_stopwords,
    load_vocab,
    porter_stem,
    save_vocab,
    split_sentences,
    treebank_tokenize,
    word_tokenize,
)

DATA = Path("/work/shared/data")
needs_data = pytest.mark.skipif(
    not (DATA / "rsitmd" / "vocab.json").is_file(), reason="shared caption data not available"
)

# Expected tokens were produced once with nltk 3.10 `NLTKWordTokenizer` on these real caption lines.
NLTK_CASES = [
    (
        "The truck's work was scattered in the open space.",
        ["the", "truck", "'s", "work", "was", "scattered", "in", "the", "open", "space", "."],
    ),
    (
        "The desert here is so rough that I can't see anything.",
        ["the", "desert", "here", "is", "so", "rough", "that", "i", "ca", "n't", "see", "anything", "."],
    ),
    (
        "Birds nest stadium is surrounded by vegetation in good order (2).",
        [
            "birds",
            "nest",
            "stadium",
            "is",
            "surrounded",
            "by",
            "vegetation",
            "in",
            "good",
            "order",
            "(",
            "2",
            ")",
            ".",
        ],
    ),
    (
        "Two baseball fields and a side-by-side field, a road through the field.",
        [
            "two",
            "baseball",
            "fields",
            "and",
            "a",
            "side-by-side",
            "field",
            ",",
            "a",
            "road",
            "through",
            "the",
            "field",
            ".",
        ],
    ),
    (
        "They are mint green and Gree buildings, many colors ` cars and green trees and meadows.",
        [
            "they",
            "are",
            "mint",
            "green",
            "and",
            "gree",
            "buildings",
            ",",
            "many",
            "colors",
            "`",
            "cars",
            "and",
            "green",
            "trees",
            "and",
            "meadows",
            ".",
        ],
    ),
    (
        "It has some green grass and 4% playground.",
        ["it", "has", "some", "green", "grass", "and", "4", "%", "playground", "."],
    ),
    (
        "The business district surrounded by the 4th Ring Road",
        ["the", "business", "district", "surrounded", "by", "the", "4th", "ring", "road"],
    ),
]


@pytest.mark.parametrize("caption,expected", NLTK_CASES)
def test_treebank_rules_match_nltk_on_real_captions(caption, expected):
    assert treebank_tokenize(caption.lower()) == expected


def test_treebank_quotes_brackets_and_contractions():
    assert treebank_tokenize('"Hi" [x] {y} <z> gonna cannot 3,000 a:b ... x--y') == [
        "``",
        "Hi",
        "''",
        "[",
        "x",
        "]",
        "{",
        "y",
        "}",
        "<",
        "z",
        ">",
        "gon",
        "na",
        "can",
        "not",
        "3,000",
        "a",
        ":",
        "b",
        "...",
        "x",
        "--",
        "y",
    ]


def test_sentence_split_reproduces_punkt_for_internal_periods():
    caption = "the two boats were moored on the bank of the river. there was a building."
    # preserve_line keeps "river." whole (an unknown word); the reference (Punkt) splits the sentence.
    assert "river." in word_tokenize(caption, preserve_line=True)
    assert word_tokenize(caption)[10:13] == ["river", ".", "there"]
    assert split_sentences("mr. sima saw the house. it is red") == ["mr. sima saw the house.", "it is red"]
    assert split_sentences("route no. 5 and a. b. c") == ["route no. 5 and a. b. c"]  # abbreviation, number, initials
    assert split_sentences("wait... ok") == ["wait... ok"]


def test_caption_tokens_lowercase_and_drop_reference_punctuation():
    assert caption_tokens("A (big) Plane; at 5% & 2! planes? *@#$ done.") == [
        "a",
        "big",
        "plane",
        "at",
        "5",
        "2",
        "planes",
        "done",
    ]


def test_build_vocab_counts_skips_stopwords_and_appends_unk():
    captions = ["The red plane is near the red roof.", "A plane, a roof and a car.", "red car"]
    assert build_vocab(captions, min_count=2) == {"red": 1, "plane": 2, "roof": 3, "car": 4, "<unk>": 5}
    assert build_vocab(captions, min_count=2, stopwords=[]) == {
        "the": 1,
        "red": 2,
        "plane": 3,
        "roof": 4,
        "a": 5,
        "car": 6,
        "<unk>": 7,
    }
    with pytest.raises(ValueError, match="min_count"):
        build_vocab(captions, min_count=0)
    stop = load_stopwords()
    assert len(stop) == 179 and {"the", "there", "is", "of", "to", "a"} <= stop and "near" not in stop


def test_vocab_files_validate_and_round_trip(tmp_path):
    word2idx = {"plane": 1, "roof": 2, "<unk>": 3}
    path = save_vocab(word2idx, tmp_path / "vocab.json")
    data = json.loads(Path(path).read_text())
    assert data == {"word2idx": word2idx, "idx2word": {"1": "plane", "2": "roof", "3": "<unk>"}, "idx": 4}
    assert load_vocab(path) == word2idx
    for bad, message in (
        ({"a": 0, "<unk>": 1}, "contiguous"),
        ({"a": 2, "<unk>": 1}, "last id"),
        ({"a": 1, "b": 2}, "last id"),
    ):
        (tmp_path / "bad.json").write_text(json.dumps({"word2idx": bad}))
        with pytest.raises(ValueError, match=message):
            load_vocab(tmp_path / "bad.json")
    (tmp_path / "flat.json").write_text(json.dumps(word2idx))
    with pytest.raises(ValueError, match="word2idx"):
        load_vocab(tmp_path / "flat.json")


def test_tokenizer_ids_padding_and_save_round_trip(tmp_path):
    tokenizer = RSWordTokenizer(vocab={"baseball": 1, "field": 2, "green": 3, "<unk>": 4})
    batch = tokenizer(["There is a green baseball field.", "", "Field"], padding="longest", return_tensors="pt")
    assert batch["input_ids"].tolist() == [[4, 4, 4, 3, 1, 2], [0, 0, 0, 0, 0, 0], [2, 0, 0, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1] * 6, [0] * 6, [1, 0, 0, 0, 0, 0]]
    assert tokenizer.vocab_size == 5 and tokenizer.pad_token_id == 0 and tokenizer.unk_token_id == 4
    tokenizer.save_pretrained(tmp_path)
    assert load_vocab(tmp_path / "vocab.json") == {"baseball": 1, "field": 2, "green": 3, "<unk>": 4}
    reloaded = RSWordTokenizer.from_pretrained(tmp_path)
    assert reloaded(["There is a green baseball field."])["input_ids"] == [[4, 4, 4, 3, 1, 2]]
    with pytest.raises(ValueError, match="exactly one"):
        RSWordTokenizer()
    with pytest.raises(ValueError, match="reserved"):
        RSWordTokenizer(vocab={"<pad>": 1, "<unk>": 2})


@needs_data
@pytest.mark.parametrize("dataset", ["rsitmd", "rsicd"])
def test_build_vocab_reproduces_reference_vocab_exactly(dataset):
    """The reference vocab.json (ids and order) is rebuilt from the released train + test captions;
    with preserve_line (no Punkt split) RSITMD would gain words such as 'river.'."""
    captions = []
    for split in ("train", "test"):
        captions += (DATA / dataset / f"{split}_caps.txt").read_text(encoding="utf-8").split("\n")
    assert build_vocab(captions) == load_vocab(DATA / dataset / "vocab.json")


@needs_data
def test_tokenizer_on_real_rsitmd_lines():
    tokenizer = RSWordTokenizer(vocab_file=str(DATA / "rsitmd" / "vocab.json"))
    vocab = tokenizer.get_vocab()
    unk = vocab["<unk>"]
    lines = (DATA / "rsitmd" / "train_caps.txt").read_text(encoding="utf-8").split("\n")[:200]
    ids = tokenizer(lines, padding="longest", return_tensors="pt")["input_ids"]
    first = [
        vocab[w] if w in vocab else unk
        for w in "there is a baseball field beside the green amusement park around the red track".split()
    ]
    assert ids[0, : len(first)].tolist() == first and first[:5] == [unk, unk, unk, 1, 2]
    for row, line in zip(ids, lines):
        expected = [vocab.get(t, unk) for t in caption_tokens(line)]
        assert row[: len(expected)].tolist() == expected and torch.all(row[len(expected) :] == 0)


PORTER_CASES = {
    # Porter's paper examples, with NLTK's extensions where they differ (ties -> tie, sky, dying)
    "caresses": "caress",
    "ponies": "poni",
    "ties": "tie",
    "cats": "cat",
    "feed": "feed",
    "agreed": "agre",
    "plastered": "plaster",
    "motoring": "motor",
    "sing": "sing",
    "conflated": "conflat",
    "hopping": "hop",
    "falling": "fall",
    "filing": "file",
    "happy": "happi",
    "relational": "relat",
    "conditional": "condit",
    "triplicate": "triplic",
    "goodness": "good",
    "revival": "reviv",
    "adjustment": "adjust",
    "adoption": "adopt",
    "controll": "control",
    "roll": "roll",
    "skies": "sky",
    "dying": "die",
    "is": "is",
    "planes": "plane",
    "buildings": "build",
    "surrounded": "surround",
    "generously": "gener",
    "analogi": "analog",
    "Runways": "runway",
}


def test_porter_stemmer_reference_examples():
    assert {w: porter_stem(w) for w in PORTER_CASES} == PORTER_CASES
