"""The one random-walk transition (issue 18): pseudo.walk.transition_edges behind
transition_matrix and WSGCN's random_walk_transition, with normalization=."""
import pytest
import torch

from pyg_wsss.graphs import pixel_graph
from pyg_wsss.graphs.wsgcn import random_walk_transition
from pyg_wsss.pseudo.walk import transition_edges, transition_matrix


def _graph():
    g = torch.Generator().manual_seed(3)
    ei = pixel_graph(4, 4, 1, shape="square").edge_index
    keep = torch.rand(ei.size(1), generator=g) < 0.7  # asymmetric
    ei = ei[:, keep]
    return ei, torch.rand(ei.size(1), generator=g, dtype=torch.float64)


@pytest.mark.parametrize("normalization", ["target", "source"])
@pytest.mark.parametrize("self_loops", [True, False])
def test_transition_matrix_normalisations(normalization, self_loops):
    ei, w = _graph()
    t = transition_matrix(ei, w, 16, beta=2.0, self_loops=self_loops,
                          normalization=normalization).to_dense()
    dense = transition_matrix(ei, w, 16, beta=2.0, self_loops=self_loops,
                              normalization=normalization, dense=True)
    assert torch.allclose(t, dense)
    sums = t.sum(0) if normalization == "target" else t.sum(1)
    assert torch.allclose(sums, torch.ones(16, dtype=t.dtype))
    # the hand-made reference: A^beta (+ I), normalised
    a = torch.zeros(16, 16, dtype=w.dtype).index_put_((ei[0], ei[1]), w.pow(2.0),
                                                      accumulate=True)
    if self_loops:
        a.fill_diagonal_(1.0)
    norm = a.sum(0, keepdim=True) if normalization == "target" else a.sum(1, keepdim=True)
    empty = (norm == 0).view(-1)
    ref = a / norm.clamp(min=1e-300)
    ref[empty, empty] = 1.0
    assert torch.allclose(t, ref)


def test_wsgcn_transition_uses_the_same_first_step():
    ei, w = _graph()
    # exp_times=0: the first-step transition itself, on edges j -> i (rows = targets)
    tei, tw = random_walk_transition(ei, w, 16, beta=2.0, exp_times=0, top_k=None)
    t = torch.zeros(16, 16, dtype=tw.dtype).index_put_((tei[1], tei[0]), tw)
    ref = transition_matrix(ei, w, 16, beta=2.0).to_dense()  # [source, target]
    assert torch.allclose(t, ref.t())
    src, dst, val, loops, loop_val = transition_edges(ei[0], ei[1], w, 16, 2.0)
    assert loops.tolist() == list(range(16)) and torch.all(val > 0)


def test_source_normalisation_rows_sum_to_one_after_pruning():
    ei, w = _graph()
    tei, tw = random_walk_transition(ei, w, 16, beta=2.0, exp_times=1, top_k=None,
                                     normalization="source")
    t = torch.zeros(16, 16, dtype=tw.dtype).index_put_((tei[1], tei[0]), tw)
    assert t.shape == (16, 16) and torch.all(t >= 0)
    with pytest.raises(ValueError, match="normalization"):
        random_walk_transition(ei, w, 16, normalization="rows")
    with pytest.raises(ValueError, match="normalization"):
        transition_matrix(ei, w, 16, normalization="rows")
