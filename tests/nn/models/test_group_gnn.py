import pytest
import torch
from torch import nn

from pyg_wsss.nn.models.group_gnn import (
    GroupGNN,
    OnlineCAMAccumulator,
    group_wsss_loss,
    normalize_cam_maps,
)


class TinyCNN(nn.Module):
    """Stand-in backbone with the backbones API (list of maps, ``channels``)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.channels = (8,)
        self.strides = (4,)

    def forward(self, x):
        return [torch.relu(self.conv(x))]


def _graph():
    # two groups: {0, 1, 2} complete, {3} alone; self-loops everywhere
    src = [0, 0, 1, 1, 2, 2, 0, 1, 2, 3]
    dst = [1, 2, 0, 2, 0, 1, 0, 1, 2, 3]
    return torch.tensor([src, dst])


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_forward_shapes_loss_and_grads(variant, device):
    torch.manual_seed(0)
    model = GroupGNN(TinyCNN(), num_classes=3, hidden_channels=6, variant=variant).to(device)
    x = torch.rand(4, 3, 16, 16, device=device)
    out = model(x, _graph().to(device))
    assert out.logits.shape == (4, 3) and out.logits_mid.shape == (4, 3)
    assert out.cam.shape == (4, 3, 4, 4) and out.cam_mid.shape == (4, 3, 4, 4)
    assert torch.allclose(out.logits, out.cam.mean((2, 3)))
    tags = torch.tensor([[1.0, 0, 1], [1, 0, 0], [1, 1, 0], [0, 0, 1]], device=device)
    loss = group_wsss_loss(out.logits, out.logits_mid, tags)
    loss.backward()
    for name in ("conv.lin_p.weight", "conv.lin_q.weight", "backbone.conv.weight"):
        p = dict(model.named_parameters())[name]
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert model.state_channels == (6 if variant == "paper" else 3)


def test_loss_matches_formula():
    torch.manual_seed(0)
    lg, lm = torch.randn(3, 4), torch.randn(3, 4)
    y = (torch.rand(3, 4) > 0.5).float()
    bce = torch.nn.MultiLabelSoftMarginLoss()
    assert torch.allclose(group_wsss_loss(lg, lm, y), bce(lg, y) + 0.4 * bce(lm, y))
    assert torch.allclose(group_wsss_loss(lg, lm, y, lambda_mid=0.0), bce(lg, y))
    with pytest.raises(ValueError):
        group_wsss_loss(lg, lm[:2], y)
    with pytest.raises(ValueError):
        group_wsss_loss(lg, lm, y * 2)


def test_no_steps_graph_readout_is_head_only_and_single_image():
    torch.manual_seed(0)
    model = GroupGNN(TinyCNN(), 3, variant="code", num_steps=0).eval()
    x = torch.rand(2, 3, 16, 16)
    out = model(x, torch.empty(2, 0, dtype=torch.long))
    assert torch.allclose(out.cam, out.cam_mid)
    # K = 1 with only a self-loop (paper), eval mode deterministic
    model = GroupGNN(TinyCNN(), 3).eval()
    a = model(x[:1], torch.tensor([[0], [0]]))
    b = model(x[:1], torch.tensor([[0], [0]]))
    assert torch.equal(a.logits, b.logits) and torch.isfinite(a.cam).all()


def test_group_permutation_and_disjoint_batching():
    torch.manual_seed(0)
    model = GroupGNN(TinyCNN(), 3, graph_dropout=False).eval()
    x = torch.rand(4, 3, 16, 16)
    ei = _graph()
    out = model(x, ei)
    # the lone image 3 is unaffected by the group {0, 1, 2}
    alone = model(x[3:], torch.tensor([[0], [0]]))
    assert torch.allclose(out.cam[3], alone.cam[0], atol=1e-5)
    perm = torch.tensor([2, 0, 1, 3])
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(4)
    out_p = model(x[perm], inv[ei])
    assert torch.allclose(out_p.cam, out.cam[perm], atol=1e-5)


def test_cams_and_ensemble():
    torch.manual_seed(0)
    model = GroupGNN(TinyCNN(), 3).eval()
    x = torch.rand(4, 3, 16, 16)
    tags = torch.tensor([[1.0, 0, 1], [1, 0, 0], [1, 1, 0], [0, 0, 1]])
    cams = model.cams(x, _graph(), tags, size=(16, 16))
    assert set(cams) == {"intermediate", "graph", "ensemble"}
    for v in cams.values():
        assert v.shape == (4, 3, 16, 16) and v.min() >= 0 and v.max() <= 1
        assert torch.equal(v[tags == 0], torch.zeros_like(v[tags == 0]))
    assert torch.allclose(cams["ensemble"], (cams["intermediate"] + cams["graph"]) / 2)
    raw = model.cams(x, _graph(), tags, ensemble="raw")["ensemble"]
    assert raw.shape == (4, 3, 4, 4)


def test_parameter_groups_lrs():
    model = GroupGNN(TinyCNN(), 3)
    groups = {g["name"]: g for g in model.parameter_groups(0.01, 0.001)}
    assert groups["backbone_weight"]["lr"] == 0.001 and groups["backbone_bias"]["lr"] == 0.002
    assert groups["new_weight"]["lr"] == 0.01 and groups["new_bias"]["lr"] == 0.02
    n = sum(p.numel() for g in groups.values() for p in g["params"])
    assert n == sum(p.numel() for p in model.parameters())


def test_online_accumulator():
    acc = OnlineCAMAccumulator(prob_threshold=0.5)
    cam1 = torch.tensor([[[[1.0, 2.0]], [[4.0, 2.0]]]])  # [1, 2, 1, 2]
    tags = torch.tensor([[1.0, 1.0]])
    acc.update(["a"], cam1, tags, probs=torch.tensor([[0.9, 0.9]]))
    assert torch.allclose(acc["a"], torch.tensor([[[0.5, 1.0]], [[1.0, 0.5]]]), atol=1e-6)
    cam2 = torch.tensor([[[[2.0, 1.0]], [[0.0, 4.0]]]])
    acc.update(["a"], cam2, tags, probs=torch.tensor([[0.9, 0.1]]))  # class 2 gated out
    assert torch.allclose(acc["a"], torch.tensor([[[1.0, 1.0]], [[1.0, 0.5]]]), atol=1e-6)
    acc.update(["a"], cam2, tags, probs=torch.tensor([[0.9, 0.1]]), force=True)
    assert torch.allclose(acc["a"], torch.tensor([[[1.0, 1.0]], [[1.0, 1.0]]]), atol=1e-6)
    assert "a" in acc and len(acc) == 1
    with pytest.raises(ValueError):
        acc.update(["a", "b"], cam1, tags)


def test_normalize_and_bad_input(tmp_path):
    m = normalize_cam_maps(torch.tensor([[[-1.0, 2.0]], [[1.0, 1.0]]]), torch.tensor([1.0, 0]))
    assert torch.allclose(m, torch.tensor([[[0.0, 1.0]], [[0.0, 0.0]]]))
    with pytest.raises(TypeError):
        GroupGNN("vgg", 3)
    with pytest.raises(ValueError):
        GroupGNN(TinyCNN(), 0)
    with pytest.raises(ValueError):
        GroupGNN(TinyCNN(), 3, node_state="pixels")
    with pytest.raises(ValueError):
        GroupGNN(nn.Identity(), 3)
    model = GroupGNN(TinyCNN(), 3)
    with pytest.raises(ValueError):
        model(torch.rand(3, 16, 16), _graph())
    with pytest.raises(ValueError):
        model.forward_features(torch.rand(1, 5, 4, 4), torch.tensor([[0], [0]]))
    assert "GroupGNN(num_classes=3" in str(model)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    other = GroupGNN(TinyCNN(), 3)
    other.load_state_dict(torch.load(tmp_path / "m.pt"))
