import math

import pytest
import torch
import torch.nn.functional as F

from pyg_wsss.nn.functional import partial_cross_entropy


def test_hand_worked_balanced_and_plain(device):
    # log-probabilities of 4 nodes over K = 2 classes
    p = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.5, 0.5]], device=device)
    labels = torch.tensor([0, 0, 1, 255], device=device)
    logp = p.log()
    # balanced: bg mean over nodes 0, 1; fg mean over node 2 (W 3-4)
    want = -(math.log(0.9) + math.log(0.6)) / 2 - math.log(0.8)
    assert partial_cross_entropy(logp, labels).item() == pytest.approx(want, rel=1e-6)
    # plain mean over the 3 labelled nodes (A 21)
    want = -(math.log(0.9) + math.log(0.6) + math.log(0.8)) / 3
    assert partial_cross_entropy(logp, labels, balanced=False).item() == pytest.approx(
        want, rel=1e-6
    )


def test_matches_torch_references():
    x = torch.randn(50, 6)
    y = torch.randint(0, 6, (50,))
    y[::3] = 255
    assert torch.allclose(
        partial_cross_entropy(x, y, balanced=False), F.cross_entropy(x, y, ignore_index=255)
    )
    fg = y.clone()
    fg[fg == 0] = 255
    bg = y.clone()
    bg[(bg != 0) & (bg != 255)] = 255
    want = F.cross_entropy(x, fg, ignore_index=255) + F.cross_entropy(x, bg, ignore_index=255)
    assert torch.allclose(partial_cross_entropy(x, y), want)


def test_logits_and_log_probs_agree():
    x = torch.randn(20, 4)
    y = torch.randint(0, 4, (20,))
    a = partial_cross_entropy(x, y)
    b = partial_cross_entropy(F.log_softmax(x, -1), y)
    c = partial_cross_entropy(F.log_softmax(x, -1), y, log_input=True)
    assert torch.allclose(a, b) and torch.allclose(a, c)


def test_empty_groups_are_zero_not_nan():
    x = torch.randn(5, 3, requires_grad=True)
    only_fg = torch.tensor([1, 2, 255, 255, 1])
    want = F.cross_entropy(x, only_fg, ignore_index=255)
    assert torch.allclose(partial_cross_entropy(x, only_fg), want)
    none = torch.full((5,), 255)
    loss = partial_cross_entropy(x, none)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(x.grad).all() and (x.grad == 0).all()
    # -inf log-probability on an unlabelled node does not leak NaN
    lp = torch.tensor([[0.0, -math.inf], [-math.inf, 0.0]])
    assert partial_cross_entropy(lp, torch.tensor([0, 255]), log_input=True).item() == 0.0


def test_batch_per_graph_and_sum(device):
    x = torch.randn(30, 5, device=device)
    y = torch.randint(0, 5, (30,), device=device)
    y[::4] = 255
    batch = torch.tensor([0] * 10 + [1] * 12 + [2] * 8, device=device)
    per = partial_cross_entropy(x, y, batch=batch, reduction="none")
    singles = torch.stack([partial_cross_entropy(x[batch == b], y[batch == b]) for b in range(3)])
    assert per.shape == (3,)
    assert torch.allclose(per, singles)
    assert torch.allclose(partial_cross_entropy(x, y, batch=batch, reduction="sum"), singles.sum())
    assert torch.allclose(partial_cross_entropy(x, y, batch=batch), singles.mean())
    # an empty graph gives 0
    per = partial_cross_entropy(x, y, batch=batch, num_graphs=4, reduction="none")
    assert per[3].item() == 0.0


@pytest.mark.parametrize("balanced", [True, False])
def test_gradcheck(balanced):
    x = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 255, 0, 2, 255, 1])
    assert torch.autograd.gradcheck(lambda t: partial_cross_entropy(t, y, balanced=balanced), (x,))


def test_bad_input():
    x = torch.randn(4, 3)
    y = torch.tensor([0, 1, 2, 255])
    with pytest.raises(ValueError):
        partial_cross_entropy(torch.randn(4), y)
    with pytest.raises(TypeError):
        partial_cross_entropy(x, y.float())
    with pytest.raises(TypeError):
        partial_cross_entropy(x.long(), y)
    with pytest.raises(ValueError, match="outside"):
        partial_cross_entropy(x, torch.tensor([0, 1, 3, 255]))
    with pytest.raises(ValueError, match="outside"):
        partial_cross_entropy(x, torch.tensor([0, 1, -1, 255]))
    with pytest.raises(ValueError):
        partial_cross_entropy(x, y[:3])
    with pytest.raises(ValueError):
        partial_cross_entropy(x, y, reduction="max")
    with pytest.raises(ValueError):
        partial_cross_entropy(x, y, batch=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError):
        partial_cross_entropy(x, y, background=7)
