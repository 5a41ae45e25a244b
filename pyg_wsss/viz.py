"""Visualisation: the PASCAL VOC palette, colourised label maps, CAM heat maps, overlays and
PNG figure grids. Only numpy, OpenCV and PIL are needed (matplotlib is not)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ._checks import as_rgb_image, check_fraction

#: The colour the VOC palette gives the void label 255 (light beige).
VOC_VOID_COLOR: tuple[int, int, int] = (224, 224, 192)

#: Colormap names accepted by :func:`cam_to_heatmap` (OpenCV colormaps).
COLORMAPS: tuple[str, ...] = (
    "jet",
    "turbo",
    "viridis",
    "inferno",
    "magma",
    "plasma",
    "hot",
    "bone",
    "parula",
    "rainbow",
)


def _to_numpy(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    raise TypeError(f"'{name}' must be a numpy array or torch.Tensor, got {type(x).__name__}")


def _check_color(color: Any, name: str) -> np.ndarray:
    arr = np.asarray(color)
    if (
        arr.shape != (3,)
        or not np.issubdtype(arr.dtype, np.number)
        or not np.isfinite(arr).all()
        or (arr < 0).any()
        or (arr > 255).any()
    ):
        raise ValueError(
            f"'{name}' must be an (R, G, B) triple of values in [0, 255], got {color!r}"
        )
    return arr.astype(np.uint8)


def voc_palette(
    num_colors: int = 256, void_color: Sequence[int] | None = VOC_VOID_COLOR
) -> np.ndarray:
    """The PASCAL VOC colour map: colour ``i`` spreads the bits of ``i`` over R, G and B from
    the most significant bit down (bit ``3k`` -> R bit ``7 - k``, ``3k + 1`` -> G, ``3k + 2``
    -> B). Class 0 is black, 1 (aeroplane) is (128, 0, 0), 15 (person) is (192, 128, 128).

    Args:
        num_colors: Palette length (at most 256).
        void_color: Colour of index 255 (default the VOC void colour (224, 224, 192), which is
            the palette's own entry; e.g. ``(255, 255, 255)`` for white). ``None`` keeps it.

    Returns:
        ``uint8 [num_colors, 3]``.
    """
    if isinstance(num_colors, bool) or not isinstance(num_colors, (int, np.integer)):
        raise TypeError(f"'num_colors' must be an int, got {num_colors!r}")
    if not 1 <= num_colors <= 256:
        raise ValueError(f"'num_colors' must be in [1, 256], got {num_colors}")
    idx = np.arange(num_colors)
    pal = np.zeros((num_colors, 3), dtype=np.int64)
    for k in range(8):
        for ch in range(3):
            pal[:, ch] |= ((idx >> (3 * k + ch)) & 1) << (7 - k)
    pal = pal.astype(np.uint8)
    if void_color is not None and num_colors == 256:
        pal[255] = _check_color(void_color, "void_color")
    return pal


def colorize_labels(
    labels: Any,
    palette: np.ndarray | None = None,
    void_color: Sequence[int] | None = VOC_VOID_COLOR,
) -> np.ndarray:
    """Colour an integer label map ``[H, W]`` (values ``0..255``; 255 = void/unlabelled) with
    the VOC palette (or ``palette [K, 3]``). Returns ``uint8 [H, W, 3]`` RGB."""
    arr = _to_numpy(labels, "labels")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"'labels' must be an integer label map, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"'labels' must have shape [H, W], got {arr.shape}")
    if palette is None:
        palette = voc_palette(256, void_color)
    else:
        palette = np.asarray(palette)
        if palette.ndim != 2 or palette.shape[1] != 3:
            raise ValueError(f"'palette' must have shape [K, 3], got {palette.shape}")
        if not np.issubdtype(palette.dtype, np.number) or palette.dtype == bool:
            raise TypeError(f"'palette' must hold numbers, got {palette.dtype}")
        if not np.isfinite(palette).all():
            raise ValueError("'palette' contains NaN or infinite values")
        palette = np.clip(palette, 0, 255).astype(np.uint8)
    if arr.size and (arr.min() < 0 or arr.max() >= len(palette)):
        raise ValueError(
            f"'labels' has values outside [0, {len(palette) - 1}]: "
            f"[{int(arr.min())}, {int(arr.max())}]"
        )
    return palette[arr.astype(np.int64)]


def _colormap_id(name: str) -> int:
    import cv2

    if name not in COLORMAPS:
        raise ValueError(f"'colormap' must be one of {COLORMAPS}, got {name!r}")
    return getattr(cv2, f"COLORMAP_{name.upper()}")


def cam_to_heatmap(cam: Any, colormap: str = "jet", normalize: bool = False) -> np.ndarray:
    """Colour a single activation map ``[H, W]`` (values in ``[0, 1]``) with an OpenCV
    colormap. Returns ``uint8 [H, W, 3]`` RGB.

    Args:
        cam: ``[H, W]`` float map (numpy or torch).
        colormap: One of :data:`COLORMAPS`.
        normalize: Min-max scale the map to ``[0, 1]`` first (otherwise values outside
            ``[0, 1]`` raise).
    """
    import cv2

    arr = _to_numpy(cam, "cam")
    if arr.ndim != 2:
        raise ValueError(f"'cam' must have shape [H, W], got {arr.shape}")
    if arr.size == 0:
        raise ValueError("'cam' is empty")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"'cam' must be a real-valued map, got {arr.dtype}")
    if not isinstance(normalize, (bool, np.bool_)):
        raise TypeError(f"'normalize' must be a bool, got {normalize!r}")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise ValueError("'cam' contains NaN or infinite values")
    if normalize:
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    elif arr.min() < -1e-6 or arr.max() > 1 + 1e-6:
        raise ValueError(
            f"'cam' values must be in [0, 1] (got [{arr.min():.3g}, {arr.max():.3g}]); "
            "pass normalize=True to rescale"
        )
    grey = np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)
    bgr = cv2.applyColorMap(grey, _colormap_id(colormap))
    return np.ascontiguousarray(bgr[..., ::-1])


def _resize(arr: np.ndarray, hw: tuple[int, int], nearest: bool) -> np.ndarray:
    import cv2

    if arr.shape[:2] == hw:
        return arr
    if nearest:
        interp = cv2.INTER_NEAREST
    elif hw[0] < arr.shape[0] and hw[1] < arr.shape[1]:
        interp = cv2.INTER_AREA  # shrinking: no aliasing
    else:
        interp = cv2.INTER_LINEAR
    return cv2.resize(arr, (hw[1], hw[0]), interpolation=interp)


def overlay_cam(
    image: Any,
    cam: Any,
    alpha: float = 0.5,
    colormap: str = "jet",
    normalize: bool = False,
) -> np.ndarray:
    """Blend a CAM heat map over an RGB image: ``(1 - alpha) image + alpha heatmap``.

    Args:
        image: ``[H, W, 3]`` RGB (uint8 or float in ``[0, 1]``; or a ``[3, H, W]`` tensor).
        cam: ``[h, w]`` map in ``[0, 1]``, or ``[C, h, w]`` (the maximum over the classes is
            shown). Resized bilinearly to the image size if needed.
        alpha: Heat-map weight in ``[0, 1]``.
        colormap, normalize: As in :func:`cam_to_heatmap`.

    Returns:
        ``uint8 [H, W, 3]``.
    """
    img = as_rgb_image(image)
    check_fraction(alpha, "alpha")
    arr = _to_numpy(cam, "cam")
    if arr.ndim == 3:
        if arr.shape[0] == 0:
            arr = np.zeros(arr.shape[1:], dtype=np.float32)
        else:
            arr = arr.max(0)
    if arr.ndim != 2:
        raise ValueError(
            f"'cam' must have shape [H, W] or [C, H, W], got {_to_numpy(cam, 'cam').shape}"
        )
    heat = cam_to_heatmap(arr, colormap, normalize)
    heat = _resize(heat, img.shape[:2], nearest=False)
    out = (1 - alpha) * img.astype(np.float32) + alpha * heat.astype(np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def overlay_labels(
    image: Any,
    labels: Any,
    alpha: float = 0.5,
    palette: np.ndarray | None = None,
    ignore_index: int | None = 255,
    background: bool = True,
) -> np.ndarray:
    """Blend colourised labels over an RGB image. Pixels equal to ``ignore_index`` (e.g.
    unlabelled pixels of scribbles or pseudo-labels) keep the image; with ``background=False``
    label 0 does too.

    Returns:
        ``uint8 [H, W, 3]``.
    """
    img = as_rgb_image(image)
    check_fraction(alpha, "alpha")
    if ignore_index is not None and (
        isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer))
    ):
        raise TypeError(f"'ignore_index' must be an int or None, got {ignore_index!r}")
    lab = _to_numpy(labels, "labels")
    if lab.ndim != 2 or lab.shape != img.shape[:2]:
        raise ValueError(f"'labels' must have shape {img.shape[:2]} (the image's), got {lab.shape}")
    colour = colorize_labels(lab, palette)
    out = img.astype(np.float32)
    sel = np.ones(lab.shape, dtype=bool)
    if ignore_index is not None:
        sel &= lab != ignore_index
    if not background:
        sel &= lab != 0
    out[sel] = (1 - alpha) * out[sel] + alpha * colour[sel].astype(np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _cell_to_rgb(cell: Any, where: str) -> tuple[np.ndarray, bool] | None:
    """``(rgb, is_label_map)`` of a grid cell (label maps are resized with nearest neighbour)."""
    if cell is None:
        return None
    arr = _to_numpy(cell, where)
    if (
        arr.ndim == 3
        and arr.shape[0] == 3
        and arr.shape[-1] != 3
        and isinstance(cell, torch.Tensor)
    ):
        arr = arr.transpose(1, 2, 0)
    if arr.ndim == 3:
        return as_rgb_image(arr, where), False
    if arr.ndim == 2:
        if arr.dtype == bool:
            return colorize_labels(arr.astype(np.uint8)), True
        if np.issubdtype(arr.dtype, np.integer):
            return colorize_labels(arr), True
        return cam_to_heatmap(arr), False
    raise ValueError(
        f"{where} must be an RGB image [H, W, 3], a label map or a heat map [H, W], "
        f"got shape {arr.shape}"
    )


def _put_text(canvas: np.ndarray, text: str, x: int, y: int, width: int, height: int) -> None:
    """Write ``text`` centred in the box ``(x, y, width, height)``, shrunk/truncated to fit."""
    import cv2

    if not text:
        return
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = max(0.3, min(0.5, height / 36))
    text = str(text)
    while True:
        (tw, th), _ = cv2.getTextSize(text, font, scale, 1)
        if tw <= width - 4 or len(text) <= 2:
            break
        if scale > 0.31:
            scale -= 0.05
        else:
            text = text[:-2] + "."
    tx = x + max((width - tw) // 2, 1)
    ty = y + (height + th) // 2
    cv2.putText(canvas, text, (tx, ty), font, scale, (0, 0, 0), 1, cv2.LINE_AA)


def _grid_cells(rows: Sequence[Sequence[Any]]) -> list[list[tuple[np.ndarray, bool] | None]]:
    """``rows`` checked and converted: each cell as ``(uint8 RGB, is_label)`` or ``None``."""
    if isinstance(rows, (np.ndarray, torch.Tensor)) or not isinstance(rows, (list, tuple)):
        raise TypeError("'rows' must be a list of rows (each a list of images)")
    if len(rows) == 0:
        raise ValueError("'rows' is empty: nothing to draw")
    grid: list[list[tuple[np.ndarray, bool] | None]] = []
    for r, row in enumerate(rows):
        if isinstance(row, (np.ndarray, torch.Tensor)) or not isinstance(row, (list, tuple)):
            raise TypeError(f"rows[{r}] must be a list of images, got {type(row).__name__}")
        grid.append([_cell_to_rgb(cell, f"rows[{r}][{c}]") for c, cell in enumerate(row)])
    if max(len(row) for row in grid) == 0:
        raise ValueError("every row of 'rows' is empty: nothing to draw")
    return grid


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _grid_cell_size(cell_size: int | tuple[int, int] | None,
                    cells: list[np.ndarray]) -> tuple[int, int]:
    """``(height, width)`` of a grid cell: ``cell_size`` checked, or the largest cell."""
    if cell_size is None:
        ch = max((c.shape[0] for c in cells), default=64)
        cw = max((c.shape[1] for c in cells), default=64)
    elif _is_int(cell_size):
        ch = cw = int(cell_size)  # type: ignore[arg-type]  # an int (checked)
    elif isinstance(cell_size, (tuple, list)) and len(cell_size) == 2 and all(
        map(_is_int, cell_size)
    ):
        ch, cw = (int(s) for s in cell_size)
    else:
        raise TypeError(f"'cell_size' must be an int or (height, width) ints, got {cell_size!r}")
    if ch <= 0 or cw <= 0:
        raise ValueError(f"'cell_size' must be positive, got {cell_size!r}")
    return ch, cw


def _grid_titles(
    titles: Sequence[str] | Sequence[Sequence[str]] | None,
    row_titles: Sequence[str] | None,
    col_titles: Sequence[str] | None,
    nrows: int,
    ncols: int,
) -> tuple[list[list[str]] | None, list[str] | None]:
    """``(per-cell captions, column titles)`` from the three title arguments (checked)."""
    for name, value in (("titles", titles), ("row_titles", row_titles),
                        ("col_titles", col_titles)):
        if value is not None and (isinstance(value, str) or not isinstance(value, (list, tuple))):
            raise TypeError(f"'{name}' must be a list of strings, got {value!r}")
    cell_titles: list[list[str]] | None = None
    if titles is not None:
        if len(titles) and all(isinstance(t, (list, tuple)) for t in titles):
            cell_titles = [list(map(str, t)) for t in titles]  # type: ignore[arg-type]
            if len(cell_titles) != nrows:
                raise ValueError(
                    f"per-cell 'titles' need one list per row ({nrows}), got {len(cell_titles)}"
                )
        elif col_titles is not None:
            raise ValueError("give column titles either as 'titles' or as 'col_titles', not both")
        else:
            col_titles = [str(t) for t in titles]  # type: ignore[union-attr]
    if col_titles is not None and len(col_titles) > ncols:
        raise ValueError(f"{len(col_titles)} column titles for {ncols} columns")
    if row_titles is not None and len(row_titles) != nrows:
        raise ValueError(f"'row_titles': {len(row_titles)} row titles for {nrows} rows")
    return cell_titles, None if col_titles is None else list(col_titles)


def _paste_fitted(canvas: np.ndarray, cell: tuple[np.ndarray, bool], y: int, x: int,
                  ch: int, cw: int) -> None:
    """Draw ``cell`` scaled to fit ``ch x cw`` (aspect kept), centred at ``(y, x)``."""
    img, is_label = cell
    s = min(ch / img.shape[0], cw / img.shape[1])
    hh, ww = max(1, round(img.shape[0] * s)), max(1, round(img.shape[1] * s))
    small = _resize(img, (hh, ww), nearest=is_label)
    oy, ox = y + (ch - hh) // 2, x + (cw - ww) // 2
    canvas[oy : oy + hh, ox : ox + ww] = small


def make_grid(
    rows: Sequence[Sequence[Any]],
    titles: Sequence[str] | Sequence[Sequence[str]] | None = None,
    row_titles: Sequence[str] | None = None,
    col_titles: Sequence[str] | None = None,
    cell_size: int | tuple[int, int] | None = None,
    pad: int = 4,
) -> np.ndarray:
    """Arrange images side by side in a grid (e.g. image | CAM | pseudo-label | ground truth
    per row). See :func:`save_grid`. Returns the ``uint8 [H, W, 3]`` canvas."""
    grid = _grid_cells(rows)
    ncols = max(len(row) for row in grid)
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)):
        raise TypeError(f"'pad' must be an int, got {pad!r}")
    if pad < 0:
        raise ValueError(f"'pad' must be >= 0, got {pad}")
    ch, cw = _grid_cell_size(cell_size, [c[0] for row in grid for c in row if c is not None])
    cell_titles, col_titles = _grid_titles(titles, row_titles, col_titles, len(grid), ncols)
    text_h = 18
    head = text_h if col_titles else 0
    caption = text_h if cell_titles else 0
    left = 90 if row_titles else 0
    height = head + len(grid) * (ch + caption + pad) + pad
    width = left + ncols * (cw + pad) + pad
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    for c, t in enumerate(col_titles or []):
        _put_text(canvas, t, left + pad + c * (cw + pad), 0, cw, text_h)
    for r, row in enumerate(grid):
        y = head + pad + r * (ch + caption + pad)
        if row_titles:
            _put_text(canvas, str(row_titles[r]), 0, y, left, ch)
        for c, cell in enumerate(row):
            x = left + pad + c * (cw + pad)
            if cell is not None:
                _paste_fitted(canvas, cell, y, x, ch, cw)
            if cell_titles and c < len(cell_titles[r]):
                _put_text(canvas, cell_titles[r][c], x, y + ch, cw, caption)
    return canvas


def save_grid(
    rows: Sequence[Sequence[Any]],
    path: str | Path,
    titles: Sequence[str] | Sequence[Sequence[str]] | None = None,
    row_titles: Sequence[str] | None = None,
    col_titles: Sequence[str] | None = None,
    cell_size: int | tuple[int, int] | None = None,
    pad: int = 4,
) -> Path:
    """Save a side-by-side grid of images as a PNG.

    Args:
        rows: A list of rows, each a list of cells. A cell is an RGB image ``[H, W, 3]``
            (uint8, or float in ``[0, 1]``), an integer label map ``[H, W]`` (drawn with the
            VOC palette), a float map ``[H, W]`` in ``[0, 1]`` (drawn as a jet heat map) or
            ``None`` (blank). Cells are scaled to fit ``cell_size`` (default: the largest
            cell), keeping their aspect ratio. Rows may have different lengths.
        path: Output PNG path (parent folders are created).
        titles: Column titles (one string per column, drawn above the first row), or one
            list of captions per row (drawn under each cell).
        row_titles: One label per row, drawn on the left.
        col_titles: Column titles (alternative to a flat ``titles``).
        cell_size: ``int`` or ``(height, width)`` of each cell.
        pad: Pixels between cells.

    Returns:
        The written path.
    """
    from PIL import Image

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"'path' must be a str or Path, got {type(path).__name__}")
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"'path' must end in .png, got {str(path)!r}")
    canvas = make_grid(rows, titles, row_titles, col_titles, cell_size, pad)
    if path.suffix.lower() != ".png":
        raise ValueError(f"'path' must end in .png, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path)
    return path
