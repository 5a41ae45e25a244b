r"""Segmentation metrics: a confusion matrix accumulated over a dataset, per-class IoU, mIoU,
precision, recall and pixel accuracy, with the void label 255 ignored.

Conventions. Rows of the confusion matrix are the ground truth, columns the prediction:
:math:`M_{ij}` = number of pixels of true class :math:`i` predicted as :math:`j`. Pixels whose
*target* is ``ignore_index`` are skipped. Pixels whose *prediction* is ``ignore_index``
(unlabelled pixels of a pseudo-label) are counted separately (``ConfusionMatrix.unlabelled``)
and, with ``unlabelled="miss"`` (default), count as misses (false negatives of
their true class; no class gets a false positive); with ``unlabelled="skip"`` they are left
out (the precision-only view used to judge confident seeds; see also :meth:`coverage`).

.. math::
    \mathrm{IoU}_c = \frac{M_{cc}}{\sum_j M_{cj} + U_c + \sum_i M_{ic} - M_{cc}},\quad
    \mathrm{precision}_c = \frac{M_{cc}}{\sum_i M_{ic}},\quad
    \mathrm{recall}_c = \frac{M_{cc}}{\sum_j M_{cj} + U_c}

(:math:`U_c` = unlabelled predictions on class :math:`c`, zero with ``"skip"``).
mIoU averages :math:`\mathrm{IoU}_c` over the classes that occur in the target or the
prediction (``average="present"``, the usual VOC evaluation, which is ``nanmean`` of the
per-class IoUs), or over all ``num_classes`` classes with absent classes counting as 0
(``average="all"``, as ``TP / (union + eps)`` implementations do).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import torch

from ._checks import check_choice, check_positive

AVERAGES = ("present", "all")
UNLABELLED = ("miss", "skip")


def _labels(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"'{name}' must be a numpy array or torch.Tensor, got {type(x).__name__}")
    if x.dtype == bool or not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"'{name}' must be an integer label map, got dtype {x.dtype}")
    return x


def _check_range(x: np.ndarray, num_classes: int, ignore_index: int | None, name: str) -> None:
    if x.size == 0:
        return
    bad = (x < 0) | (x >= num_classes)
    if ignore_index is not None:
        bad &= x != ignore_index
    if bad.any():
        raise ValueError(
            f"'{name}' has labels outside [0, {num_classes - 1}]"
            + (f" (and not the ignore index {ignore_index})" if ignore_index is not None else "")
            + f": {np.unique(x[bad])[:10].tolist()}"
        )


def _counts(
    pred: Any, target: Any, num_classes: int, ignore_index: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """``(matrix [K, K], unlabelled [K])`` for one pair of label maps."""
    if ignore_index is not None and 0 <= ignore_index < num_classes:
        raise ValueError(f"'ignore_index' ({ignore_index}) must not be a class id")
    p = _labels(pred, "pred")
    t = _labels(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"'pred' {p.shape} and 'target' {t.shape} must have the same shape")
    _check_range(p, num_classes, ignore_index, "pred")
    _check_range(t, num_classes, ignore_index, "target")
    p = p.reshape(-1).astype(np.int64)
    t = t.reshape(-1).astype(np.int64)
    valid = t != ignore_index if ignore_index is not None else np.ones_like(t, dtype=bool)
    p, t = p[valid], t[valid]
    unl = p == ignore_index if ignore_index is not None else np.zeros_like(p, dtype=bool)
    unlabelled = np.bincount(t[unl], minlength=num_classes)
    p, t = p[~unl], t[~unl]
    matrix = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return matrix.reshape(num_classes, num_classes), unlabelled


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    out = np.full(a.shape, np.nan)
    np.divide(a, b, out=out, where=b > 0)
    return out


class ConfusionMatrix:
    """Confusion matrix accumulated over many (prediction, target) label maps.

    Args:
        num_classes: Number of classes ``K`` including background (21 for VOC).
        ignore_index: Void label in targets / unlabelled label in predictions (``None``:
            no such label, every value must be a class id).
        class_names: Optional names for :meth:`table`.
        unlabelled: ``"miss"`` (default) or ``"skip"``; how unlabelled predictions count (see
            the module docstring).

    Example::

        cm = ConfusionMatrix(21)
        for pred, sample in zip(preds, dataset):
            cm.update(pred, sample["mask"])
        print(cm.miou(), cm.table(VOC_CLASSES))
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = 255,
        class_names: Sequence[str] | None = None,
        unlabelled: str = "miss",
    ) -> None:
        check_positive(num_classes, "num_classes", integer=True)
        if ignore_index is not None:
            if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
                raise TypeError(f"'ignore_index' must be an int or None, got {ignore_index!r}")
            if 0 <= ignore_index < num_classes:
                raise ValueError(
                    f"'ignore_index' ({ignore_index}) must not be a class id in [0, {num_classes})"
                )
        check_choice(unlabelled, UNLABELLED, "unlabelled")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(
                f"'class_names' has {len(class_names)} names for {num_classes} classes"
            )
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.class_names = list(class_names) if class_names is not None else None
        self.unlabelled_mode = unlabelled
        self.reset()

    # -------------------------------------------------------------- accumulation
    def reset(self) -> "ConfusionMatrix":
        """Zero all counts."""
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.unlabelled = np.zeros(self.num_classes, dtype=np.int64)
        return self

    def update(self, pred: Any, target: Any) -> "ConfusionMatrix":
        """Add one prediction/target pair (same shape, any number of dimensions, e.g.
        ``[H, W]`` or a batch ``[B, H, W]``; numpy or torch integer arrays)."""
        m, u = _counts(pred, target, self.num_classes, self.ignore_index)
        self.matrix += m
        self.unlabelled += u
        return self

    def update_many(self, preds: Iterable[Any], targets: Iterable[Any]) -> "ConfusionMatrix":
        """:meth:`update` with each pair of two equally long sequences of label maps."""
        preds, targets = list(preds), list(targets)
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
        for p, t in zip(preds, targets):
            self.update(p, t)
        return self

    def merge(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        """Add the counts of another matrix (e.g. from another worker) into this one."""
        if not isinstance(other, ConfusionMatrix):
            raise TypeError(f"can only merge a ConfusionMatrix, got {type(other).__name__}")
        if other.num_classes != self.num_classes or other.ignore_index != self.ignore_index:
            raise ValueError(
                f"cannot merge matrices with num_classes/ignore_index {other.num_classes}/"
                f"{other.ignore_index} into {self.num_classes}/{self.ignore_index}"
            )
        self.matrix += other.matrix
        self.unlabelled += other.unlabelled
        return self

    @classmethod
    def from_predictions(
        cls, preds: Iterable[Any], targets: Iterable[Any], num_classes: int, **kwargs: Any
    ) -> "ConfusionMatrix":
        """Build and fill a matrix from sequences of predictions and targets."""
        return cls(num_classes, **kwargs).update_many(preds, targets)

    # -------------------------------------------------------------- metrics
    def _unl(self) -> np.ndarray:
        return self.unlabelled if self.unlabelled_mode == "miss" else np.zeros_like(self.unlabelled)

    @property
    def total(self) -> int:
        """Number of counted target pixels (non-void; incl. unlabelled predictions for "miss")."""
        return int(self.matrix.sum() + self._unl().sum())

    def intersection_union(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-class ``(intersection, union)`` pixel counts."""
        tp = np.diag(self.matrix)
        union = self.matrix.sum(1) + self._unl() + self.matrix.sum(0) - tp
        return tp, union

    def iou(self) -> np.ndarray:
        """Per-class IoU ``float64 [K]``; NaN for classes absent from target and prediction."""
        tp, union = self.intersection_union()
        return _div(tp, union)

    def miou(self, average: str = "present") -> float:
        """Mean IoU: ``"present"`` = over the classes that occur in the target or the
        prediction (NaN-mean; classes in neither are excluded), ``"all"`` = over all
        classes, absent ones counting as 0.

        Never NaN: when no class occurs at all (nothing counted, e.g. every target pixel
        is void) the mIoU is undefined and :class:`ValueError` is raised
        (:meth:`summary` and :meth:`table` report it as NaN / ``-`` instead).
        """
        check_choice(average, AVERAGES, "average")
        value = self._miou(average)
        if not np.isfinite(value):
            raise ValueError(
                "mIoU is undefined: no class occurs in the 'target' or the prediction "
                f"(every target pixel is void ({self.ignore_index}) or nothing was counted)"
            )
        return value

    def _miou(self, average: str = "present") -> float:
        iou = self.iou()
        if not np.isfinite(iou).any():
            return float("nan")
        if average == "all":
            return float(np.nan_to_num(iou, nan=0.0).mean())
        return float(np.nanmean(iou))

    def precision(self) -> np.ndarray:
        """Per-class precision ``TP / predicted``; NaN for classes never predicted."""
        return _div(np.diag(self.matrix), self.matrix.sum(0))

    def recall(self) -> np.ndarray:
        """Per-class recall ``TP / actual`` (unlabelled predictions count as misses with
        ``"miss"``); NaN for classes absent from the target."""
        return _div(np.diag(self.matrix), self.matrix.sum(1) + self._unl())

    def pixel_accuracy(self) -> float:
        """Correct pixels / counted pixels (``nan`` if none)."""
        total = self.total
        return float(np.trace(self.matrix) / total) if total else float("nan")

    def mean_accuracy(self) -> float:
        """Mean per-class recall over the classes present in the target."""
        rec = self.recall()
        return float(np.nanmean(rec)) if np.isfinite(rec).any() else float("nan")

    def coverage(self) -> float:
        """Fraction of non-void target pixels that have a predicted label (``nan`` if none)."""
        labelled = self.matrix.sum()
        total = labelled + self.unlabelled.sum()
        return float(labelled / total) if total else float("nan")

    def summary(self) -> dict[str, Any]:
        """All metrics in one dict (per-class arrays as lists)."""
        return {
            "miou": self._miou(),  # NaN (not an error) for an empty matrix
            "pixel_accuracy": self.pixel_accuracy(),
            "mean_accuracy": self.mean_accuracy(),
            "coverage": self.coverage(),
            "iou": self.iou().tolist(),
            "precision": self.precision().tolist(),
            "recall": self.recall().tolist(),
        }

    def table(
        self,
        class_names: Sequence[str] | None = None,
        fmt: str = "markdown",
        digits: int = 1,
    ) -> str:
        """Per-class IoU / precision / recall (in %) and the mean, as a markdown or plain text
        table. Classes absent from target and prediction show ``-``."""
        check_choice(fmt, ("markdown", "text"), "fmt")
        names = list(class_names) if class_names is not None else self.class_names
        if names is None:
            names = [str(i) for i in range(self.num_classes)]
        if len(names) != self.num_classes:
            raise ValueError(f"'class_names' has {len(names)} names for {self.num_classes} classes")

        def f(x: float) -> str:
            return "-" if not np.isfinite(x) else f"{100 * x:.{digits}f}"

        header = ["class", "IoU", "precision", "recall"]
        body = [
            [str(n), f(i), f(p), f(r)]
            for n, i, p, r in zip(names, self.iou(), self.precision(), self.recall())
        ]
        body.append(
            ["mean", f(self._miou()), f(_nanmean(self.precision())), f(self.mean_accuracy())]
        )
        if fmt == "markdown":
            lines = ["| " + " | ".join(header) + " |", "|---|---:|---:|---:|"]
            lines += ["| " + " | ".join(r) + " |" for r in body]
            return "\n".join(lines)
        widths = [max(len(r[k]) for r in [header, *body]) for k in range(4)]
        fmt_row = lambda r: "  ".join(  # noqa: E731
            c.ljust(widths[k]) if k == 0 else c.rjust(widths[k]) for k, c in enumerate(r)
        )
        lines = [fmt_row(header), "  ".join("-" * w for w in widths)]
        lines += [fmt_row(r) for r in body]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"pixels={self.total})"
        )


def _nanmean(x: np.ndarray) -> float:
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


def confusion_matrix(
    pred: Any, target: Any, num_classes: int, ignore_index: int | None = 255
) -> np.ndarray:
    """The ``int64 [K, K]`` confusion matrix (rows = target, columns = prediction) of one pair
    of label maps. Void targets and unlabelled predictions (``ignore_index``) are skipped."""
    check_positive(num_classes, "num_classes", integer=True)
    return _counts(pred, target, int(num_classes), ignore_index)[0]


def mean_iou(
    preds: Any,
    targets: Any,
    num_classes: int,
    ignore_index: int | None = 255,
    average: str = "present",
    unlabelled: str = "miss",
) -> float:
    """mIoU over a dataset, accumulating one confusion matrix over all pairs (not the mean of
    per-image mIoUs).

    Args:
        preds, targets: One label map each, or equally long sequences of label maps (which may
            differ in size from pair to pair).
        num_classes: Classes including background.
        ignore_index, unlabelled: See :class:`ConfusionMatrix`.
        average: ``"present"`` or ``"all"`` (see :meth:`ConfusionMatrix.miou`).
    """
    cm = ConfusionMatrix(num_classes, ignore_index=ignore_index, unlabelled=unlabelled)
    single = isinstance(preds, (np.ndarray, torch.Tensor))
    if single != isinstance(targets, (np.ndarray, torch.Tensor)):
        raise TypeError("'preds' and 'targets' must both be arrays or both be sequences of arrays")
    if single:
        cm.update(preds, targets)
    else:
        preds, targets = list(preds), list(targets)
        if not preds:
            raise ValueError("'preds' is empty: nothing to evaluate")
        cm.update_many(preds, targets)
    return cm.miou(average)
