"""A deterministic synthetic dataset for weakly supervised semantic segmentation.

Every image is generated from its own seed ``(seed, index)``, so image ``i`` is the same whatever
``num_images`` is, in whatever order the images are read, and on every machine.
"""

from __future__ import annotations

import colorsys
from typing import Any, Callable, Sequence

import numpy as np
from torch.utils.data import Dataset

from .._checks import check_positive
from .annotations import add_void_border, mask_to_tags, weak_labels_from_instances

#: Object shapes, one per foreground class (class ``c`` (1-based) draws ``SHAPES[(c - 1) % 10]``).
SHAPES: tuple[str, ...] = (
    "ellipse",
    "rectangle",
    "triangle",
    "star",
    "ring",
    "cross",
    "diamond",
    "hexagon",
    "crescent",
    "heart",
)
#: Object textures (class ``c`` uses ``OBJECT_TEXTURES[(c - 1) % 5]``).
OBJECT_TEXTURES: tuple[str, ...] = ("solid", "stripes", "checker", "dots", "gradient")
#: Background textures (chosen at random per image).
BACKGROUND_TEXTURES: tuple[str, ...] = ("gradient", "noise", "stripes", "checker", "blobs")

_GOLDEN = 0.6180339887498949

#: Class names of the ``difficulty="hard"`` set: real PASCAL VOC categories (class ``c``
#: (1-based) is ``HARD_CLASS_NAMES[c - 1]``, drawn as ``SHAPES[c - 1]``), ordered so that the
#: pairs related in the shipped WordNet relation (``pyg_wsss.graphs.load_class_knowledge``:
#: bicycle-motorbike, cow-horse, cow-sheep, bus-car, bus-train) fall in the same scene.
HARD_CLASS_NAMES: tuple[str, ...] = (
    "bicycle", "motorbike", "cow", "horse", "sheep", "bus", "car", "train",
)
#: Scenes of the hard set (0-based class indices): each image picks one scene and draws its
#: objects from it (probability ``1 - scene_noise``) or from all classes, so classes co-occur
#: by this known structure (the WordNet-related classes share a scene).
HARD_SCENES: tuple[tuple[int, ...], ...] = ((0, 1), (2, 3, 4), (5, 6, 7))
DIFFICULTIES: tuple[str, ...] = ("easy", "hard")


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.asarray(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32)


def _polygon(kind: str, rng: np.random.Generator) -> np.ndarray:
    """Vertices ``[K, 2]`` of ``(u, v)`` in the unit disc."""
    if kind == "triangle":
        a = np.deg2rad([90.0, 210.0, 330.0])
        return np.stack([np.cos(a), np.sin(a)], 1)
    if kind == "star":
        inner = rng.uniform(0.38, 0.5)
        a = np.pi / 2 + np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, 1.0, inner)
        return np.stack([rad * np.cos(a), rad * np.sin(a)], 1)
    if kind == "hexagon":
        a = np.arange(6) * np.pi / 3
        return np.stack([np.cos(a), np.sin(a)], 1)
    if kind == "heart":
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        pts = np.stack([x, y + 2.5], 1) / 17.0
        return pts
    raise ValueError(kind)


def _shape_mask(
    kind: str, u: np.ndarray, v: np.ndarray, rng: np.random.Generator
) -> np.ndarray | None:
    """Analytic shapes on local coordinates (``None`` for polygon shapes)."""
    if kind == "ellipse":
        a = rng.uniform(0.55, 0.9)
        return u * u + (v / a) ** 2 <= 1.0
    if kind == "rectangle":
        a = rng.uniform(0.5, 0.85)
        return (np.abs(u) <= 0.9) & (np.abs(v) <= 0.9 * a)
    if kind == "ring":
        inner = rng.uniform(0.5, 0.62)
        rr = u * u + v * v
        return (rr <= 1.0) & (rr >= inner * inner)
    if kind == "cross":
        t = rng.uniform(0.26, 0.36)
        return ((np.abs(u) <= t) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= t) & (np.abs(u) <= 1.0))
    if kind == "diamond":
        a = rng.uniform(0.55, 0.75)
        return np.abs(u) + np.abs(v) / a <= 1.0
    if kind == "crescent":
        shift = rng.uniform(0.4, 0.55)
        return (u * u + v * v <= 1.0) & ((u - shift) ** 2 + v * v > 0.72**2)
    return None


def _texture(kind: str, u: np.ndarray, v: np.ndarray, radius: float, period: float) -> np.ndarray:
    """A field in ``[0, 1]`` (0 = base colour, 1 = darkest) in object coordinates."""
    pu, pv = u * radius / period, v * radius / period
    if kind == "solid":
        return np.zeros_like(u)
    if kind == "stripes":
        return (np.sin(2 * np.pi * pu) > 0).astype(np.float32)
    if kind == "checker":
        return ((np.floor(pu) + np.floor(pv)) % 2).astype(np.float32)
    if kind == "dots":
        fu, fv = pu - np.floor(pu) - 0.5, pv - np.floor(pv) - 0.5
        return (fu * fu + fv * fv < 0.09).astype(np.float32)
    if kind == "gradient":
        return np.clip((u + 1) / 2, 0, 1).astype(np.float32)
    raise ValueError(kind)


def _hard_defaults(
    difficulty: str, num_classes: int, num_distractors: int, num_clutter: int | None,
    camouflage: float | None, scene_noise: float,
) -> tuple[bool, int, int, float]:
    """Check the difficulty settings of :class:`SyntheticWSSS`; ``(hard, num_distractors,
    num_clutter, camouflage)`` with the hard set's defaults filled in."""
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"'difficulty' must be one of {DIFFICULTIES}, got {difficulty!r}")
    hard = difficulty == "hard"
    if hard and num_distractors == 2:
        num_distractors = 6
    if hard and num_classes > len(HARD_CLASS_NAMES):
        raise ValueError(
            f"difficulty='hard' has at most {len(HARD_CLASS_NAMES)} classes, got {num_classes}"
        )
    num_clutter = (5 if hard else 0) if num_clutter is None else num_clutter
    camouflage = (0.5 if hard else 0.0) if camouflage is None else camouflage
    check_positive(num_clutter, "num_clutter", strict=False, integer=True)
    for name, val in (("camouflage", camouflage), ("scene_noise", scene_noise)):
        if not 0 <= val <= 1:
            raise ValueError(f"'{name}' must be in [0, 1], got {val!r}")
    return hard, num_distractors, num_clutter, camouflage


def _image_size(image_size: Any) -> tuple:
    """The checked ``(H, W)`` of an ``int`` or pair ``image_size`` (each at least 16)."""
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        size: tuple = (int(image_size), int(image_size))
    elif isinstance(image_size, (tuple, list)) and len(image_size) == 2:
        size = tuple(image_size)
    else:
        raise TypeError(f"'image_size' must be an int or a pair (H, W), got {image_size!r}")
    for s in size:
        check_positive(s, "image_size", integer=True)
        if s < 16:
            raise ValueError(f"'image_size' must be at least 16 pixels, got {image_size!r}")
    return size


def _check_objects(
    num_classes: int, max_objects: int, min_objects: int, object_scale: Any, min_visible: float
) -> None:
    """Check the class and object settings of :class:`SyntheticWSSS`."""
    check_positive(num_classes, "num_classes", integer=True)
    if num_classes > 254:
        raise ValueError(f"'num_classes' must be <= 254 (uint8 masks), got {num_classes}")
    check_positive(max_objects, "max_objects", integer=True)
    check_positive(min_objects, "min_objects", integer=True)
    if min_objects > max_objects:
        raise ValueError(
            f"'min_objects' ({min_objects}) must be <= 'max_objects' ({max_objects})"
        )
    if max_objects > 254:
        raise ValueError(f"'max_objects' must be <= 254, got {max_objects}")
    if (
        not isinstance(object_scale, (tuple, list))
        or len(object_scale) != 2
        or not 0 < object_scale[0] <= object_scale[1] <= 1
    ):
        raise ValueError(
            "'object_scale' must be (low, high) with 0 < low <= high <= 1, "
            f"got {object_scale!r}"
        )
    if not 0 <= min_visible <= 1:
        raise ValueError(f"'min_visible' must be in [0, 1], got {min_visible!r}")


def _check_rendering(
    noise: float, blur: float, counts: dict[str, int], scribble_width: int, seed: Any,
    transform: Any,
) -> None:
    """Check the rendering and weak-label settings of :class:`SyntheticWSSS` (``counts``:
    name -> non-negative int)."""
    check_positive(noise, "noise", strict=False)
    check_positive(blur, "blur", strict=False)
    for name, val in counts.items():
        check_positive(val, name, strict=False, integer=True)
    check_positive(scribble_width, "scribble_width", integer=True)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"'seed' must be a non-negative int, got {seed!r}")
    if transform is not None and not callable(transform):
        raise TypeError("'transform' must be callable")


def _class_specs(num_foreground: int) -> list[dict[str, Any]]:
    """Shape, hue, texture and period of each foreground class (the easy set's look)."""
    return [
        {
            "shape": SHAPES[c % len(SHAPES)],
            "hue": (c * _GOLDEN + 0.02 * (c // len(SHAPES))) % 1.0,
            "texture": OBJECT_TEXTURES[c % len(OBJECT_TEXTURES)],
            "period": 4.0 + (c % 3) * 1.5,
        }
        for c in range(num_foreground)
    ]


def _class_names(class_specs: list[dict[str, Any]]) -> list[str]:
    """The easy set's class names: the shape, ``"<shape>-<k>"`` for its ``k``-th reuse."""
    names = []
    for c, spec in enumerate(class_specs):
        extra = c // len(SHAPES)
        names.append(spec["shape"] if extra == 0 else f"{spec['shape']}-{extra + 1}")
    return names


def _hard_scenes(num_foreground: int) -> list[tuple[int, ...]]:
    """The non-empty :data:`HARD_SCENES` restricted to the first ``num_foreground`` classes
    (0-based class ids)."""
    scenes = [tuple(c for c in sc if c < num_foreground) for sc in HARD_SCENES]
    return [sc for sc in scenes if sc]


class SyntheticWSSS(Dataset):
    r"""Generated images with textured backgrounds and shape-coded object classes, plus every
    kind of weak label (tags, boxes, scribbles, points) and the ground-truth mask.

    Foreground class ``c`` (1-based) is a shape (``SHAPES[(c - 1) % 10]``: ellipse, rectangle,
    triangle, star, ring, cross, diamond, hexagon, crescent, heart), a hue (the golden-ratio
    sequence, so neighbouring classes differ strongly; classes 11+ reuse a shape with another
    hue) with per-instance jitter of hue, saturation and brightness, and a texture (solid,
    stripes, checker, dots, gradient) at a class-specific period. Each image has a random
    background texture (gradient, smooth noise, stripes, checker, blobs) in low-saturation
    colours, ``num_distractors`` thin random lines (background), ``min_objects..max_objects``
    objects of random size, position and rotation (later objects occlude earlier ones;
    placement is retried so every object keeps at least ``min_visible`` of its area),
    a slight blur and Gaussian noise.

    ``difficulty="hard"`` (default ``"easy"``, unchanged) makes colour propagation fail: class
    names are real VOC categories (:data:`HARD_CLASS_NAMES`, at most 8 classes, class ``c``
    still drawn as ``SHAPES[c - 1]``, so the shape is the only class cue); every instance has
    a random hue, texture (also noise and pattern textures) and period, and with probability
    ``camouflage`` (0.5) its colour is taken from the image's background palette; backgrounds
    are saturated textures of two colours; ``num_clutter`` (hard: 5) background blobs
    (irregular polygons in object-like colours and textures) and 6 lines clutter the image;
    objects co-occur by :data:`HARD_SCENES` (one scene per image, an object from outside the
    scene with probability ``scene_noise`` = 0.15). The easy set's images are bit-for-bit
    those of earlier versions.

    Each item is a sample dict (see :mod:`pyg_wsss.data`): ``image`` uint8 ``[H, W, 3]``,
    ``mask`` uint8 ``[H, W]``, ``tags`` float32 ``[C]`` (classes with visible pixels),
    ``boxes`` int64 ``[M, 4]`` (tight boxes of the *visible* part of each instance,
    ``(x1, y1, x2, y2)`` 0-based inclusive), ``box_labels`` int64 ``[M]``, ``scribbles``
    uint8 ``[H, W]`` (the medial line of each eroded instance + ``num_background_scribbles``
    background strokes; 255 elsewhere), ``points`` int64 ``[P, 3]`` (one interior point per
    instance, then ``num_background_points`` background points; ``(row, col, class)``),
    ``instances`` uint8 ``[H, W]`` (``k`` = the instance of ``boxes[k - 1]``, 0 = none) and
    ``name``.

    Args:
        num_images: Number of images (``0`` gives an empty dataset).
        image_size: ``int`` or ``(H, W)``, each at least 16.
        num_classes: Number of *foreground* classes ``C`` (1..254); ``.num_classes`` is ``C + 1``.
        max_objects: Maximal number of objects per image.
        seed: Base seed; image ``i`` uses ``numpy.random.default_rng([seed, i])``.
        min_objects: Minimal number of objects per image (``1 <= min_objects <= max_objects``).
        object_scale: ``(low, high)``: object diameters as fractions of the shorter side.
        min_visible: Fraction of each object's area that must stay visible (placement retries).
        occlusion: If ``False``, objects do not overlap (objects that do not fit are dropped).
        noise: Standard deviation of the Gaussian pixel noise (intensities in ``[0, 1]``).
        blur: Sigma (pixels) of a Gaussian blur applied before the noise (``0``: none).
        num_distractors: Thin background lines per image.
        num_background_scribbles: Background scribble strokes per image.
        num_background_points: Background points per image.
        scribble_width: Scribble thickness in pixels.
        void_border: Width of a VOC-like void band (255) along object boundaries in ``mask``
            (``0``: none, the default).
        cache: Keep generated samples in memory (items are returned as copies).
        transform: Optional callable applied to each sample dict.
        difficulty: ``"easy"`` (flat-coloured class hues, the smoke-test set) or ``"hard"``.
        num_clutter: Background clutter blobs per image (default: 0 easy, 5 hard).
        camouflage: Probability that an instance takes the background's colours (default: 0
            easy, 0.5 hard).
        scene_noise: Hard set: probability that an object ignores the image's scene (0.15).
    """

    def __init__(
        self,
        num_images: int = 64,
        image_size: int | Sequence[int] = 128,
        num_classes: int = 5,
        max_objects: int = 3,
        seed: int = 0,
        *,
        min_objects: int = 1,
        object_scale: tuple[float, float] = (0.3, 0.6),
        min_visible: float = 0.4,
        occlusion: bool = True,
        noise: float = 0.03,
        blur: float = 0.6,
        num_distractors: int = 2,
        num_background_scribbles: int = 2,
        num_background_points: int = 3,
        scribble_width: int = 1,
        void_border: int = 0,
        cache: bool = True,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        difficulty: str = "easy",
        num_clutter: int | None = None,
        camouflage: float | None = None,
        scene_noise: float = 0.15,
    ) -> None:
        """See the class docstring.

        Many parameters because: each is one documented knob of the generator (image size,
        object count and scale, occlusion, noise, blur, weak-label density, difficulty, ...)
        that users set by keyword (all but the first five are keyword-only); they are kept
        flat so that ``SyntheticWSSS(num_images=8, difficulty="hard")`` keeps working.
        """
        hard, num_distractors, num_clutter, camouflage = _hard_defaults(
            difficulty, num_classes, num_distractors, num_clutter, camouflage, scene_noise
        )
        self.difficulty = difficulty
        self.num_clutter = int(num_clutter)
        self.camouflage = float(camouflage)
        self.scene_noise = float(scene_noise)
        check_positive(num_images, "num_images", strict=False, integer=True)
        size = _image_size(image_size)
        _check_objects(num_classes, max_objects, min_objects, object_scale, min_visible)
        _check_rendering(noise, blur, {
            "num_distractors": num_distractors,
            "num_background_scribbles": num_background_scribbles,
            "num_background_points": num_background_points,
            "void_border": void_border,
        }, scribble_width, seed, transform)

        self.num_images = int(num_images)
        self.image_size: tuple[int, int] = (int(size[0]), int(size[1]))
        self.num_foreground = int(num_classes)
        self.num_classes = int(num_classes) + 1
        self.max_objects = int(max_objects)
        self.min_objects = int(min_objects)
        self.seed = int(seed)
        self.object_scale = (float(object_scale[0]), float(object_scale[1]))
        self.min_visible = float(min_visible)
        self.occlusion = bool(occlusion)
        self.noise = float(noise)
        self.blur = float(blur)
        self.num_distractors = int(num_distractors)
        self.num_background_scribbles = int(num_background_scribbles)
        self.num_background_points = int(num_background_points)
        self.scribble_width = int(scribble_width)
        self.void_border = int(void_border)
        self.cache = bool(cache)
        self.transform = transform
        self._cache: dict[int, dict[str, Any]] = {}

        #: Per foreground class (0-based list index = class id - 1): shape, hue, texture, period.
        self.class_specs: list[dict[str, Any]] = _class_specs(self.num_foreground)
        names = _class_names(self.class_specs)
        self.scenes: list[tuple[int, ...]] = []
        if hard:
            names = list(HARD_CLASS_NAMES[: self.num_foreground])
            self.scenes = _hard_scenes(self.num_foreground)
        self.class_names: list[str] = ["background", *names]
        h, w = self.image_size
        self._yy, self._xx = np.mgrid[0:h, 0:w].astype(np.float32)

    # ------------------------------------------------------------------ dataset protocol
    def __len__(self) -> int:
        return self.num_images

    def _index(self, index: Any) -> int:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        n = self.num_images
        if n == 0:
            raise IndexError("index into an empty SyntheticWSSS dataset (num_images=0)")
        i = int(index) + n if index < 0 else int(index)
        if not 0 <= i < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} images")
        return i

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = self._index(index)
        sample = self._cache.get(i)
        if sample is None:
            sample = self.generate(i)
            if self.cache:
                self._cache[i] = sample
        out = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in sample.items()}
        return self.transform(out) if self.transform is not None else out

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        h, w = self.image_size
        return (
            f"{type(self).__name__}(num_images={self.num_images}, image_size=({h}, {w}), "
            f"num_classes={self.num_foreground}, max_objects={self.max_objects}, seed={self.seed}"
            + (f", difficulty={self.difficulty!r})" if self.difficulty != "easy" else ")")
        )

    # ------------------------------------------------------------------ generation
    def _background(self, rng: np.random.Generator) -> np.ndarray:
        import cv2

        h, w = self.image_size
        kind = BACKGROUND_TEXTURES[int(rng.integers(len(BACKGROUND_TEXTURES)))]
        c1 = _hsv(rng.uniform(), rng.uniform(0.05, 0.45), rng.uniform(0.3, 0.95))
        c2 = _hsv(rng.uniform(), rng.uniform(0.05, 0.45), rng.uniform(0.3, 0.95))
        yy, xx = self._yy, self._xx
        angle = rng.uniform(0, np.pi)
        proj = xx * np.cos(angle) + yy * np.sin(angle)
        if kind == "gradient":
            t = (proj - proj.min()) / max(float(np.ptp(proj)), 1e-6)
        elif kind == "stripes":
            period = rng.uniform(6, 20)
            t = 0.5 + 0.5 * np.sin(2 * np.pi * proj / period)
        elif kind == "checker":
            period = rng.uniform(8, 24)
            t = ((np.floor(xx / period) + np.floor(yy / period)) % 2) * 0.8 + 0.1
        else:  # smooth noise or blobs: low-resolution noise, upsampled
            cells = int(rng.integers(3, 9))
            small = rng.uniform(size=(cells, cells)).astype(np.float32)
            t = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
            t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
            if kind == "blobs":
                t = 1.0 / (1.0 + np.exp(-12.0 * (t - 0.5)))
        t = t.astype(np.float32)[..., None]
        return c1 * (1 - t) + c2 * t

    def _draw_distractors(self, image: np.ndarray, rng: np.random.Generator) -> None:
        import cv2

        h, w = self.image_size
        for _ in range(self.num_distractors):
            colour = _hsv(rng.uniform(), rng.uniform(0.0, 0.5), rng.uniform(0.2, 1.0))
            p1 = (int(rng.integers(w)), int(rng.integers(h)))
            p2 = (int(rng.integers(w)), int(rng.integers(h)))
            cv2.line(image, p1, p2, tuple(float(c) for c in colour), int(rng.integers(1, 3)))

    def _object(
        self, cls: int, rng: np.random.Generator, palette: list[np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mask ``[H, W]`` and colour image ``[H, W, 3]`` of one instance of class ``cls``."""
        from skimage.draw import polygon2mask

        h, w = self.image_size
        spec = self.class_specs[cls - 1]
        short = min(h, w)
        radius = rng.uniform(*self.object_scale) * short / 2
        radius = max(radius, 4.0)
        margin = 0.6 * radius
        cy = rng.uniform(min(margin, h / 2), max(h - margin, h / 2))
        cx = rng.uniform(min(margin, w / 2), max(w - margin, w / 2))
        theta = rng.uniform(0, 2 * np.pi)
        cos, sin = np.cos(theta), np.sin(theta)
        dx, dy = self._xx - cx, self._yy - cy
        u = (dx * cos + dy * sin) / radius
        v = (-dx * sin + dy * cos) / radius
        kind = spec["shape"]
        mask = _shape_mask(kind, u, v, rng)
        if mask is None:
            verts = _polygon(kind, rng)
            xs = cx + radius * (verts[:, 0] * cos - verts[:, 1] * sin)
            ys = cy + radius * (verts[:, 0] * sin + verts[:, 1] * cos)
            mask = polygon2mask((h, w), np.stack([ys, xs], 1))
        if palette is not None:  # hard set: colour and texture say nothing about the class
            return mask, self._hard_colour(rng, palette, u, v, radius)
        hue = spec["hue"] + rng.uniform(-0.035, 0.035)
        base = _hsv(hue, rng.uniform(0.6, 0.95), rng.uniform(0.55, 0.95))
        tex = _texture(spec["texture"], u, v, radius, spec["period"])
        strength = rng.uniform(0.3, 0.45)
        colour = base[None, None, :] * (1 - strength * tex[..., None])
        return mask, colour

    def _background_hard(self, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
        """A saturated two-colour background texture and its palette (for camouflage)."""
        import cv2

        h, w = self.image_size
        kind = BACKGROUND_TEXTURES[int(rng.integers(len(BACKGROUND_TEXTURES)))]
        c1 = _hsv(rng.uniform(), rng.uniform(0.3, 0.9), rng.uniform(0.45, 0.95))
        c2 = _hsv(rng.uniform(), rng.uniform(0.3, 0.9), rng.uniform(0.45, 0.95))
        yy, xx = self._yy, self._xx
        angle = rng.uniform(0, np.pi)
        proj = xx * np.cos(angle) + yy * np.sin(angle)
        if kind == "gradient":
            t = (proj - proj.min()) / max(float(np.ptp(proj)), 1e-6)
        elif kind == "stripes":
            t = 0.5 + 0.5 * np.sin(2 * np.pi * proj / rng.uniform(3, 10))
        elif kind == "checker":
            period = rng.uniform(3, 10)
            t = ((np.floor(xx / period) + np.floor(yy / period)) % 2) * 0.8 + 0.1
        else:
            cells = int(rng.integers(6, 16))
            small = rng.uniform(size=(cells, cells)).astype(np.float32)
            t = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
            t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
            if kind == "blobs":
                t = 1.0 / (1.0 + np.exp(-12.0 * (t - 0.5)))
        t = t.astype(np.float32)[..., None]
        return c1 * (1 - t) + c2 * t, [c1, c2]

    def _hard_colour(
        self, rng: np.random.Generator, palette: list[np.ndarray], u: np.ndarray,
        v: np.ndarray, radius: float,
    ) -> np.ndarray:
        """Colour image of one hard-set instance (or clutter blob): random or camouflaged base
        colour, random texture and period."""
        if rng.uniform() < self.camouflage:
            base = palette[int(rng.integers(len(palette)))] * rng.uniform(0.85, 1.15)
            base = np.clip(base + rng.normal(0, 0.04, 3), 0, 1).astype(np.float32)
        else:
            base = _hsv(rng.uniform(), rng.uniform(0.3, 0.95), rng.uniform(0.45, 0.95))
        kind = OBJECT_TEXTURES[int(rng.integers(len(OBJECT_TEXTURES)))]
        tex = _texture(kind, u, v, radius, rng.uniform(2.5, 7.0))
        if rng.uniform() < 0.3:  # pixel-noise texture
            tex = np.clip(tex + rng.uniform(0, 1, u.shape).astype(np.float32), 0, 1)
        strength = rng.uniform(0.3, 0.6)
        return (base[None, None, :] * (1 - strength * tex[..., None])).astype(np.float32)

    def _draw_clutter(
        self, image: np.ndarray, rng: np.random.Generator, palette: list[np.ndarray]
    ) -> None:
        """Irregular background blobs in object-like colours and textures."""
        from skimage.draw import polygon2mask

        h, w = self.image_size
        short = min(h, w)
        for _ in range(self.num_clutter):
            radius = max(rng.uniform(0.08, 0.25) * short, 3.0)
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            k = int(rng.integers(5, 10))
            a = np.sort(rng.uniform(0, 2 * np.pi, k))
            rad = radius * rng.uniform(0.4, 1.0, k)
            verts = np.stack([cy + rad * np.sin(a), cx + rad * np.cos(a)], 1)
            blob = polygon2mask((h, w), verts)
            u = (self._xx - cx) / radius
            v = (self._yy - cy) / radius
            colour = self._hard_colour(rng, palette, u, v, radius)
            image[blob] = colour[blob]

    def _pick_class(self, rng: np.random.Generator, scene: tuple[int, ...] | None) -> int:
        if scene is None or rng.uniform() < self.scene_noise:
            return int(rng.integers(1, self.num_foreground + 1))
        return int(scene[int(rng.integers(len(scene)))]) + 1

    def _place_object(
        self, cls: int, rng: np.random.Generator, palette: list[np.ndarray] | None,
        inst: np.ndarray, areas: list[int],
    ) -> tuple[np.ndarray, np.ndarray, int] | None:
        """``(mask, colour, area)`` of a new instance of class ``cls`` that leaves every
        earlier instance (``inst``: 1..len(areas), their full ``areas``) ``min_visible`` of
        its area (and, without occlusion, overlaps none); ``None`` after 12 failed tries."""
        count = len(areas)
        for _ in range(12):
            obj, colour = self._object(cls, rng, palette)
            area = int(obj.sum())
            if area < 12:
                continue
            if not self.occlusion and (inst[obj] > 0).any():
                continue
            if count:
                covered = np.bincount(inst[obj], minlength=count + 1)[1:]
                visible = np.bincount(inst.ravel(), minlength=count + 1)[1:]
                if not np.all(visible - covered >= self.min_visible * np.asarray(areas)):
                    continue
            return obj, colour, area
        return None

    def _blur_and_noise(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The ``uint8`` image of the float image ``image`` after blur and pixel noise."""
        import cv2

        if self.blur > 0:
            image = cv2.GaussianBlur(image, (0, 0), self.blur)
        if self.noise > 0:
            image = image + rng.normal(0.0, self.noise, size=image.shape).astype(np.float32)
        return np.clip(np.round(image * 255), 0, 255).astype(np.uint8)

    def generate(self, index: int) -> dict[str, Any]:
        """Generate sample ``index`` (no caching, no transform)."""
        if not 0 <= index:
            raise IndexError(f"index must be >= 0, got {index}")
        rng = np.random.default_rng([self.seed, int(index)])
        h, w = self.image_size
        hard = self.difficulty == "hard"
        palette: list[np.ndarray] = []
        scene = None
        if hard:
            background, palette = self._background_hard(rng)
            image = np.ascontiguousarray(background)
            self._draw_clutter(image, rng, palette)
            scene = self.scenes[int(rng.integers(len(self.scenes)))]
        else:
            image = np.ascontiguousarray(self._background(rng))
        self._draw_distractors(image, rng)
        mask = np.zeros((h, w), dtype=np.uint8)
        inst = np.zeros((h, w), dtype=np.uint8)
        areas: list[int] = []
        n = int(rng.integers(self.min_objects, self.max_objects + 1))
        count = 0
        for _ in range(n):
            cls = self._pick_class(rng, scene) if hard else int(
                rng.integers(1, self.num_foreground + 1)
            )
            placed = self._place_object(cls, rng, palette if hard else None, inst, areas)
            if placed is None:
                continue
            obj, colour, area = placed
            count += 1
            areas.append(area)
            image[obj] = colour[obj]
            mask[obj] = cls
            inst[obj] = count
        image = self._blur_and_noise(image, rng)
        # renumber the visible instances 1..M (an object can only vanish if min_visible = 0)
        present = np.unique(inst)
        present = present[present > 0]
        remap = np.zeros(256, dtype=np.uint8)
        remap[present] = np.arange(1, len(present) + 1, dtype=np.uint8)
        inst = remap[inst]
        weak = weak_labels_from_instances(
            mask,
            inst,
            rng,
            num_background_scribbles=self.num_background_scribbles,
            num_background_points=self.num_background_points,
            scribble_width=self.scribble_width,
        )
        tags = mask_to_tags(mask, self.num_classes)
        if self.void_border:
            mask = add_void_border(mask, self.void_border)
        return {
            "image": image,
            "mask": mask,
            "tags": tags,
            **weak,  # boxes, box_labels, scribbles, points
            "instances": inst,
            "name": f"synthetic{'-hard' if hard else ''}_{self.seed}_{index:05d}",
        }
