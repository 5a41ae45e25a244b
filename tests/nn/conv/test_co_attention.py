import pytest
import torch
import torch.nn.functional as F

from pyg_wsss.nn.conv import CoAttentionConv
from pyg_wsss.nn.conv.co_attention import co_attention


def _complete(n, loops=False):
    ei = torch.cartesian_prod(torch.arange(n), torch.arange(n)).t()
    ei = ei[[1, 0]]
    if not loops:
        ei = ei[:, ei[0] != ei[1]]
    return ei.contiguous()


def _dense_reference(conv, x, edge_index):
    """Independent per-edge loop with explicit HW x HW softmax (G 5-8)."""
    n, c, h, w = x.shape
    out = torch.zeros_like(x)

    def proj(m, t):  # 1x1 conv on one map -> [HW, C']
        return F.conv2d(t[None], m.weight, m.bias)[0].flatten(1).t()

    for j, i in edge_index.t().tolist():
        hi, hj = x[i], x[j]
        if conv.self_attention and i == j:
            a = torch.softmax(proj(conv.phi_f, hi) @ proj(conv.phi_g, hi).t(), dim=-1)
            m = (a @ proj(conv.phi_h, hi)).t().reshape(c, h, w) + hi
        else:
            a = torch.softmax(proj(conv.lin_p, hi) @ proj(conv.lin_q, hj).t(), dim=-1)
            m = (a @ hj.flatten(1).t()).t().reshape(c, h, w)
            if conv.gate:
                g = torch.sigmoid(F.conv2d(m[None], conv.lin_gate.weight))[0]
                m = m * g
        out[i] += m
    return out


@pytest.mark.parametrize("variant", ["paper", "code"])
@pytest.mark.parametrize("attention", ["fused", "dense"])
def test_matches_dense_reference(variant, attention, device):
    torch.manual_seed(0)
    conv = CoAttentionConv(8, variant=variant, attention=attention).to(device).double()
    x = torch.randn(4, 8, 3, 5, dtype=torch.float64, device=device)
    ei = torch.tensor([[0, 1, 2, 0, 3, 1, 2], [1, 0, 0, 0, 3, 3, 2]], device=device)
    out = conv(x, ei)
    ref = _dense_reference(conv, x, ei)
    assert out.shape == x.shape
    assert torch.allclose(out, ref, atol=1e-10)
    assert torch.allclose(conv(x, ei.int()), out, atol=1e-10)


def test_message_is_sdpa_note_check_5():
    # NOTES.md check 5: message = SDPA(query=P h_i, key=Q h_j, value=h_j, scale=1)
    torch.manual_seed(1)
    conv = CoAttentionConv(6, variant="code", gate=False)
    x = torch.randn(2, 6, 4, 4)
    out = conv(x, torch.tensor([[0], [1]]))
    q = F.conv2d(x[1:2], conv.lin_p.weight, conv.lin_p.bias).flatten(2).transpose(1, 2)
    k = F.conv2d(x[0:1], conv.lin_q.weight, conv.lin_q.bias).flatten(2).transpose(1, 2)
    v = x[0:1].flatten(2).transpose(1, 2)
    ref = F.scaled_dot_product_attention(q, k, v, scale=1.0)
    assert torch.allclose(out[1], ref[0].t().reshape(6, 4, 4), atol=1e-5)
    assert torch.equal(out[0], torch.zeros_like(out[0]))  # node 0 gets no message


@pytest.mark.parametrize("cv,ck", [(12, 3), (10, 4), (5, 5), (3, 8)])
def test_fused_equals_dense_with_grads(cv, ck):
    q = torch.randn(3, 7, ck, dtype=torch.float64, requires_grad=True)
    k = torch.randn(3, 9, ck, dtype=torch.float64, requires_grad=True)
    v = torch.randn(3, 9, cv, dtype=torch.float64, requires_grad=True)
    a = co_attention(q, k, v, "fused")
    b = co_attention(q, k, v, "dense")
    assert torch.allclose(a, b, atol=1e-10)
    ga = torch.autograd.grad(a.sin().sum(), (q, k, v))
    gb = torch.autograd.grad(b.sin().sum(), (q, k, v))
    for x, y in zip(ga, gb):
        assert torch.allclose(x, y, atol=1e-9)


def test_gradcheck_layer():
    torch.manual_seed(2)
    conv = CoAttentionConv(4, reduction=2, gate=True).double()
    x = torch.randn(2, 4, 1, 2, dtype=torch.float64, requires_grad=True)
    ei = _complete(2, loops=True)
    assert torch.autograd.gradcheck(lambda t: conv(t, ei), (x,))


def test_permutation_equivariance():
    torch.manual_seed(3)
    conv = CoAttentionConv(8)
    x = torch.randn(4, 8, 3, 3)
    ei = torch.tensor([[0, 1, 1, 2, 3, 0, 1, 2, 3], [1, 0, 2, 1, 0, 0, 1, 2, 3]])
    perm = torch.tensor([2, 0, 3, 1])  # new node a = old node perm[a]
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(4)
    out = conv(x, ei)
    out_p = conv(x[perm], inv[ei])
    assert torch.allclose(out_p, out[perm], atol=1e-5)
    # edge order does not matter either
    order = torch.randperm(ei.size(1))
    assert torch.allclose(conv(x, ei[:, order]), out, atol=1e-5)


def test_single_image_self_loop():
    conv = CoAttentionConv(8)
    x = torch.randn(1, 8, 4, 4)
    out = conv(x, torch.tensor([[0], [0]]))
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert not torch.allclose(out, torch.zeros_like(out))


def test_gradients_reach_projections():
    conv = CoAttentionConv(8, variant="code")
    x = torch.randn(3, 8, 3, 3, requires_grad=True)
    conv(x, _complete(3)).square().sum().backward()
    for name in ("lin_p", "lin_q", "lin_gate"):
        g = getattr(conv, name).weight.grad
        assert g is not None and g.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0
    conv = CoAttentionConv(8)
    conv(x, _complete(3, loops=True)).square().sum().backward()
    for name in ("lin_p", "lin_q", "phi_f", "phi_g", "phi_h"):
        assert getattr(conv, name).weight.grad.abs().sum() > 0, name


def test_attention_weights():
    conv = CoAttentionConv(8)
    x = torch.randn(3, 8, 2, 3)
    ei = _complete(3, loops=True)
    out, (ei_out, alpha) = conv(x, ei, return_attention_weights=True)
    assert torch.equal(ei_out, ei)
    assert alpha.shape == (ei.size(1), 6, 6)
    assert torch.allclose(alpha.sum(-1), torch.ones(ei.size(1), 6))
    assert torch.allclose(out, conv(x, ei))


def test_empty_graph_and_isolated_nodes():
    conv = CoAttentionConv(4)
    x = torch.randn(3, 4, 2, 2)
    out = conv(x, torch.empty(2, 0, dtype=torch.long))
    assert torch.equal(out, torch.zeros_like(x))
    out = conv(torch.randn(0, 4, 2, 2), torch.empty(2, 0, dtype=torch.long))
    assert out.shape == (0, 4, 2, 2)


def test_sparse_adjacency_equals_edge_index():
    conv = CoAttentionConv(4)
    x = torch.randn(3, 4, 2, 2)
    ei = torch.tensor([[0, 1, 2, 2], [1, 2, 0, 2]])
    adj_t = torch.sparse_coo_tensor(ei.flip(0), torch.ones(4), (3, 3)).coalesce()
    assert torch.allclose(conv(x, adj_t), conv(x, ei), atol=1e-6)


def test_save_load_and_repr(tmp_path):
    conv = CoAttentionConv(16, variant="code")
    assert str(conv) == (
        "CoAttentionConv(16, reduction=2, variant='code', gate=True, self_attention=False)"
    )
    assert conv.key_channels == 8 and conv.lin_p.bias is not None
    paper = CoAttentionConv(16)
    assert paper.reduction == 4 and paper.lin_p.bias is None and paper.self_attention
    torch.save(conv, tmp_path / "c.pt")
    loaded = torch.load(tmp_path / "c.pt", weights_only=False)
    x = torch.randn(2, 16, 2, 2)
    ei = _complete(2)
    assert torch.allclose(loaded(x, ei), conv(x, ei))
    conv2 = CoAttentionConv(16, variant="code")
    conv2.load_state_dict(conv.state_dict())
    assert torch.allclose(conv2(x, ei), conv(x, ei))


def test_bad_input():
    with pytest.raises(ValueError):
        CoAttentionConv(0)
    with pytest.raises(ValueError):
        CoAttentionConv(4, variant="other")
    with pytest.raises(ValueError):
        CoAttentionConv(4, attention="flash")
    with pytest.raises(ValueError):
        CoAttentionConv(4, reduction=0)
    conv = CoAttentionConv(4)
    ei = torch.tensor([[0], [1]])
    with pytest.raises(ValueError):
        conv(torch.randn(2, 4, 3), ei)
    with pytest.raises(ValueError):
        conv(torch.randn(2, 5, 3, 3), ei)
    with pytest.raises(TypeError):
        conv(torch.randint(0, 3, (2, 4, 3, 3)), ei)
    with pytest.raises(TypeError):
        conv(torch.randn(2, 4, 3, 3), ei.float())
    with pytest.raises(ValueError):
        conv(torch.randn(2, 4, 3, 3), torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError):
        co_attention(torch.randn(1, 2, 2), torch.randn(1, 2, 2), torch.randn(1, 2, 2), "x")
    with pytest.raises(TypeError, match="edge_index"):
        conv(torch.randn(2, 4, 3, 3), [[0], [1]])
    with pytest.raises(ValueError, match="num_dst, num_src"):
        conv(torch.randn(2, 4, 3, 3), torch.eye(3).to_sparse())
    code = CoAttentionConv(4, variant="code")
    with pytest.raises(ValueError, match="channels"):
        code((torch.randn(2, 4, 3, 3), torch.randn(2, 5, 3, 3)), ei)
    with pytest.raises(TypeError, match="pair"):
        code((torch.randn(2, 4, 3, 3),), ei)


def test_auto_path_and_fused_kernel_selected():
    import importlib

    from torch.profiler import ProfilerActivity, profile

    # the module (``pyg_wsss.nn.conv.co_attention`` is the function of the same name)
    mod = importlib.import_module("pyg_wsss.nn.conv.co_attention")

    q, k, v = torch.randn(2, 16, 4), torch.randn(2, 16, 4), torch.randn(2, 16, 12)
    ref = co_attention(q, k, v, "dense")
    assert torch.allclose(co_attention(q, k, v, "auto"), ref, atol=1e-5)
    old = mod.AUTO_DENSE_MAX_ENTRIES
    try:
        mod.AUTO_DENSE_MAX_ENTRIES = 0  # force the fused path
        assert torch.allclose(co_attention(q, k, v, "auto"), ref, atol=1e-5)
    finally:
        mod.AUTO_DENSE_MAX_ENTRIES = old
    # on CPU the fused path must hit the flash kernel (no [B, L, L] matrix), not the math one
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        co_attention(q.requires_grad_(), k, v, "fused").sum().backward()
    names = {e.key for e in prof.key_averages()}
    assert any("flash_attention" in n for n in names), names
    assert not any("attention_math" in n for n in names)


def test_dynamo_no_graph_breaks():
    conv = CoAttentionConv(4, attention="dense")
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(conv)(torch.randn(3, 4, 2, 2), _complete(3, loops=True))
    assert explanation.graph_break_count == 0, explanation.break_reasons
