"""Policy losses on hand-computed tiny cases."""

from __future__ import annotations

import math

import torch

from logo.policy.losses import bc_continuous_loss, bc_discrete_loss, mask_logits


def test_discrete_bc_loss_renormalises_over_legal_actions():
    logits = torch.zeros(1, 2, 3)  # [B=1, N=2, 3 actions], uniform
    actions = torch.tensor([[0, 2]])
    avail = torch.tensor([[[True, True, False], [True, True, True]]])
    # agent 0: two legal actions -> -log(1/2); agent 1: three -> -log(1/3); mean over agents
    expected = (math.log(2) + math.log(3)) / 2
    assert bc_discrete_loss(logits, actions, avail).item() == pytest_approx(expected)
    assert bc_discrete_loss(logits, actions).item() == pytest_approx(math.log(3))


def test_discrete_bc_loss_weights_transitions():
    logits = torch.tensor([[[2.0, 0.0]], [[0.0, 0.0]]])  # B=2, N=1
    actions = torch.tensor([[0], [0]])
    per = [-torch.log_softmax(logits[i, 0], -1)[0].item() for i in range(2)]
    weights = torch.tensor([3.0, 1.0])
    assert bc_discrete_loss(logits, actions, weights=weights).item() == pytest_approx((3 * per[0] + per[1]) / 4)


def test_masked_logits_never_pick_illegal_actions():
    logits = torch.tensor([[5.0, 1.0, 0.0]])
    avail = torch.tensor([[False, True, True]])
    assert mask_logits(logits, avail).argmax(-1).item() == 1
    assert torch.isfinite(mask_logits(logits, torch.zeros_like(avail))).all()


def test_continuous_bc_loss_is_weighted_mse():
    pred = torch.zeros(2, 1, 2)
    target = torch.tensor([[[1.0, 1.0]], [[2.0, 0.0]]])
    assert bc_continuous_loss(pred, target).item() == pytest_approx((1.0 + 2.0) / 2)
    assert bc_continuous_loss(pred, target, torch.tensor([1.0, 0.0])).item() == pytest_approx(1.0)


def pytest_approx(x: float):
    import pytest

    return pytest.approx(x, rel=1e-6)
