"""The packed GRU with its hand-written backward against the reference formulation in float64:
outputs and every gradient, with and without variational dropout, captions of mixed lengths."""

import pytest
import torch

from rs_retrieval.models.amfmn_family.skipthought import SkipThoughtEncoder


def reference_encoder(encoder: SkipThoughtEncoder, input_ids: torch.Tensor) -> torch.Tensor:
    """The reference step loop (the package's implementation before packing): per-gate masked
    inputs, one hidden product per gate per step over the whole padded batch, autograd throughout."""
    rnn, cell = encoder.rnn, encoder.rnn.gru_cell
    lengths = (input_ids != 0).sum(1)
    num_steps = max(int(lengths.max()), 1)
    x = encoder.embedding(input_ids)[:, :num_steps]
    batch, hidden = x.size(0), cell.weight_hr.in_features
    input_masks = rnn._masks(batch, x.size(-1), x)
    hidden_masks = rnn._masks(batch, hidden, x)
    projections = [
        layer(x if input_masks is None else x * input_masks[k].unsqueeze(1))
        for k, layer in enumerate((cell.weight_ir, cell.weight_ii, cell.weight_in))
    ]
    h = x.new_zeros(batch, hidden)
    states = []
    for step in range(num_steps):
        gates = [
            layer(h if hidden_masks is None else h * hidden_masks[k])
            for k, layer in enumerate((cell.weight_hr, cell.weight_hi, cell.weight_hn))
        ]
        reset = torch.sigmoid(projections[0][:, step] + gates[0])
        update = torch.sigmoid(projections[1][:, step] + gates[1])
        candidate = torch.tanh(projections[2][:, step] + reset * gates[2])
        h = (1 - update) * candidate + update * h
        states.append(h)
    states = torch.stack(states, dim=1)
    last = torch.where(lengths > 0, lengths - 1, torch.full_like(lengths, num_steps - 1))
    return states[torch.arange(batch), last]


def assert_matches_reference(encoder: SkipThoughtEncoder) -> dict[str, torch.Tensor]:
    """Outputs and every parameter gradient of `encoder` on IDS equal the reference loop's (same
    dropout masks); returns the encoder's gradients."""
    weights = torch.randn(len(IDS), 7, dtype=torch.float64)  # a loss that weighs every output entry
    results = []
    for run in (encoder, lambda ids: reference_encoder(encoder, ids)):
        encoder.zero_grad()
        torch.manual_seed(1)  # same dropout masks in both runs
        out = run(IDS)
        (out * weights).sum().backward()
        results.append((out.detach(), {name: p.grad.clone() for name, p in encoder.named_parameters()}))
    (out, grads), (expected, expected_grads) = results
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    assert grads.keys() == expected_grads.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], expected_grads[name], rtol=1e-10, atol=1e-12, msg=name)
    return grads


IDS = torch.tensor(
    [
        [3, 4, 5, 6, 0, 0, 0, 0],
        [7, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0],
        [1, 2, 3, 4, 5, 6, 0, 0],
        [9, 8, 7, 6, 5, 4, 0, 0],
        [2, 2, 0, 0, 0, 0, 0, 0],
    ]
)


@pytest.mark.parametrize("dropout, training", [(0.0, True), (0.4, True), (0.4, False)])
def test_packed_gru_matches_reference_outputs_and_gradients_in_float64(dropout, training):
    torch.manual_seed(0)
    encoder = (
        SkipThoughtEncoder(vocab_size=12, word_embed_dim=5, hidden_dim=7, dropout=dropout).double().train(training)
    )
    grads = assert_matches_reference(encoder)
    assert grads["rnn.gru_cell.weight_hn.weight"].abs().sum() > 0


def test_packed_gru_passes_gradcheck_with_dropout():
    torch.manual_seed(3)
    encoder = SkipThoughtEncoder(vocab_size=12, word_embed_dim=3, hidden_dim=4, dropout=0.3).double().train()
    ids = IDS[[0, 1, 3, 4, 5], :6]  # no blank caption: padding_idx zeroes the gradient of row 0 by design
    parameters = dict(encoder.named_parameters())

    def run(*values):
        torch.manual_seed(5)
        return torch.func.functional_call(encoder, dict(zip(parameters, values)), (ids,))

    assert torch.autograd.gradcheck(run, tuple(p.detach().requires_grad_() for p in parameters.values()))


@pytest.mark.parametrize("dropout, training", [(0.0, False), (0.4, True)])
def test_traced_dense_path_matches_reference_outputs_and_gradients(dropout, training, monkeypatch):
    """Under torch.compile / ONNX export the GRU runs every padded step (no packed, data-dependent
    step sizes); that path must give the reference's states and gradients too."""
    import rs_retrieval.models.amfmn_family.skipthought as skipthought

    monkeypatch.setattr(skipthought, "_is_traced", lambda: True)
    torch.manual_seed(0)
    encoder = (
        SkipThoughtEncoder(vocab_size=12, word_embed_dim=5, hidden_dim=7, dropout=dropout).double().train(training)
    )
    assert_matches_reference(encoder)
