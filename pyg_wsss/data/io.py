"""Image and label-PNG input/output: the one copy used by the readers, the driver and the
command.

* :func:`to_uint8_rgb` turns any reasonable image array into ``uint8 [H, W, 3]`` RGB by one
  documented rule; :func:`read_image` reads a file (8-bit and 16-bit PNG/TIFF, JPEG, BMP, ...)
  through it.
* :func:`read_label_png` reads a label map (palette, grey, 16-bit or VOC-coloured RGB PNG) as
  ``uint8 [H, W]`` values; :func:`label_png_bytes` / :func:`write_label_png` write one as a
  palette PNG (the VOC palette by default), atomically.
* :class:`DatasetError` is raised by the readers for a dataset that cannot be used at all (a
  malformed annotation file, a missing folder); per-image problems raise a plain
  :class:`ValueError` from ``__getitem__`` instead.
* :class:`CategoryMap` is the dataset-id <-> contiguous-index table every reader shares.
"""
from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator, Mapping
from collections.abc import Sequence as SequenceABC
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from torch.utils.data import Dataset

__all__ = [
    "DatasetError",
    "IMAGE_EXTENSIONS",
    "to_uint8_rgb",
    "read_image",
    "read_label_png",
    "label_png_bytes",
    "write_label_png",
    "atomic_write",
    "CategoryMap",
    "LabelDataset",
]

IGNORE = 255
#: The largest category id a dataset may use (label PNGs are 8-bit, 255 = unlabelled).
MAX_CATEGORY_ID = 254
#: File extensions (lower case) recognised as images by the folder readers.
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
#: Prefix of the temporary files of :func:`atomic_write` (same as the driver's).
TMP_PREFIX = ".pyg_wsss-tmp-"
#: Percentiles mapped to 0 and 255 by the contrast stretch of :func:`to_uint8_rgb`.
STRETCH_PERCENTILES = (0.5, 99.5)


class DatasetError(ValueError):
    """A dataset that cannot be read at all: a malformed annotation file (the message names the
    JSON path of the bad field, e.g. ``annotations[3].bbox``), a missing folder, conflicting
    arguments. Problems of a single image raise :class:`ValueError` from ``__getitem__``."""


# --------------------------------------------------------------------------------------------
# images


def _to_numpy(array: Any, name: str) -> np.ndarray:
    try:
        import torch

        if isinstance(array, torch.Tensor):
            return array.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if not isinstance(array, np.ndarray):
        raise TypeError(
            f"'{name}' must be a numpy array or torch.Tensor, got {type(array).__name__}"
        )
    return array


def _stretch(arr: np.ndarray, name: str) -> np.ndarray:
    """Linear map of the 0.5..99.5 percentile range of the finite values to 0..255."""
    arr = arr.astype(np.float64)
    finite = np.isfinite(arr)
    if not finite.any():
        raise ValueError(f"'{name}' has no finite values (all NaN or infinite)")
    lo, hi = np.percentile(arr[finite], STRETCH_PERCENTILES)
    out = np.zeros(arr.shape, dtype=np.uint8)
    if hi <= lo:  # constant image (after ignoring outliers)
        return out
    scaled = (np.where(finite, arr, lo) - lo) * (255.0 / (hi - lo))
    out[...] = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    out[~finite] = 0
    return out


def to_uint8_rgb(array: Any, name: str = "image") -> np.ndarray:
    """Convert an image array to ``uint8 [H, W, 3]`` RGB by one fixed rule.

    * shape: ``[H, W, 3]`` is RGB; ``[H, W]`` and ``[H, W, 1]`` (grey) are replicated to three
      channels; ``[H, W, 4]`` (RGBA) drops the alpha channel. Anything else (``[H, W, 2]``,
      4-D, empty) raises.
    * dtype: ``uint8`` passes unchanged; ``bool`` maps to 0 / 255; every other integer
      (``uint16``, ``int32``, ...) or floating dtype gets a per-image linear contrast stretch:
      the 0.5 and 99.5 percentiles of the finite values (over all colour channels together)
      map to 0 and 255, values outside are clipped, NaN / infinite pixels become 0, and a
      constant image becomes all zeros. (So a ``float`` image in ``[0, 1]`` is stretched
      too, not multiplied by 255.) An image with no finite value raises.

    Args:
        array: numpy array or torch tensor (channels last).
        name: Argument name for error messages.

    Returns:
        ``uint8 [H, W, 3]``, C-contiguous (a new array unless the input already was one).

    Raises:
        TypeError: not an array, or a complex / object / string dtype.
        ValueError: bad shape, empty, or no finite values.
    """
    arr = _to_numpy(array, name)
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        arr = arr[..., :3] if arr.shape[2] == 4 else arr
    elif arr.ndim != 2:
        raise ValueError(
            f"'{name}' must have shape [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], "
            f"got {tuple(arr.shape)}"
        )
    if arr.size == 0:
        raise ValueError(f"'{name}' is empty (shape {tuple(arr.shape)})")
    if arr.dtype == np.uint8:
        out = arr
    elif arr.dtype == bool:
        out = arr.astype(np.uint8) * np.uint8(255)
    elif np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating):
        out = _stretch(arr, name)
    else:
        raise TypeError(f"'{name}' must have an integer, float or bool dtype, got {arr.dtype}")
    if out.ndim == 2:
        out = out[..., None]
    if out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    return np.ascontiguousarray(out)


_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as ``uint8 [H, W, 3]`` RGB.

    8-bit files are converted with PIL (``L``, ``P``, ``RGBA``, ``CMYK``, ... -> RGB; alpha
    dropped); 16-bit and 32-bit single-channel files (PIL modes ``I;16``, ``I``, ``F``: 16-bit
    PNG, 16/32-bit TIFF) go through the contrast stretch of :func:`to_uint8_rgb`. The EXIF
    orientation is *not* applied (annotations refer to the stored pixels). A multi-frame file
    gives its first frame.

    Raises:
        ValueError: the file is missing, not an image, truncated or of an unsupported mode
            (the message names the file).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in _HIGH_DEPTH_MODES:
                return to_uint8_rgb(np.array(im), name=str(path))
            arr = np.array(im if im.mode == "RGB" else im.convert("RGB"), dtype=np.uint8)
    except UnidentifiedImageError as err:
        raise ValueError(f"{path}: not a readable image file ({err})") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"{path}: cannot read image ({type(err).__name__}: {err})") from err
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.size == 0:
        raise ValueError(f"{path}: unexpected image shape {arr.shape}")
    return arr


def image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(H, W)`` of an image file from its header (no pixel decoding), ``None`` if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
    except Exception:  # noqa: BLE001 - any failure means "unknown"
        return None
    return int(h), int(w)


# --------------------------------------------------------------------------------------------
# label PNGs


def _voc_colour_codes() -> tuple[np.ndarray, np.ndarray]:
    """Sorted 24-bit colour codes of the 256 VOC palette entries and their indices."""
    from ..viz import voc_palette

    pal = voc_palette(256).astype(np.int64)
    codes = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]
    order = np.argsort(codes, kind="stable")
    return codes[order], order.astype(np.int64)


def rgb_to_voc_indices(rgb: np.ndarray, name: str = "labels") -> np.ndarray:
    """Map a VOC-coloured ``uint8 [H, W, 3]`` label image back to palette indices
    ``uint8 [H, W]`` (every colour must be a VOC palette colour)."""
    codes, index = _voc_colour_codes()
    rgb = rgb.astype(np.int64)
    code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    pos = np.clip(np.searchsorted(codes, code), 0, len(codes) - 1)
    found = codes[pos] == code
    if not found.all():
        bad = rgb[~found][0].tolist()
        raise ValueError(f"{name}: RGB colour {bad} is not a VOC palette colour")
    return index[pos].astype(np.uint8)


def read_label_png(
    path: str | os.PathLike,
    num_classes: int | None = None,
    *,
    modes: Sequence[str] | None = None,
) -> np.ndarray:
    """Read a label PNG as ``uint8 [H, W]`` values: the one label-map reader of the package.

    Palette (``P``) PNGs give their palette indices; grey (``L``) PNGs their values; 16-bit
    (``I;16``/``I``) PNGs their values (an error if any is outside ``0..255``); RGB(A) PNGs are
    mapped back through the VOC colour palette (an unknown colour raises).

    Args:
        path: The PNG file.
        num_classes: If given, values must be ``< num_classes`` or 255.
        modes: If given, the PIL modes accepted (e.g. ``("P", "L")`` for indexed or grey
            label maps only); any other mode raises :class:`ValueError`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable file, unsupported mode, or values out of range (the message
            names the file).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label PNG not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if modes is not None and mode not in modes:
                raise ValueError(
                    f"{path}: a label map must be a PNG of mode {' or '.join(modes)}, "
                    f"got mode {mode}"
                )
            if mode in ("P", "L"):
                arr = np.array(im, dtype=np.uint8)
            elif mode in _HIGH_DEPTH_MODES[:-1]:
                arr = np.array(im)
                if arr.size and (arr.min() < 0 or arr.max() > 255):
                    raise ValueError(
                        f"{path}: label values outside [0, 255] "
                        f"(min {int(arr.min())}, max {int(arr.max())}); label PNGs are 8-bit"
                    )
                arr = arr.astype(np.uint8)
            elif mode in ("RGB", "RGBA"):
                arr = rgb_to_voc_indices(np.array(im.convert("RGB"), dtype=np.uint8), str(path))
            else:
                raise ValueError(f"{path}: unsupported PNG mode {mode!r} for a label map")
    except UnidentifiedImageError as err:
        raise ValueError(f"{path}: not a readable image file ({err})") from err
    except OSError as err:
        raise ValueError(f"{path}: cannot read label PNG ({type(err).__name__}: {err})") from err
    if num_classes is not None:
        bad = (arr >= num_classes) & (arr != IGNORE)
        if bad.any():
            raise ValueError(
                f"{path}: labels outside [0, {num_classes - 1}] and not 255: "
                f"{np.unique(arr[bad])[:10].tolist()}"
            )
    return arr


def _check_labels(labels: Any, name: str = "labels") -> np.ndarray:
    arr = _to_numpy(labels, name)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"'{name}' must be an integer label map, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"'{name}' must be a non-empty [H, W] array, got shape {arr.shape}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi > 255:
        raise ValueError(
            f"'{name}' values must be in 0..255 (255 = unlabelled), got min {lo}, max {hi}"
        )
    return np.ascontiguousarray(arr, dtype=np.uint8)


def _check_palette(palette: Any) -> np.ndarray:
    if palette is None:
        from ..viz import voc_palette

        return voc_palette(256)
    if isinstance(palette, (list, tuple)):
        palette = np.asarray(palette)
    pal = _to_numpy(palette, "palette")
    if pal.ndim != 2 or pal.shape[1] != 3 or not 1 <= pal.shape[0] <= 256:
        raise ValueError(f"'palette' must have shape [K, 3] with 1 <= K <= 256, got {pal.shape}")
    if not np.issubdtype(pal.dtype, np.integer) or pal.min() < 0 or pal.max() > 255:
        raise ValueError("'palette' must hold integers in 0..255")
    return pal.astype(np.uint8)


def label_png_bytes(labels: Any, palette: Any = None) -> bytes:
    """Encode a label map as a palette PNG.

    Args:
        labels: Integer ``[H, W]`` (numpy or torch), values ``0..255`` (255 = unlabelled).
        palette: ``[K, 3]`` colours (``K <= 256``) stored in the PNG; default the VOC palette
            (255 = (224, 224, 192)). The pixel values are the indices, whatever the colours.

    Returns:
        The PNG file contents.
    """
    from PIL import Image

    arr = _check_labels(labels)
    pal = _check_palette(palette)
    img = Image.fromarray(arr, mode="L")
    img.putpalette(pal.reshape(-1).tolist())
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, flushed and
    fsynced, then :func:`os.replace`. An interruption never leaves a partial ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
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


def write_label_png(labels: Any, path: str | os.PathLike, palette: Any = None) -> None:
    """Write a label map as a palette PNG (see :func:`label_png_bytes`) atomically (temporary
    file in the same folder + fsync + :func:`os.replace`); missing parent folders are created.
    """
    data = label_png_bytes(labels, palette)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)


# --------------------------------------------------------------------------------------------
# category ids


class CategoryMap:
    """Dataset category ids <-> contiguous class indices.

    Contiguous class ``k`` (``1..C``) is the ``k``-th category sorted by id; ``0`` is
    background and ``255`` void in both numberings.

    Args:
        categories: ``{category id: name}`` with ids in ``1..254``.
        background: Name of class 0.
    """

    def __init__(self, categories: Mapping[int, str], background: str = "background") -> None:
        ids = sorted(categories)
        for cid in ids:
            if isinstance(cid, bool) or not isinstance(cid, (int, np.integer)):
                raise DatasetError(f"category id {cid!r} is not an integer")
            if not 1 <= cid <= MAX_CATEGORY_ID:
                raise DatasetError(
                    f"category {categories[cid]!r} has id {cid}: category ids must be in "
                    f"1..{MAX_CATEGORY_ID} (0 is background, 255 unlabelled; the written label "
                    "PNGs are 8-bit)"
                )
        self.category_ids: list[int] = [0] + [int(c) for c in ids]
        self.class_names: list[str] = [str(background)] + [str(categories[c]) for c in ids]
        self._to_contiguous = np.full(256, -1, dtype=np.int64)
        self._to_contiguous[self.category_ids] = np.arange(len(self.category_ids))
        self._to_contiguous[IGNORE] = IGNORE
        self._to_ids = np.full(256, -1, dtype=np.int64)
        self._to_ids[: len(self.category_ids)] = self.category_ids
        self._to_ids[IGNORE] = IGNORE

    @property
    def num_classes(self) -> int:
        return len(self.category_ids)

    def contiguous(self, cid: int) -> int:
        """The contiguous index of one category id (``KeyError`` if unknown)."""
        k = int(self._to_contiguous[cid]) if 0 <= cid <= 255 else -1
        if k < 0:
            raise KeyError(cid)
        return k

    def ids_to_contiguous(self, values: np.ndarray, what: str) -> np.ndarray:
        """Map an array of category ids (0 and 255 kept) to contiguous indices ``uint8``;
        unknown ids raise a :class:`ValueError` naming ``what``."""
        values = np.asarray(values)
        if values.size and (values.min() < 0 or values.max() > 255):
            raise ValueError(f"{what}: values outside 0..255")
        out = self._to_contiguous[values.astype(np.int64)]
        if (out < 0).any():
            bad = np.unique(values[out < 0])[:10].tolist()
            raise ValueError(
                f"{what}: category id(s) {bad} not among the dataset's categories "
                f"{self.category_ids[1:]}"
            )
        return out.astype(np.uint8)

    def to_category_ids(self, labels: Any) -> np.ndarray:
        """Map a contiguous label map (``0..C`` and 255) back to dataset category ids
        (``0 -> 0``, ``255 -> 255``), ``uint8`` of the same shape."""
        arr = _to_numpy(labels, "labels")
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"'labels' must be an integer label map, got dtype {arr.dtype}")
        if arr.size == 0:
            return np.zeros(arr.shape, dtype=np.uint8)
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise ValueError(f"'labels' values must be in 0..255, got min {lo}, max {hi}")
        out = self._to_ids[arr.astype(np.int64)]
        if (out < 0).any():
            bad = np.unique(arr[out < 0])[:10].tolist()
            raise ValueError(
                f"'labels' has values {bad} outside the contiguous classes "
                f"0..{self.num_classes - 1} and not 255"
            )
        return out.astype(np.uint8)


def parse_class_names(class_names: Any, name: str = "class_names") -> dict[int, str]:
    """Normalise a ``class_names`` argument to ``{category id: name}`` (background excluded).

    Accepted: a list/tuple whose index is the category id and whose first entry is the
    background (``"background"``, ``"__background__"``, ``"_background_"`` or ``"bg"``;
    empty strings or ``None`` mark unused ids); a mapping ``{id: name}`` (keys may be strings
    of digits, as in a ``classes.json``; ids 0 and 255 are skipped); or a path to a JSON file
    holding either.
    """
    if isinstance(class_names, (str, os.PathLike)):
        import json

        p = Path(class_names)
        if not p.is_file():
            raise DatasetError(f"'{name}': class-names file not found: {p}")
        try:
            class_names = json.loads(p.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise DatasetError(f"{p}: not valid JSON ({err})") from err
    out: dict[int, str] = {}
    if isinstance(class_names, Mapping):
        for key, value in class_names.items():
            try:
                cid = int(key)
            except (TypeError, ValueError):
                raise DatasetError(f"'{name}': key {key!r} is not an integer id") from None
            if cid in (0, IGNORE):
                continue
            if not isinstance(value, str):
                raise DatasetError(f"'{name}'[{key!r}]: expected a name string, got {value!r}")
            out[cid] = value
    elif isinstance(class_names, Sequence) and not isinstance(class_names, str):
        if not class_names:
            raise DatasetError(f"'{name}' is empty")
        first = class_names[0]
        if not isinstance(first, str) or first.lower() not in (
            "background", "__background__", "_background_", "bg",
        ):
            raise DatasetError(
                f"'{name}' as a list is indexed by category id, so its first entry must be the "
                f"background (e.g. 'background'), got {first!r}; prepend 'background' or pass "
                "a dict {id: name}"
            )
        for cid, value in enumerate(class_names[1:], start=1):
            if value is None or value == "":
                continue
            if not isinstance(value, str):
                raise DatasetError(f"'{name}'[{cid}]: expected a name string, got {value!r}")
            out[cid] = value
    else:
        raise DatasetError(
            f"'{name}' must be a list, a dict or a JSON file path, got {type(class_names).__name__}"
        )
    if not out:
        raise DatasetError(f"'{name}' defines no foreground class")
    for cid in out:
        if not 1 <= cid <= MAX_CATEGORY_ID:
            raise DatasetError(
                f"category {out[cid]!r} has id {cid}: category ids must be in "
                f"1..{MAX_CATEGORY_ID} (255 is unlabelled in the 8-bit label PNGs)"
            )
    return out


class LabelDataset(Dataset, SequenceABC):
    """The part every reader shares: the sample-dict protocol of :mod:`pyg_wsss.data`.

    Attributes:
        num_classes: ``C + 1`` (incl. background).
        class_names: ``["background", name_1, ..., name_C]`` (contiguous order).
        category_ids: ``[0, id_1, ..., id_C]``: the dataset id of contiguous class ``k``.
        names: Per index, the relative output stem (``file_name`` without its extension,
            ``/``-separated, may contain sub-folders), known without reading any image.
        file_names: Per index, the image path relative to the images folder.

    ``__getitem__(i)`` returns a sample dict in *contiguous* ids (``image``, ``mask`` when
    known, ``tags``, ``boxes``, ``box_labels``, ``scribbles`` / ``points`` when given,
    ``name``, ``file_name``); a problem of that image (missing or unreadable file, a size that
    disagrees with the annotations, an unknown category id, a bad box) raises
    :class:`ValueError` naming the image, so a driver can log it and go on.
    :meth:`to_category_ids` maps a contiguous label map back to dataset ids for writing.
    """

    #: The folder the image file names are relative to (set by every subclass).
    images_dir: Path

    def __init__(
        self,
        categories: CategoryMap,
        file_names: Sequence[str],
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        if transform is not None and not callable(transform):
            raise TypeError("'transform' must be callable")
        self.categories = categories
        self.file_names: list[str] = list(file_names)
        self.names: list[str] = [os.path.splitext(f)[0] for f in self.file_names]
        seen: dict[str, str] = {}
        for f, n in zip(self.file_names, self.names):
            if n in seen:
                raise DatasetError(
                    f"images {seen[n]!r} and {f!r} have the same output name {n!r} "
                    "(file names may differ only in their extension); rename one"
                )
            seen[n] = f
        self.transform = transform
        #: index -> reason, for per-image problems found without reading the image.
        self.errors: dict[int, str] = {}

    # -- protocol ------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return self.categories.num_classes

    @property
    def class_names(self) -> list[str]:
        return list(self.categories.class_names)

    @property
    def category_ids(self) -> list[int]:
        return list(self.categories.category_ids)

    @property
    def sizes(self) -> list[tuple[int, int] | None]:
        """``(H, W)`` per index (from the annotations or the image header; ``None`` for an
        image whose header cannot be read)."""
        if getattr(self, "_sizes", None) is None:
            self._sizes = [image_size(p) for p in self.image_paths()]
        return self._sizes

    def image_paths(self) -> list[Path]:
        """Absolute image path per index."""
        return [self.images_dir / f for f in self.file_names]

    @property
    def classes(self) -> dict[int, str]:
        """``{category id: name}`` incl. ``0: "background"`` (what ``classes.json`` holds)."""
        return dict(zip(self.categories.category_ids, self.categories.class_names))

    def to_category_ids(self, labels: Any) -> np.ndarray:
        """Map a contiguous label map (``0..C``, 255) to dataset category ids (``uint8``, same
        shape); values that are no contiguous class raise :class:`ValueError`."""
        return self.categories.to_category_ids(labels)

    def from_category_ids(self, labels: Any) -> np.ndarray:
        """The inverse of :meth:`to_category_ids`: a label map in dataset ids (e.g. a written
        prediction PNG) to contiguous ids ``uint8``; unknown ids raise :class:`ValueError`."""
        arr = _to_numpy(labels, "labels")
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"'labels' must be an integer label map, got dtype {arr.dtype}")
        return self.categories.ids_to_contiguous(arr, "'labels'")

    def __len__(self) -> int:
        return len(self.file_names)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(images={len(getattr(self, 'file_names', ()))}, "
            f"classes={len(getattr(getattr(self, 'categories', None), 'category_ids', [0])) - 1}, "
            f"images_dir={str(getattr(self, 'images_dir', ''))!r})"
        )

    def _index(self, index: Any) -> int:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        n = len(self)
        i = int(index) + n if index < 0 else int(index)
        if not 0 <= i < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} images")
        return i

    def __getitem__(self, index: int) -> dict[str, Any]:  # type: ignore[override]
        i = self._index(index)
        file_name = self.file_names[i]
        if i in self.errors:
            raise ValueError(f"image {file_name!r}: {self.errors[i]}")
        try:
            sample = self._load(i)
        except ValueError as err:
            if str(err).startswith(f"image {file_name!r}"):
                raise
            raise ValueError(f"image {file_name!r}: {err}") from err
        except OSError as err:  # e.g. a missing mask file
            raise ValueError(f"image {file_name!r}: {err}") from err
        sample["name"] = self.names[i]
        sample["file_name"] = file_name
        return self.transform(sample) if self.transform is not None else sample

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]

    def _load(self, i: int) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- helpers for subclasses ------------------------------------------------------------
    def _read_image(self, i: int, expected: tuple[int, int] | None = None) -> np.ndarray:
        image = read_image(self.images_dir / self.file_names[i])
        if expected is not None and tuple(image.shape[:2]) != tuple(expected):
            raise ValueError(
                f"image {self.file_names[i]!r} is {image.shape[0]}x{image.shape[1]} (HxW) but "
                f"the annotations say {expected[0]}x{expected[1]}"
            )
        return image

    def _tags_from_ids(self, ids: Any, what: str) -> np.ndarray:
        tags = np.zeros(self.num_classes - 1, dtype=np.float32)
        ks = self.categories.ids_to_contiguous(np.asarray(list(ids), dtype=np.int64), what)
        ks = ks[(ks > 0) & (ks != IGNORE)].astype(np.int64)
        tags[ks - 1] = 1.0
        return tags


def list_images(images_dir: Path) -> list[str]:
    """Image files under ``images_dir`` (recursive, hidden files and folders skipped), as
    sorted ``/``-separated relative paths."""
    if not images_dir.is_dir():
        raise DatasetError(f"images folder not found: {images_dir}")
    out = []
    for root, dirs, files in os.walk(images_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = Path(root).relative_to(images_dir)
        for f in files:
            if f.startswith(".") or os.path.splitext(f)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            out.append((rel / f).as_posix())
    if not out:
        raise DatasetError(
            f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {images_dir}"
        )
    return sorted(out)
