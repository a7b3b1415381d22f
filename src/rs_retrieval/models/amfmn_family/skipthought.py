"""Skip-thought uni-skip text encoder shared by AMFMN and GaLR (Kiros et al., "Skip-Thought Vectors", NeurIPS 2015;
docs/methods/amfmn.md#text-branch).

A word embedding (620-d, id 0 = padding) feeds a one-layer GRU (2400 units, no hidden->hidden
bias) with variational ("Bayesian") dropout; the caption vector is the hidden state at the last
real token, projected by Linear(2400 -> 512) + ReLU. Submodule names follow the reference code
(`seq2vec.embedding`, `seq2vec.rnn.gru_cell.weight_{ir,ii,in,hr,hi,hn}`, `to_out`) so official
checkpoints load by a plain key copy.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ..common.checks import check_all


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


def _hidden_gates(h: torch.Tensor, weights: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
    """[n, 3H] hidden->gate products: `h @ weights` with `weights` [H, 3H] when unmasked, else
    per-gate `(h * masks[k]) @ weights[k]` as one batched product over `weights` [3, H, H]."""
    if masks is None:
        return h @ weights
    return torch.bmm(h * masks, weights).transpose(0, 1).reshape(h.size(0), -1)


def _recurrence(projections, hidden_weight, masks, batch_sizes, saved=None):
    """Run the packed recurrence (see `_PackedGRU`); fills `saved` [5, N, H] with h_prev, r, z, n
    and W_hn h of every packed position when given (for the backward)."""
    weights = _gate_weights(hidden_weight, masks)
    h = projections.new_zeros(batch_sizes[0], hidden_weight.size(1))
    offset = 0
    for size in batch_sizes:
        h_prev = h[:size]
        h_next, reset, update, candidate, hidden_n = _step(
            h_prev, projections[offset : offset + size], weights, None if masks is None else masks[:, :size]
        )
        if saved is not None:
            for k, value in enumerate((h_prev, reset, update, candidate, hidden_n)):
                saved[k, offset : offset + size] = value
        h[:size] = h_next
        offset += size
    return h


def _step(h, inputs, weights, masks):
    """One GRU step from state `h` [n, H] and input->gate terms `inputs` [n, 3H]: the new state and
    the gate values (r, z, n, W_hn h) the backward needs."""
    hidden = h.size(1)
    gates = _hidden_gates(h, weights, masks)
    reset = torch.sigmoid(inputs[:, :hidden] + gates[:, :hidden])
    update = torch.sigmoid(inputs[:, hidden : 2 * hidden] + gates[:, hidden : 2 * hidden])
    hidden_n = gates[:, 2 * hidden :]
    candidate = torch.tanh(inputs[:, 2 * hidden :] + reset * hidden_n)
    return candidate + update * (h - candidate), reset, update, candidate, hidden_n  # (1 - z) * n + z * h


def _gate_weights(hidden_weight, masks):
    """[H, 3H] for one matmul per step, or [3, H, H] per gate when hidden masks are active."""
    hidden = hidden_weight.size(1)
    return (
        hidden_weight.t().contiguous()
        if masks is None
        else hidden_weight.view(3, hidden, hidden).transpose(1, 2).contiguous()
    )


def _dense_recurrence(projections, hidden_weight, masks, steps):
    """Every row runs all T steps of `projections` [B, T, 3H] and keeps its state after its own
    `steps[b]`. T is a shape, so torch.compile and ONNX export trace one graph with no host sync."""
    weights = _gate_weights(hidden_weight, masks)
    h = projections.new_zeros(projections.size(0), hidden_weight.size(1))
    for t in range(projections.size(1)):
        h_next = _step(h, projections[:, t], weights, masks)[0]
        h = torch.where((steps > t).unsqueeze(1), h_next, h)
    return h


class _PackedGRU(torch.autograd.Function):
    """The reference GRU recurrence on a packed batch, with a hand-written backward.

    `projections` [N, 3H] are the input->gate terms (r, z, n) of every running (row, step) in
    step-major order (rows sorted by length, `batch_sizes[t]` rows at step t); `hidden_weight` is
    [W_hr; W_hz; W_hn] [3H, H]; `masks` [3, B, H] (or None) the variational hidden masks of the
    sorted rows. Returns each row's state after its last step [B, H]. Autograd through the loop
    would accumulate the hidden-weight gradient step by step (T reads and writes of a
    [3H, H] matrix); here it is one GEMM over all steps.
    """

    @staticmethod
    def forward(ctx, projections, hidden_weight, masks, batch_sizes):
        saved = projections.new_empty(5, projections.size(0), hidden_weight.size(1))
        h = _recurrence(projections, hidden_weight, masks, batch_sizes, saved)
        ctx.save_for_backward(saved, hidden_weight, masks)
        ctx.batch_sizes = batch_sizes
        return h

    @staticmethod
    def backward(ctx, grad_h):
        saved, hidden_weight, masks = ctx.saved_tensors
        hidden = hidden_weight.size(1)
        weights = hidden_weight if masks is None else hidden_weight.view(3, hidden, hidden)
        grad_h = grad_h.clone()
        # d loss / d (r, z pre-activations, W_hn h): what the hidden matmul saw, and d loss / d (n pre-activation)
        grad_hidden = saved.new_empty(saved.size(1), 3 * hidden)
        grad_candidate_in = saved.new_empty(saved.size(1), hidden)
        offset = saved.size(1)
        for size in reversed(ctx.batch_sizes):
            offset -= size
            h_prev, reset, update, candidate, hidden_n = saved[:, offset : offset + size]
            grad = grad_h[:size]
            grad_n = torch.mul(
                grad * (1 - update), 1 - candidate * candidate, out=grad_candidate_in[offset : offset + size]
            )
            step = grad_hidden[offset : offset + size]
            step[:, :hidden] = grad_n * hidden_n * reset * (1 - reset)
            step[:, hidden : 2 * hidden] = grad * (h_prev - candidate) * update * (1 - update)
            step[:, 2 * hidden :] = grad_n * reset
            if masks is None:
                grad_prev = step @ weights
            else:
                grad_prev = (torch.bmm(step.view(size, 3, hidden).transpose(0, 1), weights) * masks[:, :size]).sum(0)
            grad_h[:size] = grad * update + grad_prev
        grad_weight = None
        if ctx.needs_input_grad[1]:
            h_prev = saved[0]
            if masks is None:
                grad_weight = grad_hidden.t() @ h_prev
            else:
                rows = torch.cat([torch.arange(size, device=h_prev.device) for size in ctx.batch_sizes])
                h_in = h_prev.unsqueeze(0) * masks[:, rows]  # [3, N, H]
                grad_weight = torch.bmm(grad_hidden.view(-1, 3, hidden).permute(1, 2, 0), h_in).reshape(
                    3 * hidden, hidden
                )
        grad_projections = (
            torch.cat([grad_hidden[:, : 2 * hidden], grad_candidate_in], dim=1) if ctx.needs_input_grad[0] else None
        )
        return grad_projections, grad_weight, None, None


class BayesianGRU(nn.Module):
    """One-layer GRU with variational dropout: six Bernoulli masks (x->r, x->z, x->n, h->r, h->z,
    h->n), drawn once per batch and reused at every step; the `z * h` term uses the undropped h.

    Captions run as a packed batch (rows sorted by length, step t holds only the rows still
    running), so short captions do not pay for long ones. The recurrence is `_PackedGRU`: one
    hidden matmul per step forward and backward, weight gradients in one GEMM at the end.
    """

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

    def forward(self, inputs: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """Hidden state [B, H] of each row of `inputs` [B, T, E] after `steps[b]` (1..T) steps, h0 = 0."""
        cell = self.gru_cell
        batch, hidden = inputs.size(0), cell.weight_hr.in_features
        # Masks first, in the reference's order, so a seeded run draws the reference's masks.
        input_masks = self._masks(batch, inputs.size(-1), inputs)
        hidden_masks = self._masks(batch, hidden, inputs)
        if _is_traced():
            return self._dense(inputs, steps, input_masks, hidden_masks)
        order = torch.argsort(steps, descending=True, stable=True)
        running = steps[order].unsqueeze(0) > torch.arange(int(steps.max()), device=steps.device).unsqueeze(
            1
        )  # [T, B]
        batch_sizes = running.sum(dim=1).tolist()
        step_of, sorted_row = running.nonzero(as_tuple=True)  # packed order: step-major
        row = order[sorted_row]
        x = inputs[row, step_of]  # [N, E]
        projections = self._input_projections(x, None if input_masks is None else input_masks[:, row])
        hidden_weight = self._hidden_weight()
        masks = None if hidden_masks is None else hidden_masks[:, order]
        # Under autocast the input projections above ran in low precision; the recurrence runs in
        # the weights' dtype (autocast off), as `_PackedGRU.backward` computes its gradients in it.
        projections = projections.to(hidden_weight.dtype)
        with torch.autocast(inputs.device.type, enabled=False):
            if torch.is_grad_enabled() and (projections.requires_grad or hidden_weight.requires_grad):
                final = _PackedGRU.apply(projections, hidden_weight, masks, batch_sizes)
            else:  # inference: nothing to save for a backward
                final = _recurrence(projections, hidden_weight, masks, batch_sizes)
        return final[torch.argsort(order)]

    def _dense(self, inputs, steps, input_masks, hidden_masks):
        """The same recurrence without packing (see `_dense_recurrence`), for traced graphs."""
        projections = self._input_projections(inputs, None if input_masks is None else input_masks.unsqueeze(2))
        return _dense_recurrence(projections, self._hidden_weight(), hidden_masks, steps)

    def _input_projections(self, x: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        """Input->gate terms (r, z, n) of `x` [..., E], concatenated on the last axis; `masks`
        [3, ..., E] (broadcast against `x`) are the per-gate input dropout masks. One matmul when unmasked."""
        cell = self.gru_cell
        layers = (cell.weight_ir, cell.weight_ii, cell.weight_in)
        if masks is None:
            return F.linear(
                x, torch.cat([layer.weight for layer in layers]), torch.cat([layer.bias for layer in layers])
            )
        return torch.cat([layer(x * masks[k]) for k, layer in enumerate(layers)], dim=-1)

    def _hidden_weight(self) -> torch.Tensor:
        """[W_hr; W_hz; W_hn]: [3H, H]."""
        cell = self.gru_cell
        return torch.cat([cell.weight_hr.weight, cell.weight_hi.weight, cell.weight_hn.weight])


def _is_traced() -> bool:
    """True under torch.compile, torch.export / ONNX export and jit tracing: graphs need shapes,
    not the packed batch's data-dependent step sizes."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


class SkipThoughtEncoder(nn.Module):
    """Embedding + Bayesian GRU; returns the hidden state at each caption's last real token.

    Lengths are the number of non-zero ids (padding is id 0, right-padded), as in the reference
    code. A blank caption (length 0) takes the batch's last computed step, like the reference
    (docs/methods/amfmn.md#text-branch); at least one step is always run.
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
            (input_ids >= 0) & (input_ids < vocab_size),
            f"input_ids must lie in [0, {vocab_size})",
            lambda: f"got range [{int(input_ids.min())}, {int(input_ids.max())}]",
        )
        real = input_ids != 0
        check_all(
            ~(real[:, 1:] & ~real[:, :-1]), "input_ids must be right-padded with id 0 (a real token follows padding)"
        )
        lengths = real.sum(dim=1)
        num_steps = lengths.max().clamp(min=1)
        return self.rnn(self.embedding(input_ids), torch.where(lengths > 0, lengths, num_steps))


class SkipThoughtTextEncoder(nn.Module):
    """Caption -> ReLU(Linear(uni-skip state)): non-negative `embed_dim` vectors (reference `text_feature`)."""

    def __init__(self, vocab_size: int, word_embed_dim: int, hidden_dim: int, embed_dim: int, dropout: float):
        super().__init__()
        self.seq2vec = SkipThoughtEncoder(vocab_size, word_embed_dim, hidden_dim, dropout)
        self.to_out = nn.Linear(hidden_dim, embed_dim)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.to_out(self.seq2vec(input_ids)))
