"""Skip-thought uni-skip text encoder shared by AMFMN and GaLR (`amfmn.md` §6).

A word embedding (620-d, id 0 = padding) feeds a one-layer GRU (2400 units, no hidden->hidden
bias) with variational ("Bayesian") dropout; the caption vector is the hidden state at the last
real token, projected by Linear(2400 -> 512) + ReLU. Submodule names follow the reference code
(`seq2vec.embedding`, `seq2vec.rnn.gru_cell.weight_{ir,ii,in,hr,hi,hn}`, `to_out`) so official
checkpoints load by a plain key copy.
"""

import torch
from torch import nn

from .checks import check_all


class BayesianGRUCell(nn.Module):
    """GRU gate weights with the reference names: `weight_i*` map the input (with bias), `weight_h*`
    the hidden state (no bias); r = reset, i = update ("z"), n = candidate."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.weight_ir = nn.Linear(input_size, hidden_size)
        self.weight_ii = nn.Linear(input_size, hidden_size)
        self.weight_in = nn.Linear(input_size, hidden_size)
        self.weight_hr = nn.Linear(hidden_size, hidden_size, bias=False)
        self.weight_hi = nn.Linear(hidden_size, hidden_size, bias=False)
        self.weight_hn = nn.Linear(hidden_size, hidden_size, bias=False)


class BayesianGRU(nn.Module):
    """One-layer GRU with variational dropout: six Bernoulli masks (x->r, x->z, x->n, h->r, h->z,
    h->n), drawn once per batch and reused at every step; the `z * h` term uses the undropped h."""

    def __init__(self, input_size: int, hidden_size: int, dropout: float):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"text dropout must be in [0, 1), got {dropout}")
        self.dropout = dropout
        self.gru_cell = BayesianGRUCell(input_size, hidden_size)

    def _masks(self, batch: int, features: int, reference: torch.Tensor) -> torch.Tensor | None:
        if not self.training or self.dropout == 0.0:
            return None
        keep = 1.0 - self.dropout
        return torch.bernoulli(reference.new_full((3, batch, features), keep)).div_(keep)

    def forward(self, inputs: torch.Tensor, num_steps: int) -> torch.Tensor:
        """Hidden states [B, num_steps, H] for `inputs` [B, T, E] (T >= num_steps), h0 = 0."""
        cell = self.gru_cell
        batch = inputs.size(0)
        x = inputs[:, :num_steps]
        input_masks = self._masks(batch, x.size(-1), x)
        hidden_masks = self._masks(batch, cell.weight_hr.in_features, x)
        projections = [
            layer(x if input_masks is None else x * input_masks[k].unsqueeze(1))
            for k, layer in enumerate((cell.weight_ir, cell.weight_ii, cell.weight_in))
        ]
        # One batched product per step for the three hidden->gate maps: [3, H, H]^T.
        hidden_weights = torch.stack([cell.weight_hr.weight, cell.weight_hi.weight, cell.weight_hn.weight]).transpose(1, 2)
        h = x.new_zeros(batch, cell.weight_hr.in_features)
        states = []
        for step in range(num_steps):
            h_in = h.expand(3, -1, -1) if hidden_masks is None else h.unsqueeze(0) * hidden_masks
            gates_h = torch.bmm(h_in, hidden_weights)
            reset = torch.sigmoid(projections[0][:, step] + gates_h[0])
            update = torch.sigmoid(projections[1][:, step] + gates_h[1])
            candidate = torch.tanh(projections[2][:, step] + reset * gates_h[2])
            h = candidate + update * (h - candidate)  # (1 - z) * n + z * h
            states.append(h)
        return torch.stack(states, dim=1)


class SkipThoughtEncoder(nn.Module):
    """Embedding + Bayesian GRU; returns the hidden state at each caption's last real token.

    Lengths are the number of non-zero ids (padding is id 0, right-padded), as in the reference
    code. A blank caption (length 0) takes the batch's last computed step, like the reference
    (`amfmn.md` §6.4); at least one step is always run.
    """

    def __init__(self, vocab_size: int, word_embed_dim: int, hidden_dim: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, word_embed_dim, padding_idx=0)
        self.rnn = BayesianGRU(word_embed_dim, hidden_dim, dropout)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if input_ids.dim() != 2 or input_ids.size(1) == 0:
            raise ValueError(f"input_ids must be [batch, length>0], got shape {tuple(input_ids.shape)}")
        vocab_size = self.embedding.num_embeddings
        check_all(
            (input_ids >= 0) & (input_ids < vocab_size), f"input_ids must lie in [0, {vocab_size})",
            lambda: f"got range [{int(input_ids.min())}, {int(input_ids.max())}]",
        )
        real = input_ids != 0
        check_all(~(real[:, 1:] & ~real[:, :-1]), "input_ids must be right-padded with id 0 (a real token follows padding)")
        lengths = real.sum(dim=1)
        # All padded steps run (their states are never read), so the step count is a shape, not data:
        # no host sync, and torch.compile / ONNX export see one graph.
        states = self.rnn(self.embedding(input_ids), input_ids.size(1))
        longest = lengths.max().clamp_min(1)
        last = torch.where(lengths > 0, lengths - 1, longest - 1)
        return states[torch.arange(states.size(0), device=states.device), last]


class SkipThoughtTextEncoder(nn.Module):
    """Caption -> ReLU(Linear(uni-skip state)): non-negative `embed_dim` vectors (reference `text_feature`)."""

    def __init__(self, vocab_size: int, word_embed_dim: int, hidden_dim: int, embed_dim: int, dropout: float):
        super().__init__()
        self.seq2vec = SkipThoughtEncoder(vocab_size, word_embed_dim, hidden_dim, dropout)
        self.to_out = nn.Linear(hidden_dim, embed_dim)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.to_out(self.seq2vec(input_ids)))
