import pytest
import torch
import torch.nn.functional as F

from pyg_wsss.nn.functional import consistency_check, multi_point_loss, select_box_points


def _loop_points(logits, box, label, w, variant):
    x1, y1, x2, y2 = box
    score = logits.softmax(-1) if variant == "paper" else logits
    pts = []
    for r in range(y1, y2 + 1):
        cells = [r * w + c for c in range(x1, x2 + 1)]
        pts.append(max(cells, key=lambda i: score[i, label].item()))
    for c in range(x1, x2 + 1):
        cells = [r * w + c for r in range(y1, y2 + 1)]
        pts.append(max(cells, key=lambda i: score[i, label].item()))
    return pts


def _loop_loss(logits, feats, boxes, labels, w, variant, eps=1e-5):
    ce, npts, pair, npair = 0.0, 0, 0.0, 0
    for box, lab in zip(boxes.tolist(), labels.tolist()):
        pts = _loop_points(logits, box, lab, w, variant)
        for p in pts:
            ce = ce + F.cross_entropy(logits[p:p + 1], torch.tensor([lab]))
        npts += len(pts)
        for m, a in enumerate(pts):
            for n, b in enumerate(pts):
                if variant == "paper" and m == n:
                    continue
                d = 1 - F.cosine_similarity(feats[a], feats[b], dim=0)
                pair = pair + d + (eps if variant == "code" else 0.0)
                npair += 1
    return ce / npts + pair / npair


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_matches_loop_reference(variant):
    g = torch.Generator().manual_seed(0)
    h, w = 5, 6
    logits = torch.randn(h * w, 4, generator=g, dtype=torch.float64)
    feats = torch.rand(h * w, 3, generator=g, dtype=torch.float64)
    boxes = torch.tensor([[1, 0, 3, 2], [0, 2, 5, 4]])
    labels = torch.tensor([1, 3])
    nodes, owner = select_box_points(logits, boxes, labels, (h, w), variant=variant)
    assert owner.tolist() == [0] * 6 + [1] * 9
    ref0 = _loop_points(logits, boxes[0].tolist(), 1, w, variant)
    assert sorted(nodes[owner == 0].tolist()) == sorted(ref0)
    out = multi_point_loss(logits, feats, boxes, labels, (h, w), variant=variant)
    ref = _loop_loss(logits, feats, boxes, labels, w, variant)
    assert torch.allclose(out, ref)


def test_paper_and_code_selection_differ():
    # probability vs logit ranking: node 0 has the larger logit for class 1, but node 1
    # the larger probability
    logits = torch.tensor([[10.0, 5.0], [0.0, 4.0]])
    boxes = torch.tensor([[0, 0, 1, 0]])
    lab = torch.tensor([1])
    paper, _ = select_box_points(logits, boxes, lab, (1, 2), variant="paper")
    code, _ = select_box_points(logits, boxes, lab, (1, 2), variant="code")
    assert paper.tolist()[0] == 1 and code.tolist()[0] == 0


def test_gradcheck_and_batching():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(12, 3, generator=g, dtype=torch.float64, requires_grad=True)
    feats = torch.rand(12, 4, generator=g, dtype=torch.float64, requires_grad=True)
    boxes = torch.tensor([[0, 0, 2, 1]])
    lab = torch.tensor([2])
    for variant in ("paper", "code"):
        def f(a, b):
            return multi_point_loss(a, b, boxes, lab, (3, 4), variant=variant)
        assert torch.autograd.gradcheck(f, (logits, feats), fast_mode=True)
    # two graphs (3x4 and 2x2) in a batch = sum of the single-graph losses
    l2 = torch.randn(4, 3, generator=g, dtype=torch.float64)
    f2 = torch.rand(4, 4, generator=g, dtype=torch.float64)
    b2 = torch.tensor([[0, 0, 1, 1]])
    out = multi_point_loss(
        torch.cat([logits, l2]), torch.cat([feats, f2]), torch.cat([boxes, b2]),
        torch.tensor([2, 1]), torch.tensor([[3, 4], [2, 2]]), box_batch=torch.tensor([0, 1]),
    )
    ref = (multi_point_loss(logits, feats, boxes, lab, (3, 4))
           + multi_point_loss(l2, f2, b2, torch.tensor([1]), (2, 2)))
    assert torch.allclose(out, ref)
    # a graph without boxes contributes 0; no boxes at all gives 0 (not NaN)
    none = multi_point_loss(logits, feats, torch.empty(0, 4, dtype=torch.long),
                            torch.empty(0, dtype=torch.long), (3, 4))
    assert none == 0


def test_consistency_check():
    h, w = 3, 4
    feats = torch.zeros(12, 2)
    feats[:, 0] = 1.0  # most nodes point along x
    feats[5] = torch.tensor([0.0, 1.0])  # orthogonal: cos 0 to prototype
    feats[6] = torch.tensor([-1.0, 0.2])  # negative cosine
    labels = torch.full((12,), 255)
    labels[[1, 2, 5, 6, 10]] = 1
    labels[9] = 0
    boxes = torch.tensor([[1, 0, 3, 2]])
    lab = torch.tensor([1])
    pts = torch.tensor([1, 2, 3, 7])
    owner = torch.zeros(4, dtype=torch.long)
    code = consistency_check(feats, labels, boxes, lab, pts, owner, (h, w), threshold=0.0)
    assert code[6] == 255 and code[5] == 1 and code[1] == 1  # only cos < 0 removed
    strict = consistency_check(feats, labels, boxes, lab, pts, owner, (h, w), threshold=0.5)
    assert strict[5] == 255 and strict[6] == 255 and strict[2] == 1 and strict[9] == 0
    assert labels[6] == 1  # input untouched
    # non-negative features: threshold 0 never fires (the authors' code)
    nonneg = torch.rand(12, 3)
    assert torch.equal(
        consistency_check(nonneg, labels, boxes, lab, pts, owner, (h, w)), labels
    )


def test_bad_inputs():
    logits = torch.randn(6, 3)
    feats = torch.rand(6, 2)
    with pytest.raises(ValueError, match="outside"):
        select_box_points(logits, torch.tensor([[0, 0, 3, 0]]), torch.tensor([1]), (2, 3))
    with pytest.raises(ValueError, match="empty"):
        select_box_points(logits, torch.tensor([[2, 0, 1, 0]]), torch.tensor([1]), (2, 3))
    with pytest.raises(ValueError, match="boxes"):
        select_box_points(logits, torch.tensor([[0, 0, 1]]), torch.tensor([1]), (2, 3))
    with pytest.raises(ValueError, match="box_labels"):
        select_box_points(logits, torch.tensor([[0, 0, 1, 1]]), torch.tensor([7]), (2, 3))
    with pytest.raises(ValueError, match="grid_size"):
        select_box_points(logits, torch.tensor([[0, 0, 1, 1]]), torch.tensor([1]), (3, 3))
    with pytest.raises(ValueError, match="variant"):
        multi_point_loss(logits, feats, torch.tensor([[0, 0, 1, 1]]), torch.tensor([1]), (2, 3),
                         variant="x")
    with pytest.raises(ValueError, match="features"):
        multi_point_loss(logits, feats[:3], torch.tensor([[0, 0, 1, 1]]), torch.tensor([1]),
                         (2, 3))
    with pytest.raises(ValueError, match="threshold"):
        consistency_check(feats, torch.zeros(6, dtype=torch.long), torch.tensor([[0, 0, 1, 1]]),
                          torch.tensor([1]), torch.tensor([0]), torch.tensor([0]), (2, 3),
                          threshold=2.0)
