import pytest
import torch

from pyg_wsss.graphs import pixel_graph
from pyg_wsss.nn.functional import gated_crf_loss
from pyg_wsss.nn.functional.gated_crf import gated_crf_kernel


def _setup(h=4, w=5, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    graph = pixel_graph(h, w, 2, shape="square", self_loops=True)
    colour = torch.rand(h * w, 3, generator=g, dtype=torch.float64)
    logits = torch.randn(h * w, k, generator=g, dtype=torch.float64)
    kern = gated_crf_kernel(colour, graph.pos.double(), graph.edge_index)
    return graph, colour, logits, kern


def test_matches_dense_potts_reference():
    graph, colour, logits, kern = _setup()
    n = logits.size(0)
    y = logits.softmax(-1)
    pos = graph.pos.double()
    d_xy = torch.cdist(pos, pos).pow(2)
    d_rgb = torch.cdist(colour, colour).pow(2)
    kd = torch.exp(-d_xy / (2 * 36) - d_rgb / (2 * 0.01))
    win = ((pos[:, None] - pos[None]).abs().amax(-1) <= 2) & ~torch.eye(n, dtype=torch.bool)
    ref = (kd * win * (1 - y @ y.t())).sum() / n
    assert torch.allclose(gated_crf_loss(logits, graph.edge_index, kern), ref)
    # kernel: self-edges are zero, others equal the dense kernel
    src, dst = graph.edge_index
    assert torch.all(kern[src == dst] == 0)
    assert torch.allclose(kern[src != dst], kd[dst, src][src != dst])


def test_constant_offset_from_code_form_and_gradients():
    # code form: sum K - sum K y_i.y_j ; ours differs only by a constant
    graph, _, logits, kern = _setup(seed=1)
    logits.requires_grad_()
    ours = gated_crf_loss(logits, graph.edge_index, kern)
    y = logits.softmax(-1)
    src, dst = graph.edge_index
    code = -(kern * (y[src] * y[dst]).sum(-1)).sum() / logits.size(0)
    g1, = torch.autograd.grad(ours, logits)
    g2, = torch.autograd.grad(code, logits)
    assert torch.allclose(g1, g2)


def test_gradcheck_and_probabilities_input():
    graph, _, logits, kern = _setup(h=3, w=3, seed=2)
    logits.requires_grad_()
    assert torch.autograd.gradcheck(lambda z: gated_crf_loss(z, graph.edge_index, kern), (logits,))
    p = logits.detach().softmax(-1)
    assert torch.allclose(gated_crf_loss(p, graph.edge_index, kern, from_logits=False),
                          gated_crf_loss(logits.detach(), graph.edge_index, kern))


def test_batched_sum_of_per_graph_losses():
    g1, _, l1, k1 = _setup(seed=3)
    g2, _, l2, k2 = _setup(h=3, w=3, seed=4)
    ei = torch.cat([g1.edge_index, g2.edge_index + 20], 1)
    batch = torch.tensor([0] * 20 + [1] * 9)
    out = gated_crf_loss(torch.cat([l1, l2]), ei, torch.cat([k1, k2]), batch=batch)
    ref = gated_crf_loss(l1, g1.edge_index, k1) + gated_crf_loss(l2, g2.edge_index, k2)
    assert torch.allclose(out, ref)
    none = gated_crf_loss(torch.cat([l1, l2]), ei, torch.cat([k1, k2]), batch=batch,
                          reduction="none")
    assert none.shape == (2,)


def test_constant_labels_give_zero_and_empty_graph():
    graph, _, _, kern = _setup()
    onehot = torch.zeros(20, 3, dtype=torch.float64)
    onehot[:, 1] = 1
    assert gated_crf_loss(onehot, graph.edge_index, kern, from_logits=False) == 0
    empty = torch.empty(2, 0, dtype=torch.long)
    assert gated_crf_loss(torch.randn(4, 3), empty, torch.empty(0)) == 0
    assert gated_crf_loss(torch.randn(0, 3), empty, torch.empty(0)) == 0


def test_bad_inputs():
    graph, _, logits, kern = _setup()
    with pytest.raises(ValueError, match="kernel"):
        gated_crf_loss(logits, graph.edge_index, kern[:-1])
    with pytest.raises(ValueError, match="edge_index"):
        gated_crf_loss(logits[:5], graph.edge_index, kern)
    with pytest.raises(ValueError, match="NaN"):
        gated_crf_loss(logits * float("nan"), graph.edge_index, kern)
    with pytest.raises(TypeError, match="input"):
        gated_crf_loss(logits.long(), graph.edge_index, kern)
    with pytest.raises(ValueError, match="reduction"):
        gated_crf_loss(logits, graph.edge_index, kern, reduction="max")


def test_spmm_path_equals_edge_path_values_and_grads():
    from pyg_wsss.graphs import pixel_graph

    g = pixel_graph(7, 6, 2, shape="square", self_loops=True)
    n = g.num_nodes
    batch = (torch.arange(n) >= 20).long()
    kernel = torch.rand(g.edge_index.size(1), dtype=torch.float64)
    logits = torch.randn(n, 4, dtype=torch.float64, requires_grad=True)
    outs = []
    for method in ("spmm", "edges"):
        loss = gated_crf_loss(logits, g.edge_index, kernel, batch=batch, method=method,
                              reduction="none")
        (grad,) = torch.autograd.grad(loss.sum(), logits)
        outs.append((loss, grad))
    torch.testing.assert_close(outs[0][0], outs[1][0])
    torch.testing.assert_close(outs[0][1], outs[1][1])
