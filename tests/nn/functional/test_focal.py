import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from pyg_wsss.nn.functional import multilabel_focal_loss


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_equals_torchvision(device, reduction):
    logits = torch.randn(4, 7, device=device) * 3
    targets = (torch.rand(4, 7, device=device) > 0.5).float()
    ours = multilabel_focal_loss(logits, targets, gamma=2, reduction=reduction)
    ref = sigmoid_focal_loss(logits, targets, alpha=-1, gamma=2, reduction=reduction)
    torch.testing.assert_close(ours, ref)


def test_detached_same_value_different_gradient():
    logits = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    targets = (torch.rand(3, 5) > 0.5).double()
    a = multilabel_focal_loss(logits, targets)
    b = multilabel_focal_loss(logits, targets, detach_modulator=True)
    torch.testing.assert_close(a, b)
    (ga,) = torch.autograd.grad(a, logits)
    (gb,) = torch.autograd.grad(b, logits)
    assert not torch.allclose(ga, gb)
    # code variant: gradient = detached weight * BCE gradient
    w = (1 - torch.exp(-F.binary_cross_entropy_with_logits(logits, targets, reduction="none"))) ** 2
    ref = w.detach() * (torch.sigmoid(logits) - targets) / targets.numel()
    torch.testing.assert_close(gb, ref.detach())


def test_hand_worked():
    # x = 0, y = 1: bce = log 2, p_t = 1/2, loss = (1/2)^2 log 2
    out = multilabel_focal_loss(torch.zeros(1, 1), torch.ones(1, 1))
    torch.testing.assert_close(out, torch.tensor(0.25 * torch.log(torch.tensor(2.0)).item()))


def test_gamma_zero_is_bce():
    logits, targets = torch.randn(2, 3), torch.rand(2, 3)
    torch.testing.assert_close(
        multilabel_focal_loss(logits, targets, gamma=0),
        F.binary_cross_entropy_with_logits(logits, targets),
    )


def test_gradcheck():
    # (the detached variant is not the derivative of its value by design; its gradient is
    # checked against the closed form in test_detached_same_value_different_gradient)
    logits = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    targets = torch.rand(2, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: multilabel_focal_loss(x, targets), (logits,))


def test_empty_and_extreme():
    assert multilabel_focal_loss(torch.zeros(0, 3), torch.zeros(0, 3)).item() == 0.0
    out = multilabel_focal_loss(torch.tensor([[100.0, -100.0]]), torch.tensor([[1.0, 0.0]]))
    assert torch.isfinite(out) and out.item() < 1e-12


def test_bad_input():
    with pytest.raises(ValueError, match="targets"):
        multilabel_focal_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="targets"):
        multilabel_focal_loss(torch.zeros(2, 3), torch.full((2, 3), 2.0))
    with pytest.raises(TypeError, match="logits"):
        multilabel_focal_loss(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="logits"):
        multilabel_focal_loss(torch.full((2, 3), float("nan")), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="gamma"):
        multilabel_focal_loss(torch.zeros(2, 3), torch.zeros(2, 3), gamma=-1)
    with pytest.raises(ValueError, match="reduction"):
        multilabel_focal_loss(torch.zeros(2, 3), torch.zeros(2, 3), reduction="max")
