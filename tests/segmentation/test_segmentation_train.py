import numpy as np
import pytest
import torch

from pyg_wsss.nn.models import SmallCNN
from pyg_wsss.segmentation import (
    PseudoLabelDataset,
    build_deeplab,
    poly_lr,
    predict_segmentation,
    segmentation_loss,
    train_segmentation,
)


def _model(grm=False):
    torch.manual_seed(0)
    return build_deeplab(
        3, SmallCNN(widths=(16, 32), output_stride=4), grm=grm, rates=(1, 2), aspp_channels=32
    )


def test_overfits_four_images(one_thread, toy_samples):
    ds = PseudoLabelDataset(toy_samples, [s["mask"] for s in toy_samples], flip=True)
    history = []
    model = train_segmentation(
        _model(), ds, iterations=300, batch_size=4, lr=0.1, head_lr_mult=1.0, history=history
    )
    acc = np.mean(
        [(predict_segmentation(model, s["image"]) == s["mask"]).mean() for s in toy_samples]
    )
    assert acc > 0.95, acc
    assert history[-1] < history[0] * 0.2


def test_grm_network_trains(one_thread, toy_samples):
    ds = PseudoLabelDataset(toy_samples, [s["mask"] for s in toy_samples], crop_size=24)
    history = []
    train_segmentation(
        _model(grm=True),
        ds,
        iterations=30,
        batch_size=2,
        lr=0.05,
        head_lr_mult=1.0,
        history=history,
    )
    assert np.mean(history[-5:]) < np.mean(history[:5])


def test_checkpoint_resume_continues_exactly(one_thread, tmp_path, toy_samples):
    ds = PseudoLabelDataset(toy_samples, [s["mask"] for s in toy_samples], crop_size=24, flip=True)
    kw = dict(batch_size=2, lr=0.05, head_lr_mult=1.0, seed=3)
    full = train_segmentation(_model(grm=True), ds, iterations=6, **kw)
    ckpt = tmp_path / "ck.pt"
    part = train_segmentation(
        _model(grm=True), ds, iterations=6, checkpoint=ckpt, checkpoint_every=3, **kw
    )
    state = torch.load(ckpt, weights_only=False)
    assert state["iteration"] == 6 and {"model", "optimizer", "iteration"} <= set(state)
    # interrupted run: stop after 3 iterations (checkpoint), then restart and continue
    ckpt2 = tmp_path / "ck2.pt"

    class Stop(Exception):
        pass

    calls = []

    def hook(*_):
        calls.append(1)
        if len(calls) > 3:
            raise Stop

    model = _model(grm=True)
    handle = model.register_forward_pre_hook(hook)
    with pytest.raises(Stop):
        train_segmentation(model, ds, iterations=6, checkpoint=ckpt2, checkpoint_every=3, **kw)
    handle.remove()
    assert torch.load(ckpt2, weights_only=False)["iteration"] == 3
    resumed = train_segmentation(
        _model(grm=True), ds, iterations=6, checkpoint=ckpt2, checkpoint_every=3, **kw
    )
    for (n, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=n)
    for a, b in zip(full.state_dict().values(), part.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_poly_lr_and_loss():
    assert poly_lr(1.0, 0, 10) == 1.0 and poly_lr(1.0, 10, 10) == 0.0
    assert poly_lr(2.0, 5, 10, power=1.0) == pytest.approx(1.0)
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = segmentation_loss(logits, torch.full((1, 2, 2), 255))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    labels = torch.tensor([[[0, 1], [255, 2]]])
    ref = torch.nn.functional.cross_entropy(logits, labels, ignore_index=255)
    torch.testing.assert_close(segmentation_loss(logits, labels), ref)


def test_bad_input(toy_samples):
    ds = PseudoLabelDataset(toy_samples, [s["mask"] for s in toy_samples])
    with pytest.raises(TypeError, match="dataset"):
        train_segmentation(_model(), [1, 2])
    with pytest.raises(ValueError, match="iterations"):
        train_segmentation(_model(), ds, iterations=0)
    with pytest.raises(TypeError, match="model"):
        train_segmentation("model", ds)
    mixed = PseudoLabelDataset(
        [toy_samples[0], {"image": np.zeros((20, 20, 3), np.uint8), "name": "x"}],
        [toy_samples[0]["mask"], np.zeros((20, 20), np.uint8)],
    )
    with pytest.raises(ValueError, match="crop_size"):
        train_segmentation(_model(), mixed, iterations=1, batch_size=2)


def test_config_passed_whole_equals_the_keyword_form(one_thread, toy_samples):
    """Issue 18: one SegmentationTrainConfig for both trainers; keywords still accepted."""
    from pyg_wsss.segmentation.distributed import train_segmentation_distributed
    from pyg_wsss.segmentation.train import SegmentationTrainConfig

    ds = PseudoLabelDataset(toy_samples, [s["mask"] for s in toy_samples], crop_size=24)
    cfg = SegmentationTrainConfig(iterations=3, batch_size=2, lr=0.05, head_lr_mult=1.0, seed=1)
    h1, h2, h3 = [], [], []
    a = train_segmentation(_model(), ds, cfg, history=h1)
    b = train_segmentation(_model(), ds, iterations=3, batch_size=2, lr=0.05, head_lr_mult=1.0,
                           seed=1, history=h2)
    c = train_segmentation(_model(), ds, cfg.replace(iterations=1), iterations=3, history=h3)
    assert h1 == h2 == h3 and len(h1) == 3
    for x, y, z in zip(a.state_dict().values(), b.state_dict().values(),
                       c.state_dict().values()):
        torch.testing.assert_close(x, y)
        torch.testing.assert_close(x, z)
    hd = []
    train_segmentation_distributed(_model(), ds, cfg.replace(iterations=1), history=hd)
    assert len(hd) == 1
    with pytest.raises(TypeError, match="SegmentationTrainConfig"):
        train_segmentation(_model(), ds, 3)  # the former positional iterations
    with pytest.raises(TypeError, match="iteration"):
        train_segmentation(_model(), ds, iteration=3)
    with pytest.raises(ValueError, match="sync_batchnorm"):
        train_segmentation(_model(), ds, cfg, sync_batchnorm=True)
    with pytest.raises(ValueError, match="iterations"):
        train_segmentation_distributed(_model(), ds, cfg, iterations=0)
