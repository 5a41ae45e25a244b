import io

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.nn import DenseGCNConv

from pyg_wsss.nn.functional import multilabel_focal_loss
from pyg_wsss.nn.models import GRMHead, KnowledgeClassifier, SmallCNN

C, K = 4, 6


def _knowledge():
    e = torch.rand(C, C)
    e = (e + e.t()) / 2
    return torch.randn(C, K), e


def _model(**kw):
    v, e = _knowledge()
    return KnowledgeClassifier(
        SmallCNN(widths=(8, 16), output_stride=4), v, e, hidden_channels=12, **kw
    )


def test_shapes_and_cams():
    model = _model()
    x = torch.rand(2, 3, 32, 32)
    plain, know = model(x, both=True)
    assert plain.shape == know.shape == (2, C)
    torch.testing.assert_close(model(x), plain)
    for source in ("plain", "gcn", "mean"):
        cam = model.cam(x, source=source)
        assert cam.shape == (2, C, 8, 8) and (cam >= 0).all()


def test_gcn_weights_equal_dense_gcn_on_e_plus_i():
    v, e = _knowledge()
    model = KnowledgeClassifier(
        SmallCNN(widths=(8, 16), output_stride=4), v, e, hidden_channels=12, final_activation=False
    )
    a = e + torch.eye(C)
    d = a.sum(-1).pow(-0.5)
    a_hat = d[:, None] * a * d[None]
    h = F.leaky_relu(a_hat @ v @ model.gc1.lin.weight.t(), 0.2)
    ref = a_hat @ h @ model.gc2.lin.weight.t()
    torch.testing.assert_close(model.knowledge_weights(), ref)
    # logits are dot products of the pooled feature with these weights
    x = torch.rand(1, 3, 16, 16)
    f = model.features(x).mean((2, 3))
    torch.testing.assert_close(model(x, both=True)[1], f @ ref.t())
    assert isinstance(model.gc1, DenseGCNConv)


def test_joint_loss_eq6():
    model = _model(focal_weight=0.5)
    x, y = torch.rand(2, 3, 16, 16), torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0]])
    plain, know = model(x, both=True)
    ref = F.multilabel_soft_margin_loss(plain, y) + 0.5 * multilabel_focal_loss(know, y)
    torch.testing.assert_close(model.loss(x, y), ref)
    model.loss(x, y).backward()
    assert (
        model.gc1.lin.weight.grad.abs().sum() > 0 and model.classifier.weight.grad.abs().sum() > 0
    )


def test_without_knowledge_and_none_relation():
    v, _ = _knowledge()
    base = KnowledgeClassifier(SmallCNN(widths=(8,), output_stride=2), v, use_knowledge=False)
    x = torch.rand(1, 3, 8, 8)
    assert base(x, both=True)[1] is None and base.loss(x, torch.ones(1, C)).ndim == 0
    assert not hasattr(base, "gc1")
    plain = KnowledgeClassifier(SmallCNN(widths=(8,), output_stride=2), v, relation=None)
    torch.testing.assert_close(plain.adjacency, torch.eye(C))


def test_training_reduces_loss():
    v, e = _knowledge()
    model = KnowledgeClassifier(
        SmallCNN(widths=(8,), output_stride=2), v, e, hidden_channels=8, focal_weight=1.0
    )
    x = torch.rand(4, 3, 8, 8)
    y = torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1], [1, 0, 0, 1]])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model.loss(x, y).item()
    for _ in range(40):
        opt.zero_grad()
        loss = model.loss(x, y)
        loss.backward()
        opt.step()
    assert loss.item() < first * 0.7


def test_save_load_repr():
    model = _model().eval()
    x = torch.rand(1, 3, 16, 16)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    other = _model().eval()
    other.load_state_dict(torch.load(buf))
    torch.testing.assert_close(model(x, both=True)[1], other(x, both=True)[1])
    assert "KnowledgeClassifier(num_classes=4" in str(model)


def test_grm_head():
    v, e = _knowledge()
    head = GRMHead(16, C + 1, v, e, score="bilinear").eval()
    x = torch.randn(2, 16, 5, 5)
    out, h = head(x, return_mapping=True)
    assert out.shape == (2, C + 1, 5, 5) and h.shape == (2, C, 25)
    assert "score='bilinear'" in str(head)
    head.train()
    head(x).sum().backward()
    assert head.grm.lin1.weight.grad is not None
    assert GRMHead(16, C + 1, v, None, classifier=False)(x).shape == x.shape


def test_bad_input():
    v, e = _knowledge()
    bb = SmallCNN(widths=(8,), output_stride=2)
    with pytest.raises(ValueError, match="relation"):
        KnowledgeClassifier(bb, v, torch.rand(C + 1, C + 1))
    with pytest.raises(ValueError, match="relation"):
        KnowledgeClassifier(bb, v, -e)
    with pytest.raises(ValueError, match="node_features"):
        KnowledgeClassifier(bb, torch.randn(C))
    with pytest.raises(TypeError, match="backbone"):
        KnowledgeClassifier(torch.nn.Linear(2, 2), v, e)
    with pytest.raises(ValueError, match="cam_source"):
        KnowledgeClassifier(bb, v, e, cam_source="both")
    model = KnowledgeClassifier(bb, v, e)
    with pytest.raises(ValueError, match="targets"):
        model.loss(torch.rand(2, 3, 8, 8), torch.ones(2, C + 1))
    with pytest.raises(ValueError, match="'x'"):
        model(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="relation"):
        GRMHead(8, C + 1, v, torch.rand(2, 2))
