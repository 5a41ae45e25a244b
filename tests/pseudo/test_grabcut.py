import numpy as np
import pytest

from pyg_wsss.pseudo.grabcut import (
    a2gnn_box_seeds,
    box_seed_labels,
    check_boxes,
    fuse_box_seeds,
    grabcut_box_masks,
    grabcut_seeds,
)

pytest.importorskip("cv2")

BOXES = np.array([[6, 6, 21, 19], [26, 20, 42, 36]])  # square (class 1), disc (class 3)
LABELS = np.array([1, 3])


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def test_grabcut_masks_find_the_objects(scene):
    image, mask, _, _ = scene()
    boxes = BOXES.copy()
    boxes[:, :2] -= 2
    boxes[:, 2:] += 2  # loose boxes
    masks = grabcut_box_masks(image, boxes)
    assert masks.shape == (2,) + mask.shape and masks.dtype == bool
    assert _iou(masks[0], mask == 1) > 0.85
    assert _iou(masks[1], mask == 3) > 0.85
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        outside = np.ones(mask.shape, bool)
        outside[y1 : y2 + 1, x1 : x2 + 1] = False
        assert not masks[k][outside].any()
    # deterministic
    np.testing.assert_array_equal(masks, grabcut_box_masks(image, boxes))
    # local crop variant
    local = grabcut_box_masks(image, boxes, margin=6)
    assert _iou(local[1], mask == 3) > 0.8


def test_grabcut_seeds_eq_2_3(scene):
    image, mask, _, _ = scene()
    seeds = grabcut_seeds(image, BOXES + np.array([-2, -2, 2, 2]), LABELS)
    assert seeds.dtype == np.uint8 and seeds.shape == mask.shape
    inside = np.zeros(mask.shape, bool)
    for x1, y1, x2, y2 in BOXES + np.array([-2, -2, 2, 2]):
        inside[y1 : y2 + 1, x1 : x2 + 1] = True
    assert np.all(seeds[~inside] == 0)  # Eq. 3: outside the boxes = background
    assert set(np.unique(seeds[inside])) <= {1, 3, 255}  # Eq. 2: never c0 inside
    lab = seeds != 255
    assert (seeds[lab] == mask[lab]).mean() > 0.97


def test_small_and_whole_image_boxes(scene):
    image, mask, _, _ = scene()
    small = grabcut_box_masks(image, [[3, 3, 5, 6]], min_size=8)
    assert small[0, 3:7, 3:6].all() and small[0].sum() == 12
    whole = grabcut_box_masks(image, [[0, 0, image.shape[1] - 1, image.shape[0] - 1]])
    assert whole.shape == (1,) + mask.shape  # no crash without background samples
    one_px = grabcut_seeds(image, [[10, 10, 10, 10]], [2])
    assert one_px[10, 10] == 2 and (one_px != 2).sum() == one_px.size - 1


def test_no_boxes_is_all_background(scene):
    image, mask, _, _ = scene()
    seeds = grabcut_seeds(image, np.zeros((0, 4), np.int64), np.zeros(0, np.int64))
    assert np.all(seeds == 0)
    assert grabcut_box_masks(image, np.zeros((0, 4))).shape == (0,) + mask.shape


def test_box_seed_labels_overlap_smaller_wins():
    h, w = 6, 8
    boxes = np.array([[0, 0, 7, 5], [2, 1, 4, 3]])  # big, small inside
    labels = np.array([5, 2])
    masks = np.zeros((2, h, w), bool)
    masks[0, 0:5, 1:7] = True  # big object's foreground
    masks[1, 1:3, 2:4] = True  # small object's foreground
    out = box_seed_labels(boxes, labels, masks)
    expected = np.full((h, w), 255, np.uint8)
    expected[0:5, 1:7] = 5
    expected[1:3, 2:4] = 2  # the smaller box wins where both say foreground
    np.testing.assert_array_equal(out, expected)
    # a pixel of the small box that it calls background stays with the big box (here 5)
    assert out[3, 4] == 5
    # masks are clipped to their box
    m2 = np.ones((1, h, w), bool)
    out2 = box_seed_labels([[1, 1, 2, 2]], [3], m2)
    assert (out2 == 3).sum() == 4 and (out2 == 0).sum() == h * w - 4


def test_fuse_box_seeds_eq_4_5_by_hand():
    # 1 x 10 strip; box A = cols 0..4 (class 1), box B = cols 5..7 (class 2); cols 8, 9 outside
    boxes = np.array([[0, 0, 4, 0], [5, 0, 7, 0]])
    labels = np.array([1, 2])
    masks = np.zeros((2, 1, 10), bool)
    masks[0, 0, [0, 1, 2]] = True  # GrabCut fg in A
    masks[1, 0, [5, 6]] = True  # GrabCut fg in B
    # M_I predicts class 1 in box A (cols 1, 2, 3), nothing of class 2 in box B
    mi = np.array([[0, 1, 1, 1, 255, 0, 3, 0, 1, 0]], np.uint8)
    mf = fuse_box_seeds(mi, boxes, labels, masks)
    # col 0: M_B = 1, M_I = 0, class 1 predicted in A -> 255
    # col 1, 2: M_B = M_I = 1 -> 1; col 3: M_B = 255 != M_I -> 255; col 4: 255
    # box B: class 2 not predicted by M_I -> M_B,k: cols 5, 6 -> 2, col 7 -> 255
    # cols 8, 9: outside -> M_B = 0 (even where M_I says 1)
    np.testing.assert_array_equal(mf, [[255, 1, 1, 255, 255, 2, 2, 255, 0, 0]])
    # Eq. 5: keep where M_F = M_B or M_F = M'_I
    confident = np.array([[255] * 10], np.uint8)
    mg = fuse_box_seeds(mi, boxes, labels, masks, confident=confident)
    np.testing.assert_array_equal(mg, [[255, 1, 1, 255, 255, 2, 2, 255, 0, 0]])
    # here every labelled M_F pixel equals M_B; make M_F differ from M_B via agreement on bg:
    mi2 = mi.copy()
    mi2[0, 3] = 255
    masks2 = masks.copy()
    masks2[0, 0, 3] = False
    mf2 = fuse_box_seeds(mi2, boxes, labels, masks2)
    assert mf2[0, 3] == 255  # 255 == 255 stays unknown


def test_fuse_eq5_drops_unconfident_cam_labels():
    # M_F takes M_I where M_B == M_I; Eq. 5 keeps it since M_F == M_B. A pixel whose M_F
    # came from M_I but differs from M_B cannot exist by Eq. 4, so Eq. 5 only removes labels
    # when M_F != M_B: check with an overlapping pair where the fused label is from box B_k.
    boxes = np.array([[0, 0, 5, 0], [2, 0, 3, 0]])
    labels = np.array([1, 2])
    masks = np.zeros((2, 1, 6), bool)
    masks[0, 0, :] = True
    masks[1, 0, 2] = True
    mi = np.array([[1, 1, 0, 0, 1, 1]], np.uint8)  # class 2 never predicted
    mf = fuse_box_seeds(mi, boxes, labels, masks)
    # M_B = [1, 1, 2, 1, 1, 1]; col 2: agree? no (0 vs 2) -> box B (class 2 unseen) -> 2
    # col 3: M_B = 1 (big box fg) vs M_I 0; box B unseen but B's fg not at col 3; box A's
    # class is seen -> 255
    np.testing.assert_array_equal(mf, [[1, 1, 2, 255, 1, 1]])
    mg = fuse_box_seeds(mi, boxes, labels, masks, confident=np.full((1, 6), 255, np.uint8))
    np.testing.assert_array_equal(mg, mf)  # all labelled M_F equal M_B here


def test_a2gnn_box_seeds_end_to_end(scene):
    pytest.importorskip("pydensecrf.densecrf")
    image, mask, tags, cams = scene()
    out = a2gnn_box_seeds(image, cams, tags, BOXES + np.array([-2, -2, 2, 2]), LABELS)
    assert out.dtype == np.uint8 and out.shape == mask.shape
    lab = out != 255
    assert lab.mean() > 0.3
    assert (out[lab] == mask[lab]).mean() > 0.97


def test_bad_boxes(scene):
    shape = (10, 12)
    with pytest.raises(ValueError, match="outside"):
        check_boxes([[0, 0, 12, 5]], shape)
    with pytest.raises(ValueError, match="outside"):
        check_boxes([[-1, 0, 3, 5]], shape)
    b, _ = check_boxes([[-3, 2, 20, 30]], shape, clip=True)
    np.testing.assert_array_equal(b, [[0, 2, 11, 9]])
    with pytest.raises(ValueError, match="empty"):
        check_boxes([[5, 0, 4, 3]], shape)
    with pytest.raises(ValueError, match="empty"):
        check_boxes([[20, 0, 25, 3]], shape, clip=True)  # nothing left after clipping
    with pytest.raises(ValueError, match=r"\[M, 4\]"):
        check_boxes([[1, 2, 3]], shape)
    with pytest.raises(TypeError, match="integer"):
        check_boxes([[0.5, 0, 3, 3]], shape)
    with pytest.raises(ValueError, match="entries"):
        check_boxes([[0, 0, 3, 3]], shape, box_labels=[1, 2])
    with pytest.raises(ValueError, match="1..254"):
        check_boxes([[0, 0, 3, 3]], shape, box_labels=[0])
    image, _, _, _ = scene()
    with pytest.raises(ValueError, match="n_iter"):
        grabcut_box_masks(image, BOXES, n_iter=0)
    with pytest.raises(TypeError, match="uint8"):
        grabcut_box_masks(image.astype(np.float32), BOXES)
    with pytest.raises(ValueError, match="masks"):
        box_seed_labels(BOXES, LABELS, np.zeros((1,) + image.shape[:2], bool))
    with pytest.raises(ValueError, match="confident"):
        fuse_box_seeds(np.zeros(image.shape[:2], np.uint8), BOXES, LABELS,
                       np.zeros((2,) + image.shape[:2], bool), confident=np.zeros((2, 2), np.uint8))
    with pytest.raises(TypeError, match="integer"):
        fuse_box_seeds(np.zeros(image.shape[:2]), BOXES, LABELS,
                       np.zeros((2,) + image.shape[:2], bool))
