import math

import pytest
import torch

from rs_retrieval.models.common.losses import dynamic_margin, hinge_triplet_loss


def reference_triplet(scores, margin, hardest, image_ids=None):
    """Per-element loops over the batch, written from the definition."""
    size = scores.shape[0]
    positive = lambda i, j: i == j or (image_ids is not None and image_ids[i] == image_ids[j])
    margin_at = lambda i, j: float(margin[i, j]) if torch.is_tensor(margin) else margin
    total = 0.0
    for i in range(size):  # image anchors
        costs = [
            max(0.0, margin_at(i, j) + float(scores[i, j]) - float(scores[i, i]))
            for j in range(size)
            if not positive(i, j)
        ]
        total += (max(costs) if costs else 0.0) if hardest else sum(costs)
    for j in range(size):  # text anchors
        costs = [
            max(0.0, margin_at(i, j) + float(scores[i, j]) - float(scores[j, j]))
            for i in range(size)
            if not positive(i, j)
        ]
        total += (max(costs) if costs else 0.0) if hardest else sum(costs)
    return total


@pytest.mark.parametrize("hardest", [False, True])
@pytest.mark.parametrize("with_ids", [False, True])
def test_hinge_triplet_matches_per_element_reference(hardest, with_ids):
    gen = torch.Generator().manual_seed(0)
    scores = torch.rand(6, 6, generator=gen)
    image_ids = torch.tensor([0, 0, 1, 2, 2, 3]) if with_ids else None
    got = hinge_triplet_loss(scores, margin=0.2, hardest_negative=hardest, image_ids=image_ids)
    assert got.item() == pytest.approx(reference_triplet(scores, 0.2, hardest, image_ids), rel=1e-6)


def test_hinge_triplet_hand_computed_case():
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.3]])
    # image 0: [0.2 + 0.1 - 0.9]_+ = 0; image 1: [0.2 + 0.8 - 0.3]_+ = 0.7
    # text 0: [0.2 + 0.8 - 0.9]_+ = 0.1; text 1: [0.2 + 0.1 - 0.3]_+ = 0
    assert hinge_triplet_loss(scores, margin=0.2).item() == pytest.approx(0.8)


def test_hinge_triplet_with_margin_matrix_and_gradient():
    scores = torch.rand(5, 5, requires_grad=True)
    margins = torch.rand(5, 5)
    loss = hinge_triplet_loss(scores, margin=margins)
    assert loss.item() == pytest.approx(reference_triplet(scores.detach(), margins, False), rel=1e-6)
    loss.backward()
    assert scores.grad is not None and scores.grad.abs().sum() > 0


def test_hinge_triplet_rejects_non_square():
    with pytest.raises(ValueError, match="square"):
        hinge_triplet_loss(torch.rand(3, 4))


@pytest.mark.parametrize(
    "gamma,expected",
    [(0.4, [0.400, 0.393, 0.370, 0.287, 0.159, 0.0]), (0.6, [0.600, 0.590, 0.555, 0.431, 0.238, 0.0])],
)
def test_dynamic_margin_matches_paper_table(gamma, expected):
    prior = torch.tensor([0.0, 0.25, 0.5, 0.75, 0.9, 1.0], dtype=torch.float64)
    got = dynamic_margin(prior, gamma=gamma, beta=5.0)
    assert got.tolist() == pytest.approx(expected, abs=1.5e-3)


def test_dynamic_margin_beta_zero_is_linear():
    prior = torch.tensor([0.0, 0.5, 1.0])
    assert dynamic_margin(prior, gamma=0.6, beta=0.0).tolist() == pytest.approx([0.6, 0.3, 0.0])
    assert math.isfinite(dynamic_margin(prior, gamma=0.6, beta=-3.0)[1].item())
