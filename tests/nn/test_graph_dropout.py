import pytest
import torch

from pyg_wsss.nn import GraphDropout


def _x():
    # two images, 2 channels, 1 x 3 maps; channel means o = [1, 2, 3] and [-1, 0, 4]
    x = torch.tensor(
        [[[[0.0, 2.0, 4.0]], [[2.0, 2.0, 2.0]]], [[[-2.0, 0.0, 8.0]], [[0.0, 0.0, 0.0]]]]
    )
    o = torch.tensor([[[[1.0, 2.0, 3.0]]], [[[-1.0, 0.0, 4.0]]]])
    return x, o


def test_code_variant_drop_rate_one_and_zero():
    # NOTES.md 7: drop_rate 1 -> (x * mask + x) / 2, mask = [mean_c x < 0.7 max];
    # drop_rate 0 -> (x * sigmoid(mean_c x) + x) / 2
    x, o = _x()
    mask = torch.tensor([[[[1.0, 1.0, 0.0]]], [[[1.0, 1.0, 0.0]]]])  # 0.7*3=2.1, 0.7*4=2.8
    out = GraphDropout(drop_rate=1.0, variant="code")(x)
    assert torch.allclose(out, (x * mask + x) / 2)
    out = GraphDropout(drop_rate=0.0, variant="code")(x)
    assert torch.allclose(out, (x * torch.sigmoid(o) + x) / 2)


def test_paper_variant_hand_computed():
    x, o = _x()
    # r < delta_r always (drop_rate 1): importance map, h * s
    assert torch.allclose(GraphDropout(drop_rate=1.0)(x), x * torch.sigmoid(o))
    # never (drop_rate 0): s = |o| * 1(o < 0.7 max o) (the magnitude: no sign flips)
    s = torch.tensor([[[[1.0, 2.0, 0.0]]], [[[1.0, 0.0, 0.0]]]])
    assert torch.allclose(GraphDropout(drop_rate=0.0)(x), x * s)


def test_flags_override_variant():
    x, o = _x()
    layer = GraphDropout(drop_rate=0.0, variant="paper", mask="binary", combine="average")
    mask = torch.tensor([[[[1.0, 1.0, 0.0]]], [[[1.0, 1.0, 0.0]]]])
    assert torch.allclose(layer(x), (x * mask + x) / 2)
    layer = GraphDropout(drop_rate=1.0, rate_selects="drop", mask="scaled")
    assert torch.allclose(layer(x), x * o.abs() * mask)


@pytest.mark.parametrize("drop_rate", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("variant", ["paper", "code"])
def test_never_flips_signs(drop_rate, variant):
    # issue 16: the paper's scaled mask o * 1(...) turned negative features positive when the
    # channel mean o was negative; every branch must keep each feature's sign (or zero it)
    torch.manual_seed(0)
    for x in (-torch.rand(1, 4, 3, 3) - 0.1, torch.randn(3, 4, 5, 5)):
        for train in (True, False):
            layer = GraphDropout(drop_rate=drop_rate, variant=variant).train(train)
            out = layer(x)
            assert ((out * x) >= 0).all(), (variant, drop_rate, train)
    out = GraphDropout(drop_rate=0.0).train()(-torch.rand(1, 4, 3, 3) - 0.1)
    assert (out <= 0).all()


def test_branch_probability():
    torch.manual_seed(0)
    x = torch.rand(4000, 1, 1, 2) + 1.0  # o > 0, drop mask zeroes the max pixel
    for variant, expected in (("paper", 0.2), ("code", 0.8)):
        out = GraphDropout(drop_rate=0.8, variant=variant, combine="multiply", mask="binary")(x)
        dropped = (out == 0).any(dim=(1, 2, 3)).float().mean().item()
        assert abs(dropped - expected) < 0.03, (variant, dropped)


def test_eval_behaviour():
    x, o = _x()
    paper = GraphDropout(drop_rate=0.0).eval()
    assert torch.allclose(paper(x), x * torch.sigmoid(o))  # importance branch at eval
    ident = GraphDropout(eval_mode="identity").eval()
    assert torch.equal(ident(x), x)
    code = GraphDropout(drop_rate=1.0, variant="code").eval()
    assert not torch.equal(code(x), x)  # code: active at eval
    drop = GraphDropout(drop_rate=1.0, eval_mode="drop").eval()
    assert torch.allclose(drop(x), x * torch.tensor([[[[1.0, 2.0, 0.0]]], [[[1.0, 0.0, 0.0]]]]))


def test_generator_reproducible_and_grad():
    x = torch.randn(6, 3, 4, 4, requires_grad=True)
    layer = GraphDropout(drop_rate=0.5)
    a = layer(x, generator=torch.Generator().manual_seed(1))
    b = layer(x, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    a.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_repr_and_bad_input():
    assert "drop_rate=0.8, drop_threshold=0.7" in str(GraphDropout())
    with pytest.raises(ValueError):
        GraphDropout(drop_rate=1.5)
    with pytest.raises(ValueError):
        GraphDropout(drop_threshold=-0.1)
    with pytest.raises(ValueError):
        GraphDropout(variant="x")
    with pytest.raises(ValueError):
        GraphDropout(mask="soft")
    with pytest.raises(ValueError):
        GraphDropout(eval_mode="never")
    with pytest.raises(ValueError):
        GraphDropout()(torch.randn(3, 4, 4))
    with pytest.raises(TypeError):
        GraphDropout()(torch.ones(1, 1, 2, 2, dtype=torch.long))
