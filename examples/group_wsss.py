"""Group-WSSS end to end (Li et al., AAAI 2021) on the synthetic set (default) or VOC.

1. An initial backbone: a single-image CAM classifier (SmallCNN) trained on the tags (it
   stands in for the paper's ImageNet initialisation; on VOC: pretrained EfficientNet-Lite0).
2. The group classifier (GroupGNN: co-attention + ConvGRU + graph dropout, T = 3) trained on
   greedy groups of K images, for K = 1..4 (K = 1 is the single-image baseline: only a
   self-loop), with and without the graph dropout layer.
3. CAM mIoU of the intermediate readout, the graph readout and their self-ensemble (G Table 3),
   then pseudo-labels (CAM + background threshold, and + dense CRF) and their mIoU.

Usage::

    python examples/group_wsss.py                       # synthetic, K = 1..4, +/- dropout
    python examples/group_wsss.py --k 4 --epochs 15 --finetune
    python examples/group_wsss.py --voc-root /data/VOCdevkit --num-images 500 --device cuda
"""
from __future__ import annotations

import argparse
import copy
import json
import time

import torch

from pyg_wsss.metrics import mean_iou
from pyg_wsss.pipelines.group_wsss import (
    build_group_model,
    group_cams,
    pseudo_labels,
    train_group_wsss,
)


def load_data(args):
    if args.voc_root:
        from pyg_wsss.data import VOCSegmentation

        ds = VOCSegmentation(args.voc_root, split="train")
        n = min(args.num_images, len(ds))
        samples = [ds[i] for i in range(n)]
        return samples, ds.num_classes
    from pyg_wsss.data import SyntheticWSSS

    ds = SyntheticWSSS(num_images=args.num_images, image_size=args.image_size,
                       num_classes=5, seed=args.seed)
    return [ds[i] for i in range(len(ds))], ds.num_classes


def initial_backbone(args, samples, num_classes, device):
    if args.voc_root:
        from pyg_wsss.nn.models import EfficientNetLite0Backbone

        return EfficientNetLite0Backbone(pretrained=True)
    from pyg_wsss.nn.models import CAMClassifier, SmallCNN, train_classifier

    torch.manual_seed(args.seed)
    clf = CAMClassifier(SmallCNN(), num_classes - 1)
    clf = train_classifier(clf, samples, epochs=args.pretrain_epochs, device=device,
                           progress=not args.no_progress, seed=args.seed)
    return clf.backbone


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--voc-root", default=None, help="VOCdevkit folder (default: synthetic set)")
    p.add_argument("--num-images", type=int, default=64)
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--k", type=int, nargs="+", default=[1, 2, 3, 4], help="group sizes")
    p.add_argument("--dropout", choices=["both", "on", "off"], default="both")
    p.add_argument("--variant", choices=["paper", "code"], default="paper")
    p.add_argument("--sampler", choices=["paper", "code"], default="paper")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--pretrain-epochs", type=int, default=15)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--finetune", action="store_true", help="fine-tune the backbone (lr/10)")
    p.add_argument("--bg-threshold", type=float, default=0.2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--stage2", action="store_true",
                   help="train DeepLab on the CRF pseudo-labels, evaluate on held-out images")
    p.add_argument("--stage2-iterations", type=int, default=300)
    p.add_argument("--num-eval", type=int, default=16, help="held-out images for --stage2")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    samples, num_classes = load_data(args)
    masks = [s["mask"] for s in samples]
    image_size = None if not args.voc_root else 256
    t0 = time.perf_counter()
    backbone = initial_backbone(args, samples, num_classes, device)
    print(f"initial backbone: {time.perf_counter() - t0:.1f} s")

    results = []
    dropouts = {"both": [True, False], "on": [True], "off": [False]}[args.dropout]
    best = None
    for k in args.k:
        for gd in dropouts:
            torch.manual_seed(args.seed)
            model = build_group_model(num_classes - 1, copy.deepcopy(backbone),
                                      hidden_channels=args.hidden, variant=args.variant,
                                      graph_dropout=gd)
            t = time.perf_counter()
            model, _ = train_group_wsss(
                model, samples, group_size=k, epochs=args.epochs, lr=args.lr,
                backbone_lr=args.lr / 10 if args.finetune else 0.0, sampler=args.sampler,
                image_size=image_size, device=device, progress=not args.no_progress,
                seed=args.seed,
            )
            cams = group_cams(model, samples, group_size=k, image_size=image_size, device=device)
            row = {"K": k, "graph_dropout": gd, "train_s": round(time.perf_counter() - t, 1)}
            for readout, maps in cams.items():
                labels = pseudo_labels(samples, maps, args.bg_threshold, crf=False)
                row[f"cam_{readout}"] = round(100 * mean_iou(labels, masks, num_classes), 2)
            results.append(row)
            print(row, flush=True)
            if k == max(args.k) and (best is None or gd):
                best = (row, cams)

    print("\nCAM mIoU (%) by readout (G Table 3), background threshold", args.bg_threshold)
    print("| K | graph dropout | intermediate | graph | ensemble | train s |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['K']} | {'yes' if r['graph_dropout'] else 'no'} | {r['cam_intermediate']} "
              f"| {r['cam_graph']} | {r['cam_ensemble']} | {r['train_s']} |")

    row, cams = best
    pl = {
        "CAM (ensemble) + bg threshold": pseudo_labels(samples, cams["ensemble"],
                                                       args.bg_threshold, crf=False),
        "CAM (ensemble) + dense CRF": pseudo_labels(samples, cams["ensemble"],
                                                    args.bg_threshold, crf=True),
    }
    print(f"\nPseudo-labels (K = {row['K']}, graph dropout {row['graph_dropout']}):")
    pseudo = {}
    for name, labels in pl.items():
        pseudo[name] = round(100 * mean_iou(labels, masks, num_classes), 2)
        print(f"  {name}: mIoU {pseudo[name]:.2f}")
    stage2 = {}
    if args.stage2 and not args.voc_root:
        from pyg_wsss.pipelines.stage2 import heldout_synthetic, print_stage2, run_stage2

        held = heldout_synthetic(args.num_eval, len(samples), args.image_size,
                                 num_classes - 1, args.seed)
        name = "CAM (ensemble) + dense CRF"
        stage2 = {name: run_stage2(samples, pl[name], held, num_classes,
                                   iterations=args.stage2_iterations, device=device,
                                   seed=args.seed)}
        print_stage2(stage2)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "cams": results, "pseudo_labels": pseudo,
                       "stage2": stage2}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
