"""The CSR builders of ops/csr.py (issue 18): to_csr accepts EdgeIndex and reads nothing on a
cache hit; csr_matrix is the one COO -> CSR builder (re-exported by ops.spmm)."""
import importlib

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch_geometric import EdgeIndex

from pyg_wsss.ops import clear_csr_cache, csr_matrix, to_csr

spmm_module = importlib.import_module("pyg_wsss.ops.spmm")


class _Reads(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (torch.Tensor.item, torch.Tensor.__int__, torch.Tensor.__bool__,
                    torch.Tensor.tolist, torch.Tensor.cpu):
            self.calls.append(func.__name__)
        return func(*args, **(kwargs or {}))


def _ei():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 9, (2, 30), generator=g)


def test_edge_index_input_equals_plain_tensor():
    ei = _ei()
    clear_csr_cache()
    a = to_csr(ei, 9, cache=False)
    b = to_csr(EdgeIndex(ei, sparse_size=(9, 9)), cache=False)  # size from sparse_size
    c = to_csr(EdgeIndex(ei), 9, cache=False)
    for x in (b, c):
        for name in ("rowptr", "col", "row", "perm", "t_rowptr", "t_col", "t_perm"):
            assert torch.equal(getattr(a, name), getattr(x, name)), name
        assert (x.num_src, x.num_dst) == (9, 9)


def test_cache_hit_reads_nothing():
    ei = _ei()
    clear_csr_cache()
    first = to_csr(ei, 9)
    spy = _Reads()
    with spy:
        again = to_csr(ei, 9)
        again_ei = to_csr(EdgeIndex(ei, sparse_size=(9, 9)))
    assert again is first and again_ei is first
    assert spy.calls == []
    with pytest.raises(ValueError, match="outside"):  # a miss checks the range
        to_csr(ei, 5)


def test_csr_matrix_is_shared_and_sums_duplicates():
    assert spmm_module.csr_matrix is csr_matrix
    row = torch.tensor([0, 2, 0, 1])
    col = torch.tensor([1, 0, 1, 2])
    m = csr_matrix(row, col, torch.tensor([1.0, 2.0, 3.0, 4.0]), (3, 3))
    assert m.layout == torch.sparse_csr
    assert torch.equal(m.to_dense(), torch.tensor([[0.0, 4, 0], [0, 0, 4], [2, 0, 0]]))
    with pytest.raises(ValueError, match="row"):
        csr_matrix(row + 3, col, torch.ones(4), (3, 3))
