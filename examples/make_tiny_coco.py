"""Write a tiny COCO-style dataset to try the ``pyg-wsss`` command on (and to test it).

``python examples/make_tiny_coco.py data/`` writes, for four 48x64 synthetic photos (PNG and
JPEG, in sub-folders; one image without any annotation; one crowd region):

* ``data/images/{a/img0.png, a/img1.jpg, b/img2.png, img3.jpg}``
* ``data/instances.json``: COCO instances with non-contiguous category ids
  (3 = cat, 17 = dog, 40 = bird; bird is never annotated), integer ``bbox`` es and polygon
  ``segmentation`` s;
* ``data/masks/<same names>.png``: the ground truth as grey label PNGs holding the category
  ids (0 = background, 255 = void where the crowd region is).

Everything is drawn with a fixed seed, so the files are the same on every run.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

H, W = 48, 64
CATEGORIES = [{"id": 3, "name": "cat"}, {"id": 17, "name": "dog"}, {"id": 40, "name": "bird"}]
COLOURS = {3: (200, 60, 50), 17: (40, 80, 210)}

#: file_name -> list of (category id, polygon [(x, y), ...], iscrowd)
OBJECTS: dict[str, list[tuple[int, list[tuple[int, int]], int]]] = {
    "a/img0.png": [(3, [(6, 40), (30, 6), (44, 40)], 0),
                   (17, [(34, 24), (56, 22), (58, 42), (36, 44)], 0)],
    "a/img1.jpg": [(17, [(12, 10), (40, 8), (50, 26), (30, 42), (10, 30)], 0)],
    "b/img2.png": [(3, [(20, 12), (52, 12), (52, 40), (20, 40)], 0),
                   (17, [(2, 30), (14, 30), (14, 46), (2, 46)], 1)],
    "img3.jpg": [],
}


def draw(root: Path, seed: int = 0) -> dict:
    """Write the images, masks and COCO JSON under ``root``; return the COCO dict."""
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for image_id, (file_name, objects) in enumerate(OBJECTS.items(), start=1):
        yy, xx = np.mgrid[0:H, 0:W]
        base = np.stack([90 + xx, 110 + yy, 100 + 0 * xx], -1).astype(np.float32)
        mask = np.zeros((H, W), dtype=np.uint8)
        for cid, poly, crowd in objects:
            region = np.zeros((H, W), dtype=np.uint8)
            cv2.fillPoly(region, [np.array(poly, dtype=np.int32)], 1)
            base[region > 0] = COLOURS[cid]
            mask[region > 0] = 255 if crowd else cid
            ys, xs = np.nonzero(region)
            x1, y1, x2, y2 = int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": cid,
                "bbox": [x1, y1, x2 - x1 + 1, y2 - y1 + 1], "area": int(region.sum()),
                "segmentation": [[float(v) for p in poly for v in p]], "iscrowd": crowd,
            })
        image = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
        path = root / "images" / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix == ".jpg" else []
        cv2.imwrite(str(path), bgr, params)
        mpath = (root / "masks" / file_name).with_suffix(".png")
        mpath.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(mpath), mask)
        images.append({"id": image_id, "file_name": file_name, "height": H, "width": W})
    coco = {"images": images, "annotations": annotations, "categories": CATEGORIES}
    (root / "instances.json").write_text(json.dumps(coco, indent=1))
    return coco


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", nargs="?", default="data", help="output folder [data]")
    args = parser.parse_args(argv)
    root = Path(args.root)
    draw(root)
    print(f"wrote {root / 'images'} (4 images), {root / 'instances.json'}, {root / 'masks'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
