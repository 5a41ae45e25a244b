import math

import pytest
import torch

from pyg_wsss.nn.functional import entropy_loss


def test_hand_worked(device):
    k = 4
    uniform = torch.zeros(2, k, device=device)  # logits -> uniform distributions
    one_hot = torch.tensor([[0.0, -1e4, -1e4, -1e4]], device=device)
    assert entropy_loss(uniform).item() == pytest.approx(math.log(k), rel=1e-6)
    assert entropy_loss(uniform, variant="code").item() == pytest.approx(math.log(k) / k, rel=1e-6)
    assert entropy_loss(one_hot).item() == pytest.approx(0.0, abs=1e-6)
    # q = (0.5, 0.5, 0, 0) exactly: entropy log 2, no NaN from 0 log 0
    lp = torch.tensor([[math.log(0.5), math.log(0.5), -math.inf, -math.inf]], device=device)
    assert entropy_loss(lp, log_input=True).item() == pytest.approx(math.log(2), rel=1e-6)


def test_only_unlabelled_nodes_and_mask_equivalence():
    x = torch.randn(10, 5)
    labels = torch.tensor([0, 1, 255, 255, 2, 255, 3, 4, 255, 0])
    mask = labels == 255
    ent = -(x.softmax(-1) * x.log_softmax(-1)).sum(-1)
    assert torch.allclose(entropy_loss(x, labels), ent[mask].mean())
    assert torch.allclose(entropy_loss(x, mask), ent[mask].mean())
    assert torch.allclose(entropy_loss(x), ent.mean())
    assert torch.allclose(entropy_loss(x, labels, variant="code"), ent[mask].mean() / 5)


def test_empty_is_zero():
    x = torch.randn(3, 4, requires_grad=True)
    loss = entropy_loss(x, torch.tensor([0, 1, 2]))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(x.grad).all()


def test_batch(device):
    x = torch.randn(20, 3, device=device)
    labels = torch.randint(0, 3, (20,), device=device)
    labels[::2] = 255
    batch = torch.tensor([0] * 7 + [1] * 13, device=device)
    per = entropy_loss(x, labels, batch=batch, reduction="none")
    want = torch.stack([entropy_loss(x[batch == b], labels[batch == b]) for b in range(2)])
    assert torch.allclose(per, want)
    assert torch.allclose(entropy_loss(x, labels, batch=batch, reduction="sum"), want.sum())


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_gradcheck(variant):
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([255, 0, 255, 1, 255, 255])
    assert torch.autograd.gradcheck(lambda t: entropy_loss(t, labels, variant=variant), (x,))


def test_bad_input():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError):
        entropy_loss(torch.randn(4))
    with pytest.raises(TypeError):
        entropy_loss(x, torch.zeros(4))
    with pytest.raises(ValueError):
        entropy_loss(x, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError):
        entropy_loss(x, variant="mean")
    with pytest.raises(TypeError):
        entropy_loss(x.long())
