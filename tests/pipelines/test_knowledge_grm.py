import numpy as np
import pytest
import torch

from pyg_wsss.pipelines import DemoContext, demos
from pyg_wsss.pipelines.knowledge_grm import (
    KnowledgeGRMConfig,
    KnowledgeTrainConfig,
    Stage2Config,
    cam_seeds,
    class_knowledge,
    embedding_relation,
    format_rows,
    run_knowledge_grm,
    train_knowledge_classifier,
    train_stage2,
)


@pytest.fixture(scope="module")
def synthetic():
    from pyg_wsss.data import SyntheticWSSS

    ds = SyntheticWSSS(num_images=10, image_size=48, num_classes=3, seed=0)
    return ds, [ds[i] for i in range(len(ds))]


def test_class_knowledge_sources():
    tags = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0]], np.float32)
    feats, rel = class_knowledge("cooccurrence", tags=tags)
    assert feats.shape == (3, 3) and rel.shape == (3, 3)
    assert rel[0, 1] > 0 and rel[0, 2] == 0  # 0 and 1 co-occur, 0 and 2 never
    feats, rel = class_knowledge("none", num_classes=4)
    assert torch.equal(rel, torch.zeros(4, 4)) and torch.equal(feats, torch.eye(4))
    feats, rel = class_knowledge("wordnet", dataset="voc")
    assert feats.shape == (20, 50) and rel.shape == (20, 20)
    with pytest.raises(ValueError, match="tags"):
        class_knowledge("cooccurrence")
    with pytest.raises(ValueError, match="source"):
        class_knowledge("conceptnet")
    with pytest.raises(ValueError, match="expected"):
        class_knowledge("wordnet", num_classes=5)


def test_embedding_relation():
    emb = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    rel = embedding_relation(emb)
    assert torch.equal(rel.diagonal(), torch.zeros(3)) and rel[0, 2] == 0
    torch.testing.assert_close(rel[0, 1], torch.tensor(2**-0.5))
    with pytest.raises(ValueError, match="embeddings"):
        embedding_relation(torch.zeros(3))


def test_cam_seeds_shapes(synthetic):
    _, samples = synthetic
    cams = [
        torch.from_numpy((s["mask"][None] == np.arange(1, 4)[:, None, None]).astype(np.float32))
        for s in samples[:2]
    ]
    seeds = cam_seeds(cams, samples[:2], crf=None)
    for seed, s in zip(seeds, samples[:2]):
        assert seed.dtype == np.uint8 and seed.shape == s["mask"].shape
        keep = s["mask"] != 255
        assert (seed[keep] == s["mask"][keep]).mean() > 0.99


def test_demo_registered_and_voc_context_returns_empty():
    assert "Knowledge graph" in demos()
    img = np.zeros((20, 20, 3), np.uint8)
    ctx = DemoContext(
        name="voc-image",
        samples=[{"image": img, "tags": np.ones(20, np.float32)}],
        cams=[torch.zeros(20, 20, 20)],
        num_classes=21,
        class_names=["bg"] * 21,
    )
    assert demos()["Knowledge graph"](ctx) == {}


def test_demo_synthetic(one_thread, synthetic):
    ds, samples = synthetic
    ctx = DemoContext(
        name="synthetic",
        samples=samples[8:],
        cams=[],
        num_classes=ds.num_classes,
        class_names=ds.class_names,
        train_samples=samples[:8],
    )
    rows = demos()["Knowledge graph"](ctx)
    assert set(rows) == {"KG classifier CAM", "KG + GRM stage 2"}
    for labels in rows.values():
        assert len(labels) == 2
        for lab, s in zip(labels, ctx.samples):
            assert lab.dtype == np.uint8 and lab.shape == s["mask"].shape
            assert set(np.unique(lab)) <= set(range(ds.num_classes))


def test_run_knowledge_grm_smoke(one_thread, synthetic):
    ds, samples = synthetic
    tags = [s["tags"] for s in samples[:8]]
    rows = run_knowledge_grm(
        samples[:8],
        samples[8:],
        ds.num_classes,
        class_knowledge("cooccurrence", tags=tags, t=0.2),
        classifier_epochs=1,
        focal_weights=(1.0,),
        seg_kwargs={
            "iterations": 2,
            "batch_size": 2,
            "crop_size": 32,
            "rates": (1,),
            "aspp_channels": 16,
            "backbone_kwargs": {"widths": (8, 16)},
        },
        scores=("linear", "bilinear"),
        log=lambda *_: None,
    )
    assert [r["stage"] for r in rows] == ["1"] * 3 + ["2"] * 4
    assert all(0 <= r.get("miou", r.get("cam_miou")) <= 1 for r in rows)
    assert "GRM (bilinear)" in format_rows(rows)


def _weights(model):
    return [p.detach().clone() for p in model.parameters()]


def test_configs_passed_whole(one_thread, synthetic):
    """Issue 18: KnowledgeTrainConfig / Stage2Config / KnowledgeGRMConfig whole == the
    keyword form (same losses and weights); an old positional setting names the new form, an
    unknown keyword the fields."""
    from pyg_wsss.nn.models import KnowledgeClassifier, SmallCNN
    from pyg_wsss.segmentation.train import SegmentationTrainConfig

    ds, samples = synthetic
    feats, rel = class_knowledge("cooccurrence", tags=[s["tags"] for s in samples], t=0.2)
    cfg = KnowledgeTrainConfig(epochs=1, batch_size=4, lr=0.01, gcn_lr_mult=0.1, seed=2)
    runs = []
    for args, kw in (((cfg,), {}), ((), dict(epochs=1, batch_size=4, lr=0.01, gcn_lr_mult=0.1,
                                             seed=2)), ((cfg.replace(lr=1.0),), dict(lr=0.01))):
        torch.manual_seed(0)
        clf = KnowledgeClassifier(SmallCNN(widths=(8, 16)), feats, rel, hidden_channels=8,
                                  focal_weight=0.5)
        hist: list = []
        train_knowledge_classifier(clf, samples[:6], *args, history=hist, **kw)
        runs.append((hist, _weights(clf)))
    for hist, weights in runs[1:]:
        assert hist == runs[0][0] and len(hist) == 2
        assert all(torch.equal(a, b) for a, b in zip(weights, runs[0][1]))
    with pytest.raises(TypeError, match="KnowledgeTrainConfig"):
        train_knowledge_classifier(clf, samples[:6], 20)  # the old positional epochs
    with pytest.raises(TypeError, match=r"\['epoch'\].*KnowledgeTrainConfig fields"):
        train_knowledge_classifier(clf, samples[:6], epoch=1)

    seeds = [s["mask"].copy() for s in samples[:4]]
    common = dict(grm=True, score="linear", backbone_kwargs={"widths": (8, 16)},
                  aspp_channels=16, rates=(1,), crop_size=32)
    s2 = Stage2Config(**common, grm_kwargs={"mlp_channels": 8},
                      train=SegmentationTrainConfig(iterations=2, batch_size=2, lr=0.02, seed=1))
    nets = []
    for args, kw in (((s2,), {}), ((), dict(common, mlp_channels=8, iterations=2, batch_size=2,
                                            lr=0.02, seed=1))):
        hist = []
        seg = train_stage2(samples[:4], seeds, ds.num_classes, *args, node_features=feats,
                           relation=rel, history=hist, **kw)
        nets.append((hist, _weights(seg)))
    assert nets[0][0] == nets[1][0] and len(nets[0][0]) == 2
    assert all(torch.equal(a, b) for a, b in zip(nets[0][1], nets[1][1]))
    assert Stage2Config().train == SegmentationTrainConfig(iterations=1000, lr=0.01)
    with pytest.raises(TypeError, match="Stage2Config"):
        train_stage2(samples[:4], seeds, ds.num_classes, True)  # the old positional grm
    with pytest.raises(TypeError, match=r"\['iteration'\].*SegmentationTrainConfig fields"):
        train_stage2(samples[:4], seeds, ds.num_classes, iteration=2)

    knowledge = (feats, rel)
    with pytest.raises(TypeError, match="KnowledgeGRMConfig"):
        run_knowledge_grm(samples[:4], samples[4:], ds.num_classes, knowledge, "small_cnn")
    with pytest.raises(TypeError, match=r"\['stage_2'\].*KnowledgeGRMConfig fields"):
        run_knowledge_grm(samples[:4], samples[4:], ds.num_classes, knowledge, stage_2=False)
    rows = run_knowledge_grm(samples[:4], samples[4:], ds.num_classes, knowledge,
                             KnowledgeGRMConfig(classifier_epochs=1, focal_weights=(1.0,),
                                                stage2=False), log=lambda *_: None)
    assert [r["stage"] for r in rows] == ["1"] * 3


# ---------------------------------------------------------------- tests that can fail (issue 16)
@pytest.fixture(scope="module")
def hard_context():
    from pyg_wsss.demo import synthetic_context

    torch.set_num_threads(1)
    return synthetic_context(num_images=6, num_train=18, image_size=48, num_classes=5,
                             epochs=6, seed=0, progress=False, difficulty="hard")


def _cam_miou(ctx, relation):
    from pyg_wsss.metrics import mean_iou
    from pyg_wsss.pipelines.knowledge_grm import (
        cam_seeds,
        context_knowledge_classifier,
        knowledge_cams,
    )

    model, _, rel = context_knowledge_classifier(ctx, relation=relation)
    source = "gcn" if model.use_knowledge else "plain"  # the knowledge-GCN classifier's CAMs
    cams = knowledge_cams(model, ctx.samples, source=source, scales=(1.0,))
    labels = cam_seeds(cams, ctx.samples, 0.2, crf=None)
    return model, rel, 100 * mean_iou(labels, [s["mask"] for s in ctx.samples], ctx.num_classes)


def test_knowledge_branch_beats_the_plain_classifier_and_the_relation_acts(hard_context):
    # the hard set's classes are VOC names: the shipped WordNet relation links them
    ctx = hard_context
    wordnet, rel, m_wordnet = _cam_miou(ctx, "wordnet")
    c = ctx.num_classes - 1
    assert rel.shape == (c, c) and (rel - torch.diag(rel.diag())).abs().sum() > 0
    empty, _, m_empty = _cam_miou(ctx, "empty")
    _, _, m_plain = _cam_miou(ctx, "plain")
    # measured: WordNet 16.7, empty relation 16.7, no knowledge branch 11.9 (K Table 2's
    # second ordering holds on this tiny case; WordNet vs empty is a tie; on the full hard
    # contexts the GCN classifier's CAMs fall below the plain ones, see README)
    assert m_wordnet > m_plain + 2 and m_empty > m_plain + 2
    # the relation changes the GCN-made classifier weights
    with torch.no_grad():
        assert not torch.allclose(wordnet.knowledge_weights(), empty.knowledge_weights())


def test_grm_head_changes_the_stage2_result(hard_context):
    # Stage 2 with and without the GRM head, same labels, same data, same seed: the class
    # graph must change the network's output. Measured on tiny easy contexts (README, demo
    # section): the GRM head neither helps nor hurts there (17.4 vs 17.6, 11.5 vs 11.2 mIoU
    # after 400 iterations), and on this hard one a short schedule fits only the background.
    from pyg_wsss.pipelines.knowledge_grm import context_knowledge, train_stage2

    ctx = hard_context
    feats, rel, _ = context_knowledge(ctx, "wordnet")
    train = list(ctx.train_samples) + list(ctx.samples)
    seeds = [s["mask"].copy() for s in train]  # clean labels: a fit must follow them
    logits = {}
    x = torch.from_numpy(ctx.samples[0]["image"]).permute(2, 0, 1).float()[None] / 255
    for grm in (True, False):
        seg = train_stage2(train, seeds, ctx.num_classes, grm=grm, node_features=feats,
                           relation=rel, backbone_kwargs={"widths": (8, 16, 32, 32)},
                           aspp_channels=16, rates=(1, 2), iterations=30, batch_size=8,
                           lr=0.02, head_lr_mult=1.0, crop_size=48, seed=0)
        assert (type(seg.head).__name__ == "GRMHead") == grm
        with torch.no_grad():
            logits[grm] = seg.eval()(x)
            if grm:  # the trained network uses the relation: without its edges it differs
                assert rel is not None and (rel - torch.diag(torch.diag(rel))).abs().sum() > 0
                seg.head.edge_weight.zero_()
                no_relation = seg(x)
    assert not torch.allclose(logits[True], logits[False], atol=1e-3)
    assert torch.isfinite(no_relation).all()
    assert not torch.allclose(no_relation, logits[True], atol=1e-4)
