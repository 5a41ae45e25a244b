"""Dataset-scale pseudo-label generation: resumable, atomic, failure-tolerant.

:func:`generate` runs any pseudo-label method over a dataset in batches and writes one
palette PNG per image (and optionally the class probabilities). Every file is written to a
temporary file in the output folder and moved into place with :func:`os.replace`, so a run
that is interrupted (Ctrl-C, kill, power loss) never leaves a half-written label file; the
same call started again skips the images that are already done. An image whose method call
raises is logged with its reason to ``failures.tsv`` and the run goes on.
"""
from __future__ import annotations

import inspect
import io
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from .._checks import check_choice, check_positive
from .._optional import available

__all__ = ["generate", "GenerateSummary", "save_label_png", "atomic_write"]

IGNORE = 255
_TMP_PREFIX = ".pyg_wsss-tmp-"


def _voc_palette(num_colors: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map, ``uint8 [num_colors, 3]`` (index 255 is (224, 224, 192))."""
    pal = np.zeros((num_colors, 3), dtype=np.uint8)
    for i in range(num_colors):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, flushed and
    fsynced, then :func:`os.replace` (atomic on POSIX and Windows)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX + path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _as_label_array(labels: Any) -> np.ndarray:
    arr = labels.detach().cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"a label map must be a non-empty [H, W] array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"a label map must be integer, got {arr.dtype}")
    if arr.min() < 0 or arr.max() > 255:
        raise ValueError("label values must be in 0..255 (255 = unlabelled)")
    return arr.astype(np.uint8)


def _png_bytes(labels: np.ndarray) -> bytes:
    from PIL import Image

    img = Image.fromarray(labels)  # mode "L"; putpalette makes it "P"
    img.putpalette(_voc_palette().reshape(-1).tolist())
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def save_label_png(labels: Any, path: str | os.PathLike) -> None:
    """Save a ``uint8 [H, W]`` label map as a VOC-palette PNG, atomically."""
    atomic_write(path, _png_bytes(_as_label_array(labels)))


def _probs_bytes(probs: Any, fmt: str) -> bytes:
    arr = probs.detach().cpu().numpy() if isinstance(probs, Tensor) else np.asarray(probs)
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"probabilities must be floating point, got {arr.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError("probabilities contain NaN or infinite values")
    buf = io.BytesIO()
    if fmt == "npy":
        np.save(buf, arr.astype(np.float32))
    else:
        np.savez_compressed(buf, probs=arr.astype(np.float32))
    return buf.getvalue()


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe_name(name: Any, index: int) -> str:
    if name is None:
        return f"{index:06d}"
    s = _SAFE.sub("_", str(name)).strip("._")
    return s or f"{index:06d}"


@dataclass
class GenerateSummary:
    """What :func:`generate` did."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    out_dir: str = ""
    failures: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"GenerateSummary(done={self.done}, skipped={self.skipped}, failed={self.failed}, "
            f"out_dir={self.out_dir!r})"
        )


def _accepts_device(fn: Callable) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "device" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


def _is_batch(x: Any) -> bool:
    if isinstance(x, (list, tuple)):
        return True
    return isinstance(x, (np.ndarray, Tensor)) and x.ndim in (3, 4)


def _split_output(out: Any, n: int) -> tuple[list[Any], list[Any] | None]:
    """``labels`` or ``(labels, probs)``; a batch is a list or a stacked array."""
    probs = None
    if isinstance(out, tuple) and len(out) == 2 and _is_batch(out[0]):
        out, probs = out
    if not _is_batch(out):
        raise TypeError("the method must return a list of label maps (or labels, probs)")
    labels = list(out)
    if len(labels) != n:
        raise ValueError(f"the method returned {len(labels)} label maps for {n} samples")
    if probs is not None:
        probs = list(probs)
        if len(probs) != n:
            raise ValueError(f"the method returned {len(probs)} probability maps for {n} samples")
    return labels, probs


def generate(
    dataset: Sequence[dict[str, Any]],
    method: Callable[..., Any],
    out_dir: str | os.PathLike,
    batch_size: int = 1,
    device: torch.device | str = "cpu",
    save_probs: bool = False,
    probs_format: str = "npy",
    progress: bool = True,
    names: Sequence[str] | None = None,
    overwrite: bool = False,
    failures_file: str = "failures.tsv",
) -> GenerateSummary:
    """Run ``method`` over ``dataset`` and write one label PNG per image, resumably.

    Args:
        dataset: Indexable (``len`` and ``[i]``) of sample dicts (:mod:`pyg_wsss.data`).
        method: ``method(samples: list[dict]) -> labels`` or ``-> (labels, probs)``, with
            ``labels`` one ``[H, W]`` integer map per sample (255 = unlabelled) and ``probs``
            one ``[K, H, W]`` float array per sample. If it takes a ``device`` argument, the
            ``device`` is passed.
        out_dir: Output folder (created). Files: ``<name>.png`` (palette PNG, VOC colours),
            ``<name>.npy`` / ``<name>.npz`` (probabilities, with ``save_probs``), and
            ``failures.tsv`` (``name``, ``index``, ``reason``; appended to).
        batch_size: Samples per method call (> 0). If a batch fails, its samples are retried
            one by one so only the failing ones are logged.
        device: Passed to ``method`` when it accepts it.
        save_probs: Also save the probabilities (the method must return them).
        probs_format: ``"npy"`` or ``"npz"`` (compressed).
        progress: Show a tqdm progress bar (if tqdm is installed).
        names: Output names per index (default: ``sample["name"]``, else the zero-padded
            index). Characters outside ``[A-Za-z0-9._-]`` become ``_``.
        overwrite: Recompute images whose outputs already exist.
        failures_file: Name of the failure log inside ``out_dir``.

    Returns:
        :class:`GenerateSummary` with ``done`` (written now), ``skipped`` (already present),
        ``failed`` and the ``(name, reason)`` list.

    An image counts as finished when its PNG (and, with ``save_probs``, its probability
    file) exists; since both are written atomically (temporary file + :func:`os.replace`),
    an interrupted run restarted with the same arguments recomputes only the rest.
    Temporary files of an interrupted run are removed at start.
    """
    if not callable(method):
        raise TypeError(f"'method' must be callable, got {type(method).__name__}")
    check_positive(batch_size, "batch_size", integer=True)
    check_choice(probs_format, ("npy", "npz"), "probs_format")
    try:
        n_items = len(dataset)
    except TypeError as err:
        raise TypeError("'dataset' must support len() and indexing") from err
    if names is not None and len(names) != n_items:
        raise ValueError(f"'names' has {len(names)} entries for {n_items} samples")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(_TMP_PREFIX + "*"):
        try:
            stale.unlink()
        except OSError:
            pass
    device = torch.device(device)
    pass_device = _accepts_device(method)
    summary = GenerateSummary(out_dir=str(out))
    fail_path = out / failures_file
    seen: set[str] = set()

    def outputs(name: str) -> list[Path]:
        paths = [out / f"{name}.png"]
        if save_probs:
            paths.append(out / f"{name}.{probs_format}")
        return paths

    def log_failure(name: str, index: int, err: BaseException | str) -> None:
        reason = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
        reason = " ".join(str(reason).split())
        summary.failed += 1
        summary.failures.append((name, reason))
        with open(fail_path, "a", encoding="utf-8") as f:
            f.write(f"{name}\t{index}\t{reason}\n")
            f.flush()

    def write(name: str, labels: Any, probs: Any) -> None:
        lab = _as_label_array(labels)
        png = _png_bytes(lab)
        pb = None
        if save_probs:
            if probs is None:
                raise ValueError("save_probs=True but the method returned no probabilities")
            pb = _probs_bytes(probs, probs_format)
        if pb is not None:  # probabilities first: the PNG marks the image as finished
            atomic_write(out / f"{name}.{probs_format}", pb)
        atomic_write(out / f"{name}.png", png)

    def run(batch: list[tuple[int, str, dict]]) -> None:
        samples = [s for _, _, s in batch]
        kwargs = {"device": device} if pass_device else {}
        try:
            labels, probs = _split_output(method(samples, **kwargs), len(samples))
        except Exception as err:  # noqa: BLE001 - logged per image
            if len(batch) > 1:
                for item in batch:
                    run([item])
                return
            log_failure(batch[0][1], batch[0][0], err)
            return
        for j, (index, name, _) in enumerate(batch):
            try:
                write(name, labels[j], None if probs is None else probs[j])
                summary.done += 1
            except Exception as err:  # noqa: BLE001
                log_failure(name, index, err)

    bar = None
    if progress and available("tqdm.auto"):
        from tqdm.auto import tqdm

        bar = tqdm(total=n_items, desc="pseudo labels", unit="img")
    pending: list[tuple[int, str, dict]] = []
    try:
        for index in range(n_items):
            sample = None
            if names is not None:
                name = _safe_name(names[index], index)
            else:
                try:
                    sample = dataset[index]
                    raw = sample.get("name") if isinstance(sample, dict) else None
                except Exception as err:  # noqa: BLE001
                    log_failure(f"{index:06d}", index, err)
                    if bar is not None:
                        bar.update(1)
                    continue
                name = _safe_name(raw, index)
            if name in seen:
                log_failure(name, index, "duplicate output name")
                if bar is not None:
                    bar.update(1)
                continue
            seen.add(name)
            if not overwrite and all(p.exists() for p in outputs(name)):
                summary.skipped += 1
                if bar is not None:
                    bar.update(1)
                continue
            if sample is None:
                try:
                    sample = dataset[index]
                except Exception as err:  # noqa: BLE001
                    log_failure(name, index, err)
                    if bar is not None:
                        bar.update(1)
                    continue
            pending.append((index, name, sample))
            if len(pending) == batch_size:
                run(pending)
                if bar is not None:
                    bar.update(len(pending))
                pending = []
        if pending:
            run(pending)
            if bar is not None:
                bar.update(len(pending))
    finally:
        if bar is not None:
            bar.close()
    return summary
