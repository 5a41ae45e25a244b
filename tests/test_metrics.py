import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pyg_wsss.metrics import ConfusionMatrix, confusion_matrix, mean_iou

TARGET = np.array([[0, 0, 1], [1, 2, 255]], np.uint8)
PRED = np.array([[0, 1, 1], [1, 255, 0]], np.uint8)


def test_hand_computed_miss():
    cm = ConfusionMatrix(3).update(PRED, TARGET)
    np.testing.assert_array_equal(cm.matrix, [[1, 1, 0], [0, 2, 0], [0, 0, 0]])
    np.testing.assert_array_equal(cm.unlabelled, [0, 0, 1])
    np.testing.assert_allclose(cm.iou(), [1 / 2, 2 / 3, 0.0])
    assert cm.miou() == pytest.approx((1 / 2 + 2 / 3) / 3)
    assert cm.miou("all") == pytest.approx((1 / 2 + 2 / 3) / 3)
    assert cm.pixel_accuracy() == pytest.approx(3 / 5)
    np.testing.assert_allclose(cm.precision(), [1.0, 2 / 3, np.nan])
    np.testing.assert_allclose(cm.recall(), [1 / 2, 1.0, 0.0])
    assert cm.mean_accuracy() == pytest.approx(0.5)
    assert cm.coverage() == pytest.approx(4 / 5)
    assert cm.total == 5


def test_hand_computed_skip():
    cm = ConfusionMatrix(3, unlabelled="skip").update(PRED, TARGET)
    np.testing.assert_allclose(cm.iou(), [1 / 2, 2 / 3, np.nan])
    assert cm.miou() == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert cm.miou("all") == pytest.approx((1 / 2 + 2 / 3) / 3)
    assert cm.pixel_accuracy() == pytest.approx(3 / 4)
    np.testing.assert_allclose(cm.recall(), [1 / 2, 1.0, np.nan])


def test_against_brute_force():
    rng = np.random.default_rng(0)
    k = 5
    preds = [rng.integers(0, k, (7, 9)) for _ in range(3)]
    targets = [rng.integers(0, k, (7, 9)) for _ in range(3)]
    targets[0][0, :] = 255
    ref = np.zeros((k, k), np.int64)
    for p, t in zip(preds, targets):
        for a, b in zip(t.ravel(), p.ravel()):
            if a != 255:
                ref[a, b] += 1
    cm = ConfusionMatrix.from_predictions(preds, targets, k)
    np.testing.assert_array_equal(cm.matrix, ref)
    iou = [ref[c, c] / (ref[c].sum() + ref[:, c].sum() - ref[c, c]) for c in range(k)]
    np.testing.assert_allclose(cm.iou(), iou)
    assert mean_iou(preds, targets, k) == pytest.approx(np.mean(iou))
    # per-pair function, torch inputs, batched input
    total = sum(confusion_matrix(p, t, k) for p, t in zip(preds, targets))
    np.testing.assert_array_equal(total, ref)
    tp = [torch.from_numpy(p) for p in preds]
    tt = [torch.from_numpy(t) for t in targets]
    np.testing.assert_array_equal(ConfusionMatrix(k).update_many(tp, tt).matrix, ref)
    batched = ConfusionMatrix(k).update(np.stack(preds), np.stack(targets))
    np.testing.assert_array_equal(batched.matrix, ref)


def test_merge_reset_and_perfect():
    a = ConfusionMatrix(3).update(PRED, TARGET)
    b = ConfusionMatrix(3).update(TARGET, TARGET)
    assert b.miou() == 1.0 and b.pixel_accuracy() == 1.0
    both = ConfusionMatrix(3).update(PRED, TARGET).update(TARGET, TARGET)
    a.merge(b)
    np.testing.assert_array_equal(a.matrix, both.matrix)
    np.testing.assert_array_equal(a.unlabelled, both.unlabelled)
    a.reset()
    assert a.total == 0 and np.isnan(a.pixel_accuracy()) and np.isnan(a.coverage())
    # mIoU of nothing is undefined: an error naming the cause, never NaN (issue 17)
    for average in ("present", "all"):
        with pytest.raises(ValueError, match="target"):
            a.miou(average)
    assert np.isnan(a.summary()["miou"]) and "| mean | - |" in a.table()
    with pytest.raises(ValueError):
        a.merge(ConfusionMatrix(4))
    with pytest.raises(TypeError):
        a.merge(np.zeros((3, 3)))


def test_only_present_classes_count():
    # class 2 absent from target and prediction: excluded from "present", 0 in "all"
    t = np.array([[0, 1]])
    cm = ConfusionMatrix(3).update(t, t)
    assert cm.miou() == 1.0 and cm.miou("all") == pytest.approx(2 / 3)
    assert np.isnan(cm.iou()[2])


def test_table():
    cm = ConfusionMatrix(3, class_names=["bg", "a", "b"]).update(PRED, TARGET)
    md = cm.table()
    assert md.splitlines()[0] == "| class | IoU | precision | recall |"
    assert "| a | 66.7 | 66.7 | 100.0 |" in md
    assert "| mean | 38.9 |" in md
    txt = cm.table(["x", "y", "z"], fmt="text", digits=2)
    assert "x" in txt and "66.67" in txt and "|" not in txt
    assert "-" in ConfusionMatrix(3).update(TARGET, TARGET).table()  # absent class shows '-'
    with pytest.raises(ValueError):
        cm.table(["a"])
    with pytest.raises(ValueError):
        cm.table(fmt="html")
    s = cm.summary()
    assert s["miou"] == pytest.approx(cm.miou()) and len(s["iou"]) == 3
    assert "num_classes=3" in repr(cm)


def test_bad_input():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="same shape"):
        cm.update(PRED, TARGET[:, :2])
    with pytest.raises(ValueError, match="outside"):
        cm.update(np.array([[3]]), np.array([[0]]))
    with pytest.raises(ValueError, match="outside"):
        cm.update(np.array([[0]]), np.array([[7]]))
    with pytest.raises(ValueError, match="outside"):
        cm.update(np.array([[-1]]), np.array([[0]]))
    with pytest.raises(TypeError):
        cm.update(PRED.astype(np.float32), TARGET)
    with pytest.raises(TypeError):
        cm.update(PRED.tolist(), TARGET)
    with pytest.raises(ValueError):
        cm.miou("weighted")
    with pytest.raises(ValueError):
        ConfusionMatrix(0)
    with pytest.raises(ValueError):
        ConfusionMatrix(3, ignore_index=1)
    with pytest.raises(ValueError):
        ConfusionMatrix(3, unlabelled="drop")
    with pytest.raises(ValueError):
        ConfusionMatrix(3, class_names=["a"])
    with pytest.raises(ValueError):
        ConfusionMatrix(3).update_many([PRED], [])
    with pytest.raises(ValueError, match="empty"):
        mean_iou([], [], 3)
    with pytest.raises(TypeError):
        mean_iou(PRED, [TARGET], 3)
    with pytest.raises(ValueError):
        confusion_matrix(PRED, TARGET, 0)
    # no ignore index: 255 is out of range
    with pytest.raises(ValueError, match="outside"):
        ConfusionMatrix(3, ignore_index=None).update(PRED, TARGET)
    # empty inputs are fine
    assert ConfusionMatrix(3).update(np.zeros((0,), np.int64), np.zeros((0,), np.int64)).total == 0


def test_mean_iou_single_pair_and_torch_device(device):
    p = torch.from_numpy(PRED.astype(np.int64)).to(device)
    t = torch.from_numpy(TARGET.astype(np.int64)).to(device)
    assert mean_iou(p, t, 3) == pytest.approx((1 / 2 + 2 / 3) / 3)
    assert mean_iou(p, t, 3, unlabelled="skip") == pytest.approx((1 / 2 + 2 / 3) / 2)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(2, 6),
    st.integers(1, 40),
    st.integers(0, 2**31 - 1),
    st.integers(0, 40),
)
def test_properties(k, n, seed, split):
    rng = np.random.default_rng(seed)
    values = np.r_[np.arange(k), 255]
    pred = rng.choice(values, n)
    target = rng.choice(values, n)
    whole = ConfusionMatrix(k).update(pred, target)
    split = min(split, n)
    parts = ConfusionMatrix(k).update(pred[:split], target[:split])
    parts.merge(ConfusionMatrix(k).update(pred[split:], target[split:]))
    np.testing.assert_array_equal(whole.matrix, parts.matrix)
    np.testing.assert_array_equal(whole.unlabelled, parts.unlabelled)
    iou = whole.iou()
    assert np.all((iou[np.isfinite(iou)] >= 0) & (iou[np.isfinite(iou)] <= 1))
    assert whole.total == int((target != 255).sum())
    # IoU <= min(precision, recall) where defined
    prec, rec = whole.precision(), whole.recall()
    ok = np.isfinite(prec) & np.isfinite(rec)
    assert np.all(iou[ok] <= np.minimum(prec[ok], rec[ok]) + 1e-12)
    # perfect prediction on valid pixels
    same = ConfusionMatrix(k).update(np.where(target == 255, 0, target), target)
    if same.total:
        assert same.miou() == 1.0 and same.pixel_accuracy() == 1.0
