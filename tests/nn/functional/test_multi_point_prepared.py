"""Prepared boxes (issue 18): the MP loss, point selection and consistency check on
:class:`PreparedBoxes` equal the raw-box calls, with no host read."""
import pytest
import torch

import pyg_wsss
from pyg_wsss.nn.functional import consistency_check, multi_point_loss, select_box_points
from pyg_wsss.nn.functional.multi_point import PreparedBoxes, prepare_boxes


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    grids = torch.tensor([[4, 5], [3, 3]])
    n = 20 + 9
    logits = torch.randn(n, 4, generator=g, dtype=torch.float64)
    feats = torch.rand(n, 3, generator=g, dtype=torch.float64)
    boxes = torch.tensor([[0, 0, 2, 1], [1, 1, 4, 3], [0, 0, 2, 2], [1, 0, 1, 2]])
    labels = torch.tensor([1, 3, 2, 1])
    box_batch = torch.tensor([0, 0, 1, 1])
    return logits, feats, boxes, labels, grids, box_batch


@pytest.mark.parametrize("variant", ["paper", "code"])
@pytest.mark.parametrize("reduction", ["sum", "mean", "none"])
def test_prepared_equals_raw(variant, reduction):
    logits, feats, boxes, labels, grids, box_batch = _problem()
    pb = prepare_boxes(logits.size(0), boxes, labels, grids, box_batch)
    assert isinstance(pb, PreparedBoxes) and pb.num_boxes == 4 and pb.num_graphs == 2
    raw = select_box_points(logits, boxes, labels, grids, box_batch, variant=variant)
    prep = select_box_points(logits, pb, variant=variant)
    assert torch.equal(raw[0], prep[0]) and torch.equal(raw[1], prep[1])
    a = multi_point_loss(logits, feats, boxes, labels, grids, box_batch, variant=variant,
                         reduction=reduction)
    b = multi_point_loss(logits, feats, pb, variant=variant, reduction=reduction)
    assert torch.equal(a, b)
    seeds = torch.randint(0, 4, (logits.size(0),), generator=torch.Generator().manual_seed(1))
    c1 = consistency_check(feats, seeds, boxes, labels, *raw, grids, box_batch, threshold=0.8)
    c2 = consistency_check(feats, seeds, pb, None, *prep, None, threshold=0.8)
    assert torch.equal(c1, c2) and (c1 == 255).any()


def test_prepared_boxes_gradients_and_checks():
    logits, feats, boxes, labels, grids, box_batch = _problem()
    pb = prepare_boxes(logits.size(0), boxes, labels, grids, box_batch)
    torch.autograd.gradcheck(lambda a, f: multi_point_loss(a, f, pb),
                             (logits.requires_grad_(), feats.requires_grad_()))
    with pytest.raises(ValueError, match="nodes"):
        multi_point_loss(logits[:5], feats[:5], pb)
    with pytest.raises(ValueError, match="box_labels"):
        select_box_points(logits[:, :2], pb)
    with pytest.raises(TypeError, match="box_labels"):
        select_box_points(logits, boxes)
    # prepared boxes: the point ranges follow the level (skipped: torch's own IndexError)
    with pyg_wsss.checks("cheap"), pytest.raises(IndexError):
        consistency_check(feats, labels.new_zeros(logits.size(0)), pb, None,
                          torch.tensor([999]), torch.tensor([0]), None)
    with pytest.raises(ValueError, match="points"):
        consistency_check(feats, labels.new_zeros(logits.size(0)), pb, None,
                          torch.tensor([999]), torch.tensor([0]), None)


def test_no_boxes():
    logits, feats, *_ = _problem()
    empty = torch.zeros(0, 4, dtype=torch.long)
    pb = prepare_boxes(logits.size(0), empty, empty[:, 0], torch.tensor([[4, 5], [3, 3]]))
    assert select_box_points(logits, pb)[0].numel() == 0
    assert torch.equal(multi_point_loss(logits, feats, pb, reduction="none"),
                       torch.zeros(2, dtype=logits.dtype))
