import pytest
import torch
from torch_geometric.nn import GCNConv

from pyg_wsss.ops import sddmm, spmm, to_csr
from pyg_wsss.ops.csr import clear_csr_cache


def gather_scatter(ei, w, x, n):
    return torch.zeros(n, x.size(1), dtype=x.dtype).index_add_(0, ei[1], w[:, None] * x[ei[0]])


def test_spmm_matches_gather_scatter_and_grads():
    torch.manual_seed(0)
    n = 25
    ei = torch.randint(0, n, (2, 90))  # unsorted, duplicates, isolated nodes
    w = torch.rand(90, dtype=torch.float64, requires_grad=True)
    x = torch.randn(n, 6, dtype=torch.float64, requires_grad=True)
    out = spmm(ei, w, x)
    ref = gather_scatter(ei, w, x, n)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(out)
    a = torch.autograd.grad((out * g).sum(), (w, x))
    b = torch.autograd.grad((ref * g).sum(), (w, x))
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v)
    assert torch.autograd.gradcheck(lambda w, x: spmm(ei, w, x), (w, x))


def test_spmm_equals_gcnconv_without_normalisation():
    torch.manual_seed(1)
    ei = torch.randint(0, 10, (2, 30))
    w = torch.rand(30)
    x = torch.randn(10, 4)
    conv = GCNConv(4, 4, normalize=False, add_self_loops=False, bias=False)
    expected = conv(x, ei, w)
    torch.testing.assert_close(spmm(ei, w, conv.lin(x)), expected, atol=1e-5, rtol=1e-5)


def test_spmm_rectangular_empty_and_half():
    ei = torch.tensor([[0, 1, 2], [0, 0, 1]])
    x = torch.randn(3, 2)
    out = spmm(ei, None, x, num_nodes=(3, 2))
    torch.testing.assert_close(out, torch.stack([x[0] + x[1], x[2]]))
    empty = torch.empty(2, 0, dtype=torch.long)
    assert torch.equal(spmm(empty, None, x), torch.zeros(3, 2))
    assert spmm(ei, None, x.half(), num_nodes=(3, 2)).dtype == torch.float16


def test_sddmm_and_cache():
    clear_csr_cache()
    ei = torch.randint(0, 8, (2, 20))
    csr = to_csr(ei, 8)
    assert to_csr(ei, 8) is csr  # cached: the graph is sorted once
    a, b = torch.randn(8, 3), torch.randn(8, 3)
    vals = csr.to_edge_order(sddmm(csr, a, b))
    torch.testing.assert_close(vals, (a[ei[1]] * b[ei[0]]).sum(-1))
    ei.add_(0)  # in-place change bumps the version: re-sorted
    assert to_csr(ei, 8) is not csr


def test_bad_input():
    ei = torch.randint(0, 4, (2, 5))
    with pytest.raises(ValueError, match="edge_weight"):
        spmm(ei, torch.rand(3), torch.randn(4, 2))
    with pytest.raises(ValueError, match="num_nodes"):
        to_csr(ei, 2)
    with pytest.raises(TypeError, match="edge_index"):
        to_csr(ei.float(), 4)


def test_fixed_spmm_matches_dense_with_gradient():
    from pyg_wsss.ops import csr_matrix, fixed_spmm

    g = torch.Generator().manual_seed(3)
    ei = torch.randint(0, 5, (2, 11), generator=g)  # duplicates are summed
    w = torch.rand(11, generator=g, dtype=torch.float64)
    a = csr_matrix(ei[1], ei[0], w, (5, 5))
    a_t = csr_matrix(ei[0], ei[1], w, (5, 5))
    dense = torch.zeros(5, 5, dtype=torch.float64).index_put_((ei[1], ei[0]), w, accumulate=True)
    assert torch.allclose(a.to_dense(), dense)
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(fixed_spmm(a, a_t, x), dense @ x)
    assert torch.autograd.gradcheck(lambda t: fixed_spmm(a, a_t, t), (x,))
    empty = csr_matrix(ei[1, :0], ei[0, :0], w[:0], (5, 5))
    out = fixed_spmm(empty, empty, x)
    assert out.shape == (5, 3) and not out.any()
    out.sum().backward()
    with pytest.raises(ValueError, match="shapes"):
        fixed_spmm(a, a_t, torch.randn(4, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="'a'"):
        fixed_spmm(dense, a_t, x)
    with pytest.raises(TypeError, match="'a'"):
        fixed_spmm(a, a_t, x.float())
    # bad indices are refused before torch builds an invalid sparse tensor
    with pytest.raises(ValueError, match="'row'"):
        csr_matrix(torch.tensor([0, 7]), torch.tensor([1, 2]), torch.ones(2), (3, 3))
    with pytest.raises(ValueError, match="'col'"):
        csr_matrix(torch.tensor([0, 1]), torch.tensor([-1, 2]), torch.ones(2), (3, 3))
    with pytest.raises(ValueError, match="one entry"):
        csr_matrix(torch.tensor([0, 1]), torch.tensor([1, 2]), torch.ones(3), (3, 3))
