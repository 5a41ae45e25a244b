"""A2GNN's static-shape path (issue 18): the per-graph linears without to_dense_batch's boolean
mask (``max_num_nodes``), and dropout masks drawn on the generators' device."""
import pytest
import torch
from torch_geometric.utils import to_dense_batch

from pyg_wsss.nn.models import A2GNN
from pyg_wsss.nn.models.a2gnn import dropout_masks

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _batch(sizes, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    batch = torch.cat([torch.full((s,), i) for i, s in enumerate(sizes)])
    ei = []
    off = 0
    for s in sizes:
        ei.append(torch.randint(0, s, (2, 3 * s), generator=g) + off)
        off += s
    ei = torch.cat(ei, 1)
    return torch.rand(n, 6, generator=g), ei, torch.rand(ei.size(1), generator=g), batch


@pytest.mark.parametrize("sizes", [[5, 5, 5], [7, 3, 5], [1, 9]])
def test_dense_layout_equals_to_dense_batch(sizes):
    model = A2GNN(6, 4, hidden_channels=8, num_graphs=len(sizes), seeds=list(range(len(sizes))))
    x, _, _, batch = _batch(sizes)
    dense, mask = to_dense_batch(x, batch, batch_size=len(sizes))
    ref = torch.bmm(dense, model.lin_in)[mask]
    assert torch.equal(model._linear(x, model.lin_in, batch), ref)
    assert torch.equal(model._linear(x, model.lin_in, batch, max(sizes)), ref)


def test_forward_with_max_num_nodes_is_the_same():
    sizes = [7, 3, 5]
    model = A2GNN(6, 4, hidden_channels=8, num_graphs=3, seeds=[0, 1, 2]).eval()
    x, ei, ew, batch = _batch(sizes)
    a = model(x, ei, ew, batch=batch)
    b = model(x, ei, ew, batch=batch, max_num_nodes=7)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("device", DEVICES)
def test_dropout_masks_on_the_generator_device(device):
    gens = [torch.Generator(device=device).manual_seed(s) for s in (1, 2)]
    m = dropout_masks([3, 4], 5, 0.5, gens)
    assert m.device.type == device and m.shape == (7, 5)
    assert set(m.unique().tolist()) <= {0.0, 2.0}
    again = dropout_masks([3, 4], 5, 0.5, [torch.Generator(device=device).manual_seed(s)
                                           for s in (1, 2)])
    assert torch.equal(m, again)
    if device == "cpu":  # the same draws as before (CPU generators)
        ref = torch.cat([(torch.rand(n, 5, generator=torch.Generator().manual_seed(s)) >= 0.5)
                         .float() / 0.5 for n, s in ((3, 1), (4, 2))])
        assert torch.equal(m, ref)
