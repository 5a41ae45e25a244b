"""The validation policy switch (pyg_wsss.set_checks / checks) and the coverage of the
bad-input matrix over the public callables of nn, ops, graphs, metrics, pseudo.{expand, crf,
cam, seeds, grabcut, walk}, data.{annotations, transforms, samples}, viz, segmentation.{data,
deeplab, evaluate, train} and pipelines.baselines (issue 17, items 2 and 6)."""
import importlib
import inspect
import re

import pytest
import torch
from badinput_matrix import REGISTRY

import pyg_wsss
from pyg_wsss import _checks
from pyg_wsss.nn import functional as F

# Public names that are not callables taking data (containers, constants, no arguments) or
# need downloaded weights / a dataset / a trained backbone (covered by their own tests).
EXCLUDED = {
    # data containers and constants
    "PixelGraph", "SuperpixelGraph", "ClassKnowledge", "CSRGraph", "CRFParams",
    "GroupGNNOutput", "GAUSSIAN_PRESETS", "KNOWLEDGE_DATASETS", "CRF_PRESETS",
    # no arguments
    "clear_csr_cache",
    # backbone base class and pretrained / torchvision backbones
    "Backbone", "EfficientNetLite0Backbone", "VGG16Dilated", "ResNetBackbone",
    # constants of pseudo.walk / data.samples; the registered demo row of the baselines
    # (it takes a DemoContext built by pyg_wsss.demo, covered by tests/test_demo.py)
    "DENSE_MAX_NODES", "REAL_SAMPLE_NAMES", "LABELLED_SAMPLES", "demo",
    # config dataclasses (their fields are checked by the functions that take them, which
    # are covered: crf_seeds, train_segmentation, random_walk_crf_labels, train_classifier)
    "CRFSeedConfig", "SegmentationTrainConfig", "RandomWalkCRFConfig", "ClassifierTrainConfig",
}
MIN_COVERED = 136  # of the public names (some have several specs: paths, constructors)


def _public() -> set[str]:
    names: set[str] = set()
    for mod in ("pyg_wsss.nn", "pyg_wsss.nn.functional", "pyg_wsss.nn.conv",
                "pyg_wsss.nn.models", "pyg_wsss.graphs"):
        names |= set(importlib.import_module(mod)._MEMBERS)
    names |= set(importlib.import_module("pyg_wsss.ops").__all__)
    names |= {"ConfusionMatrix", "confusion_matrix", "mean_iou"}
    for mod in ("pyg_wsss.pseudo.expand", "pyg_wsss.pseudo.crf"):
        names |= set(importlib.import_module(mod).__all__)
    names |= {"multiscale_cam", "classifier_cams"}
    names.discard("slic_segments")  # in graphs and pseudo.expand: both covered, named apart
    names |= {"graphs.slic_segments", "pseudo.slic_segments"}
    for mod in ("pyg_wsss.pseudo.seeds", "pyg_wsss.pseudo.grabcut", "pyg_wsss.pseudo.walk",
                "pyg_wsss.segmentation.data", "pyg_wsss.segmentation.deeplab",
                "pyg_wsss.segmentation.evaluate", "pyg_wsss.segmentation.train",
                "pyg_wsss.pipelines.baselines"):
        names |= set(importlib.import_module(mod).__all__)
    data = importlib.import_module("pyg_wsss.data")
    names |= {n for n, m in data._MEMBERS.items() if m in ("annotations", "transforms",
                                                           "samples")}
    names |= {"labelled_samples", "object_scribble", "interior_point", "background_region"}
    viz = importlib.import_module("pyg_wsss.viz")  # no __all__: its public functions
    names |= {n for n, f in vars(viz).items() if not n.startswith("_") and inspect.isfunction(f)
              and f.__module__ == viz.__name__}
    return names


def _covered() -> set[str]:
    for mod in ("test_nn", "test_ops", "test_graphs", "test_metrics_pseudo",
                "test_pseudo_data", "test_viz_segmentation"):
        try:
            importlib.import_module(mod)  # fills REGISTRY when run on its own
        except pytest.skip.Exception as err:  # an optional dependency (cv2, pydensecrf)
            pytest.skip(f"{mod}: {err}")
    return {re.sub(r"\[.*\]|\(\)$", "", name) for area in REGISTRY.values() for name in area}


def test_every_public_callable_is_covered():
    public, covered = _public(), _covered()
    missing = sorted(public - covered - EXCLUDED)
    assert not missing, f"public callables without bad-input cases: {missing}"
    n = len(public & covered)
    cases = sum(sum(v.values()) for v in REGISTRY.values())
    print(f"bad-input matrix: {n} callables, {cases} cases")
    assert n >= MIN_COVERED


# ------------------------------------------------------------------------------------------
# the policy
# ------------------------------------------------------------------------------------------
def _nan_input():
    x = torch.randn(4, 3)
    x[0, 0] = float("nan")
    return x


def _gated(x):
    e = torch.tensor([[0, 1, 2], [1, 2, 3]])
    return F.gated_crf_loss(x, e, torch.ones(3))


def test_set_checks_and_context_manager():
    assert _checks.get_checks() == "auto"
    with pytest.raises(ValueError, match="level"):
        pyg_wsss.set_checks("paranoid")
    with pyg_wsss.checks("cheap"):
        assert _checks.get_checks() == "cheap"
        assert torch.isnan(_gated(_nan_input()))  # the value check is skipped
        with pytest.raises(ValueError, match="input"):  # cheap checks still run
            _gated(torch.randn(4))
    assert _checks.get_checks() == "auto"
    with pytest.raises(ValueError, match="'input' contains NaN"):
        _gated(_nan_input())
    pyg_wsss.set_checks("cheap")
    try:
        assert not _checks.value_checks(torch.zeros(1))
    finally:
        pyg_wsss.set_checks("auto")


def test_auto_level_skips_value_checks_off_the_cpu():
    cpu, meta = torch.zeros(2), torch.zeros(2, device="meta")  # meta stands in for CUDA
    assert _checks.value_checks(cpu) and not _checks.value_checks(cpu, meta)
    with pyg_wsss.checks("full"):
        assert _checks.value_checks(cpu, meta)


def test_value_checks_are_skipped_while_compiling(monkeypatch):
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    with pyg_wsss.checks("full"):
        assert not _checks.value_checks(torch.zeros(1))


def test_batch_range_is_a_value_check():
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 255])
    bad = torch.tensor([0, 0, 1, 2])
    with pytest.raises(ValueError, match="'batch' has graph indices in \\[0, 2\\]"):
        F.partial_cross_entropy(x, y, batch=bad, num_graphs=2)
    with pytest.raises(ValueError, match="'batch' has 3 entries"):  # cheap: always
        with pyg_wsss.checks("cheap"):
            F.partial_cross_entropy(x, y, batch=bad[1:], num_graphs=2)
    with pytest.raises(ValueError, match="'batch' has negative"):  # num_graphs inferred
        F.entropy_loss(x, batch=torch.tensor([0, -1, 0, 0]))
