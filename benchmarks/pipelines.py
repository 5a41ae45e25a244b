"""Per-image WSGCN optimisation: a sequential loop over images vs one batched problem.

Both paths run the same code (:func:`pyg_wsss.nn.models.wsgcn.fit_wsgcn`): the sequential
path calls it once per image, the batched path once for all images (per-image parameters
``[B, D, 16]``, one PyG batch, one Adam step for all). Both give the same labels (the
maximum difference is reported). Default: 16 images of 64x64 nodes, 250 steps (the paper's
schedule; paper anchor: 2.45 s/image on a V100 for its dense implementation).

    python benchmarks/pipelines.py [--images 16] [--size 64] [--steps 250] [--device cuda]

Writes ``benchmarks/results/pipelines.{md,json}``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PeakMemory, machine, sync, write_results  # noqa: E402

from pyg_wsss.graphs import gaussian_edge_weight, pixel_graph  # noqa: E402
from pyg_wsss.nn.models.wsgcn import fit_wsgcn, wsgcn_graph  # noqa: E402


def make_problem(size: int, seed: int, dim: int, classes: int, radius: int) -> dict:
    """A synthetic image problem: smooth random features (blurred noise) on a ``size x size``
    grid, the WSGCN graph (feature affinity on a radius-``radius`` disc, "code" adjacency),
    the 5x5 Gaussian Laplacian graph and 30 % of the nodes labelled."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, dim, size // 4, size // 4, generator=g)
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear")[0]
    x = x.reshape(dim, -1).t().contiguous()
    colour = x[:, :3]
    ei, ew = wsgcn_graph(x, (size, size), radius=radius, variant="code")
    lap = pixel_graph(size, size, 2, shape="square")
    lw = gaussian_edge_weight(colour, lap.pos, lap.edge_index, preset="wsgcn_code")
    y = x[:, :classes].argmax(1)
    y[torch.rand(size * size, generator=g) > 0.3] = 255
    return {"x": x, "ei": ei, "ew": ew, "y": y, "lei": lap.edge_index, "lw": lw, "n": size * size}


def run(problems: list[dict], seeds: list[int], steps: int, classes: int, device) -> torch.Tensor:
    offsets, total = [], 0
    for p in problems:
        offsets.append(total)
        total += p["n"]
    x = torch.cat([p["x"] for p in problems]).to(device)
    ei = torch.cat([p["ei"] + o for p, o in zip(problems, offsets)], 1).to(device)
    ew = torch.cat([p["ew"] for p in problems]).to(device)
    y = torch.cat([p["y"] for p in problems]).to(device)
    lei = torch.cat([p["lei"] + o for p, o in zip(problems, offsets)], 1).to(device)
    lw = torch.cat([p["lw"] for p in problems]).to(device)
    batch = torch.cat([torch.full((p["n"],), i) for i, p in enumerate(problems)]).to(device)
    return fit_wsgcn(
        x,
        ei,
        ew,
        y,
        batch,
        seeds=seeds,
        lap_edge_index=lei,
        lap_edge_weight=lw,
        steps=steps,
        num_classes=classes,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--size", type=int, default=64, help="grid side (nodes per image = size^2)")
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--dim", type=int, default=32, help="node feature size")
    ap.add_argument("--radius", type=int, default=5, help="GCN graph radius (disc)")
    ap.add_argument("--classes", type=int, default=21)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    problems = [
        make_problem(args.size, i, args.dim, args.classes, args.radius) for i in range(args.images)
    ]
    seeds = list(range(args.images))
    edges = sum(p["ei"].size(1) for p in problems) / args.images
    run(problems[:1], seeds[:1], 2, args.classes, device)  # warm-up

    rows = []
    sync(device)
    with PeakMemory(device) as mem_seq:
        t0 = time.perf_counter()
        seq = torch.cat(
            [run([p], [s], args.steps, args.classes, device) for p, s in zip(problems, seeds)]
        )
        sync(device)
        t_seq = time.perf_counter() - t0
    with PeakMemory(device) as mem_bat:
        t0 = time.perf_counter()
        bat = run(problems, seeds, args.steps, args.classes, device)
        sync(device)
        t_bat = time.perf_counter() - t0
    diff = (seq - bat).abs().max().item()
    same = (seq.argmax(1) == bat.argmax(1)).float().mean().item()
    for name, t, mem in (
        ("sequential (loop over images)", t_seq, mem_seq),
        ("batched (one problem)", t_bat, mem_bat),
    ):
        rows.append(
            {
                "path": name,
                "images": args.images,
                "nodes_per_image": args.size**2,
                "gcn_edges_per_image": int(edges),
                "steps": args.steps,
                "seconds": t,
                "images_per_s": args.images / t,
                "s_per_image": t / args.images,
                "peak_mem_mb": mem.peak / 2**20,
            }
        )
    speedup = t_seq / t_bat
    meta = machine() | {
        "device": str(device),
        "speedup": speedup,
        "max_abs_diff_logprob": diff,
        "same_argmax_fraction": same,
        "command": "python benchmarks/pipelines.py " + " ".join(argv or sys.argv[1:]),
        "paper_anchor_s_per_image": 2.45,
        "load_average_1min_at_end": os.getloadavg()[0],
    }
    lines = [
        f"# WSGCN per-image optimisation: {args.images} images x {args.size}x{args.size} nodes, "
        f"{args.steps} Adam steps ({device}, {meta['threads']} threads)",
        "",
        "| path | images/s | s/image | seconds | peak memory (MB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['path']} | {r['images_per_s']:.3f} | {r['s_per_image']:.2f} | "
            f"{r['seconds']:.1f} | {r['peak_mem_mb']:.0f} |"
        )
    lines += [
        "",
        f"Speed-up batched / sequential: **{speedup:.2f}x**. Same result: max |diff| of the "
        f"log-probabilities {diff:.2e}, argmax agreement {100 * same:.2f} %.",
        f"GCN graph: feature affinity on a radius-{args.radius} disc, {int(edges)} edges per image "
        "(incl. self-loops); Laplacian: 5x5 window. Paper anchor: 2.45 s/image on a V100.",
        f"Machine load (1-min average) at the end: {meta['load_average_1min_at_end']:.1f}.",
    ]
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        write_results("pipelines", rows, table, meta)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
