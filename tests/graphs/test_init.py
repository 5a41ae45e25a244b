"""The lazy public API of pyg_wsss.graphs resolves every listed name."""
import pyg_wsss.graphs as graphs


def test_all_names_resolve():
    for name in graphs.__all__:
        assert getattr(graphs, name) is not None, name
    assert set(dir(graphs)) == set(graphs.__all__)


def test_rwr_without_edges_returns_restart():
    import torch

    r = graphs.random_walk_with_restart(torch.zeros(2, 0, dtype=torch.long), [1], num_nodes=3)
    torch.testing.assert_close(r, torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64))
