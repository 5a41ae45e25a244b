"""The method registry of the ``pyg-wsss`` command (:mod:`pyg_wsss.pipelines.methods`) on a
fake dataset with the reader protocol (``num_classes``, ``class_names``, ``names``, ...)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pyg_wsss.data import SyntheticWSSS
from pyg_wsss.pipelines import methods as M
from pyg_wsss.pipelines.a2gnn import filled_boxes


class FakeDataset:
    """SyntheticWSSS behind the reader protocol; ``drop`` removes keys from every sample."""

    def __init__(self, n: int = 8, drop: tuple[str, ...] = (), class_names=None) -> None:
        self.data = SyntheticWSSS(num_images=n, image_size=32, num_classes=3, seed=0)
        self.num_classes = self.data.num_classes
        self.class_names = list(class_names or self.data.class_names)
        self.category_ids = [0, 5, 9, 11]
        self.names = [f"im{i}" for i in range(n)]
        self.drop = drop
        self.calls = 0

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict:
        self.calls += 1
        s = {k: v for k, v in self.data[i].items() if k not in self.drop}
        s["name"] = self.names[i]
        return s

    def to_category_ids(self, labels):
        table = np.full(256, 255, dtype=np.uint8)
        table[: len(self.category_ids)] = self.category_ids
        return table[np.asarray(labels)]


def test_registry_and_impossible_combinations():
    assert list(M.METHODS) == ["a2gnn", "wsgcn", "group", "knowledge", "random-walk",
                               "grabcut", "filled"]
    assert M.METHODS["a2gnn"] == ("box", "tag", "scribble", "point")
    with pytest.raises(M.MethodError, match="does not work with tag supervision"):
        M.check_combination("filled", "tag")
    with pytest.raises(M.MethodError, match="methods for scribble: a2gnn"):
        M.check_combination("wsgcn", "scribble")
    with pytest.raises(M.MethodError, match="unknown method"):
        M.check_combination("nope", "box")
    M.check_combination("grabcut", "box")


def test_config_keys_are_checked():
    ds = FakeDataset(2)
    with pytest.raises(M.MethodError, match="unknown config key 'stepz'"):
        M.get_method("wsgcn", "tag", ds, {"stepz": 3})
    with pytest.raises(M.MethodError, match="'crf' must be true or false"):
        M.get_method("wsgcn", "tag", ds, {"crf": 1})
    with pytest.raises(M.MethodError, match="'classifier_epochs' must be a number"):
        M.get_method("wsgcn", "tag", ds, {"classifier_epochs": "3"})
    m = M.get_method("wsgcn", "tag", ds, {"steps": 7, "classifier_epochs": 2.0})
    assert m.extra == {"steps": 7} and m.settings["classifier_epochs"] == 2
    assert m.describe()["settings"]["steps"] == 7
    a = M.get_method("a2gnn", "tag", ds, {"stage1_epochs": 3})
    assert a.config.stage1_epochs == 3
    with pytest.raises(M.MethodError, match="'min_side' is a box-pipeline setting"):
        M.get_method("a2gnn", "tag", ds, {"min_side": 3})
    with pytest.raises(M.MethodError, match="cam_source 'none'"):
        M.get_method("a2gnn", "tag", ds, {"cam_source": "none"})


def test_a_method_never_sees_the_mask_and_tags_come_from_the_annotation():
    ds = FakeDataset(2)
    s = ds[0]
    seen = M.restrict_sample(s, "box", ds.num_classes)
    assert "mask" not in seen and "scribbles" not in seen
    expect = np.zeros(3, np.float32)
    expect[np.asarray(s["box_labels"]) - 1] = 1
    np.testing.assert_array_equal(seen["tags"], expect)
    seen = M.restrict_sample(s, "scribble", ds.num_classes)
    ids = [c for c in np.unique(s["scribbles"]) if 1 <= c <= 3]
    assert seen["tags"].nonzero()[0].tolist() == [c - 1 for c in ids]
    with pytest.raises(ValueError, match="needs"):
        M.restrict_sample({"image": s["image"]}, "point", ds.num_classes)


def test_filled_method_is_the_library_baseline():
    ds = FakeDataset(3)
    m = M.get_method("filled", "box", ds, None, "cpu")
    assert not m.needs_fit
    out = m([ds[0], ds[1]])
    for lab, s in zip(out, [ds[0], ds[1]]):
        assert lab.dtype == np.uint8
        np.testing.assert_array_equal(lab, filled_boxes(s["image"].shape[:2], s["boxes"],
                                                        s["box_labels"]))


def test_check_dataset_needs_the_supervision_keys():
    ds = FakeDataset(2, drop=("boxes", "box_labels"))
    with pytest.raises(M.MethodError, match="box supervision needs boxes and box_labels"):
        M.check_dataset(ds, "box")
    M.check_dataset(ds, "tag")


def test_voc_names_and_cam_source_choice():
    assert M.voc_class_index(["background", "airplane", "motorcycle", "TV"]) == [0, 13, 19]
    assert M.voc_class_index(["background", "cat", "giraffe"]) is None
    src = M.CamSource(["background", "cat", "giraffe"])
    assert src.source == "classifier" and src.needs_fit
    # person has no ImageNet class: auto trains a classifier
    assert M.CamSource(["background", "person", "dog"]).source == "classifier"
    with pytest.raises(M.MethodError, match="VOC class names"):
        M.CamSource(["background", "giraffe"], source="imagenet")


def test_resolve_device():
    assert M.resolve_device("cpu") == torch.device("cpu")
    auto = M.resolve_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(M.MethodError, match="CUDA is not available"):
            M.resolve_device("cuda")


TINY = {
    "wsgcn": {"cam_source": "classifier", "cam_backbone": "small_cnn", "classifier_epochs": 1,
              "image_size": 32, "steps": 5, "crf": False},
    "group": {"backbone": "small_cnn", "epochs": 1, "image_size": 32, "hidden_channels": 16,
              "crf": False},
    "knowledge": {"backbone": "small_cnn", "epochs": 1, "image_size": 32,
                  "hidden_channels": 16, "crf": False},
    "a2gnn": {"cam_source": "classifier", "cam_backbone": "small_cnn", "classifier_epochs": 1,
              "image_size": 32, "stage1_epochs": 2, "stage2_epochs": 2, "hidden_channels": 8},
}


@pytest.mark.parametrize("name", list(TINY))
def test_tag_methods_fit_on_the_dataset_then_label(name, one_thread):
    ds = FakeDataset(8)
    m = M.get_method(name, "tag", ds, TINY[name], "cpu")
    assert m.needs_fit
    with pytest.raises(RuntimeError, match="fitted"):
        m([ds[0]])
    m.fit(ds)
    samples = [ds[0], ds[1]]
    out = m(samples, device="cpu")
    assert len(out) == 2
    for lab, s in zip(out, samples):
        assert lab.shape == s["image"].shape[:2] and lab.dtype == np.uint8
        allowed = {0, 255} | {c + 1 for c in np.flatnonzero(s["tags"])}
        assert set(np.unique(lab).tolist()) <= allowed  # background + the image's tags
    assert "cams" in m.describe()


@pytest.mark.parametrize("supervision, extra", [
    ("scribble", {}), ("point", {"cam_source": "none"}),
    ("box", {"affinity_epochs": 1, "min_side": 32, "crf": False}),
])
def test_a2gnn_other_supervisions(supervision, extra, one_thread):
    ds = FakeDataset(6)
    m = M.get_method("a2gnn", supervision, ds, {**TINY["a2gnn"], **extra}, "cpu")
    if supervision == "box":  # class-agnostic: no CAMs, no training, the gnn settings nested
        assert m.cams is None and not m.needs_fit
        assert m.config.gnn.stage1_epochs == 2 and m.config.affinity_epochs == 1
    if supervision == "point":
        assert m.cams is None
    m.fit(ds)
    s = ds[0]
    (lab,) = m([s])
    assert lab.shape == s["image"].shape[:2] and lab.dtype == np.uint8
    assert set(np.unique(lab).tolist()) <= {0, 1, 2, 3, 255}
