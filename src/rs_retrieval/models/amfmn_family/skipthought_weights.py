"""Public skip-thought uni-skip files -> our `SkipThoughtEncoder` (docs/methods/amfmn.md#text-branch).

Files (Kiros et al.; http://www.cs.toronto.edu/~rkiros/models/): `uni_skip.npz` (Theano GRU
parameters `encoder_W [E, 2H]`, `encoder_b [2H]`, `encoder_U [H, 2H]`, `encoder_Wx [E, H]`,
`encoder_bx [H]`, `encoder_Ux [H, H]`; first half of the 2H blocks = reset gate, second = update
gate), `utable.npy` (word vectors [N, E], row k = line k of `dictionary.txt`) and
`dictionary.txt` (one word per line, including `UNK`). Every matrix is transposed for PyTorch.
Embedding row 0 (padding) is zero; row k is the vector of our vocabulary word with id k, or the
`UNK` vector when the (case-sensitive) dictionary lacks it (`<unk>` included).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ..common.weights import CheckpointConversionError, load_converted
from .skipthought import SkipThoughtEncoder
from .tokenization_word import load_vocab, validate_word2idx

UNISKIP_FILES = ("uni_skip.npz", "utable.npy", "dictionary.txt")
GRU_PARAMS = ("encoder_W", "encoder_b", "encoder_U", "encoder_Wx", "encoder_bx", "encoder_Ux")
SKIPTHOUGHT_UNK = "UNK"


def _paths(folder) -> dict[str, str]:
    folder = os.fspath(folder)
    paths = {name: os.path.join(folder, name) for name in UNISKIP_FILES}
    missing = [name for name, path in paths.items() if not os.path.isfile(path)]
    if missing:
        raise FileNotFoundError(
            f"skip-thought folder {folder} lacks {missing}; download uni_skip.npz, utable.npy and dictionary.txt "
            "from http://www.cs.toronto.edu/~rkiros/models/"
        )
    return paths


def _load_utable(path: str, allow_pickle: bool) -> np.ndarray:
    try:
        table = np.load(path, allow_pickle=False)
    except ValueError as error:
        if not allow_pickle:
            raise CheckpointConversionError(
                f"{path} is a pickled object array (the original release is); pass allow_pickle=True if you trust it"
            ) from error
        table = np.load(path, allow_pickle=True, encoding="latin1")
    if table.dtype == object:
        table = np.stack([np.asarray(row, dtype=np.float32).reshape(-1) for row in table])
    if table.ndim != 2:
        raise CheckpointConversionError(f"{path}: expected a [words, dim] table, got shape {table.shape}")
    return table.astype(np.float32)


def skipthought_state_dict(folder, vocab, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """State dict of a `SkipThoughtEncoder` (`embedding.*`, `rnn.gru_cell.*`) for vocabulary `vocab`
    (a `word2idx` dict or a reference vocab.json path)."""
    paths = _paths(folder)
    word2idx = load_vocab(vocab) if isinstance(vocab, (str, os.PathLike)) else validate_word2idx(vocab)
    with np.load(paths["uni_skip.npz"], allow_pickle=False) as npz:
        missing = [name for name in GRU_PARAMS if name not in npz.files]
        if missing:
            raise CheckpointConversionError(
                f"{paths['uni_skip.npz']}: missing parameters {missing} (has {sorted(npz.files)[:12]})"
            )
        params = {name: np.asarray(npz[name], dtype=np.float32) for name in GRU_PARAMS}
    embed_dim, double_hidden = params["encoder_W"].shape
    hidden = double_hidden // 2
    expected = {
        "encoder_W": (embed_dim, 2 * hidden),
        "encoder_b": (2 * hidden,),
        "encoder_U": (hidden, 2 * hidden),
        "encoder_Wx": (embed_dim, hidden),
        "encoder_bx": (hidden,),
        "encoder_Ux": (hidden, hidden),
    }
    wrong = {name: (params[name].shape, shape) for name, shape in expected.items() if params[name].shape != shape}
    if wrong:
        raise CheckpointConversionError(f"{paths['uni_skip.npz']}: inconsistent GRU shapes (got, expected): {wrong}")

    with open(paths["dictionary.txt"], encoding="utf-8", errors="surrogateescape") as handle:
        words = [line.rstrip("\r\n").strip() for line in handle]
    while words and not words[-1]:
        words.pop()
    table = _load_utable(paths["utable.npy"], allow_pickle)
    if table.shape != (len(words), embed_dim):
        raise CheckpointConversionError(
            f"utable.npy has shape {table.shape}; expected ({len(words)} "
            f"dictionary words, {embed_dim} = uni_skip embedding dim)"
        )
    dictionary = {word: row for row, word in enumerate(words)}
    if SKIPTHOUGHT_UNK not in dictionary:
        raise CheckpointConversionError(f"{paths['dictionary.txt']}: no {SKIPTHOUGHT_UNK!r} entry")
    rows = np.zeros(len(word2idx) + 1, dtype=np.int64)
    for word, idx in word2idx.items():
        rows[idx] = dictionary.get(word, dictionary[SKIPTHOUGHT_UNK])
    embedding = table[rows]
    embedding[0] = 0.0

    W, U = params["encoder_W"].T, params["encoder_U"].T  # [2H, E], [2H, H]
    tensors = {
        "embedding.weight": embedding,
        "rnn.gru_cell.weight_ir.weight": W[:hidden],
        "rnn.gru_cell.weight_ir.bias": params["encoder_b"][:hidden],
        "rnn.gru_cell.weight_ii.weight": W[hidden:],
        "rnn.gru_cell.weight_ii.bias": params["encoder_b"][hidden:],
        "rnn.gru_cell.weight_in.weight": params["encoder_Wx"].T,
        "rnn.gru_cell.weight_in.bias": params["encoder_bx"],
        "rnn.gru_cell.weight_hr.weight": U[:hidden],
        "rnn.gru_cell.weight_hi.weight": U[hidden:],
        "rnn.gru_cell.weight_hn.weight": params["encoder_Ux"].T,
    }
    return {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in tensors.items()}


def load_skipthought_into(encoder: SkipThoughtEncoder, folder, vocab, allow_pickle: bool = False) -> None:
    """Initialise `encoder` from the uni-skip files; sizes must match (620/2400 for the real files)."""
    load_converted(
        encoder, skipthought_state_dict(folder, vocab, allow_pickle), f"skip-thought files in {os.fspath(folder)}"
    )
