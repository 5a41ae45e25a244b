import numpy as np
import pytest
import torch

from pyg_wsss.nn.models import SmallCNN
from pyg_wsss.segmentation import (
    build_deeplab,
    evaluate_segmentation,
    predict_probabilities,
    predict_segmentation,
)


class Oracle(torch.nn.Module):
    """Logits from the red/blue colour of the toy images (a perfect 'network')."""

    def forward(self, x):
        red = (x[:, 0] > 0.6) & (x[:, 2] < 0.4)
        blue = (x[:, 2] > 0.6) & (x[:, 0] < 0.4)
        bg = ~(red | blue)
        return torch.stack([bg, red, blue], 1).float() * 10


def _local_confusion(preds, masks, k):
    cm = np.zeros((k, k), np.int64)
    for p, m in zip(preds, masks):
        keep = m != 255
        np.add.at(cm, (m[keep].astype(int), p[keep].astype(int)), 1)
    return cm


def test_evaluate_matches_local_confusion(toy_samples):
    torch.manual_seed(0)
    model = build_deeplab(3, SmallCNN(widths=(8,), output_stride=2), aspp_channels=8, rates=(1,))
    toy_samples[0]["mask"][:2] = 255
    out = evaluate_segmentation(
        model, toy_samples, 3, class_names=["bg", "red", "blue"], return_predictions=True
    )
    cm = _local_confusion(out["predictions"], [s["mask"] for s in toy_samples], 3)
    np.testing.assert_array_equal(out["confusion"], cm)
    iou = np.diag(cm) / (cm.sum(0) + cm.sum(1) - np.diag(cm))
    assert out["miou"] == pytest.approx(np.nanmean(iou))
    assert out["pixel_accuracy"] == pytest.approx(np.diag(cm).sum() / cm.sum())
    assert "red" in out["table"]


def test_oracle_and_crf(toy_samples):
    out = evaluate_segmentation(Oracle(), toy_samples, 3)
    assert out["miou"] > 0.95
    probs = predict_probabilities(Oracle(), toy_samples[0]["image"], scales=(1.0, 0.5), flip=True)
    assert probs.shape == (3, 32, 32)
    torch.testing.assert_close(probs.sum(0), torch.ones(32, 32))
    pytest.importorskip("pydensecrf")
    lab = predict_segmentation(Oracle(), toy_samples[0]["image"], crf="deeplab")
    assert lab.dtype == np.uint8 and (lab == toy_samples[0]["mask"]).mean() > 0.95
    out = evaluate_segmentation(Oracle(), toy_samples, 3, crf="deeplab")
    assert out["miou"] > 0.9


def test_bad_input(toy_samples):
    with pytest.raises(ValueError, match="empty"):
        evaluate_segmentation(Oracle(), [], 3)
    with pytest.raises(ValueError, match="mask"):
        evaluate_segmentation(Oracle(), [{"image": toy_samples[0]["image"]}], 3)
    with pytest.raises(ValueError, match="class_names"):
        evaluate_segmentation(Oracle(), toy_samples, 3, class_names=["a"])
    with pytest.raises(ValueError, match="scales"):
        predict_probabilities(Oracle(), toy_samples[0]["image"], scales=())
    with pytest.raises(ValueError, match="image"):
        predict_segmentation(Oracle(), np.zeros((4, 4), np.uint8))
