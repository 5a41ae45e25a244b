"""Benchmark: attention aggregation on pixel graphs, our fused CSR kernel against the plain
gather/scatter path, PyG's AGNNConv and GATConv, a dense masked N x N reference and a plain
CSR SpMM (the floor), forward and backward, peak memory and edges/s, all in one run.

    python benchmarks/kernels.py [--device cuda] [--sizes 32 64 96 128 256] [--quick]

Writes benchmarks/results/kernels.{md,json} and kernels.png (time vs edges, log-log).
"""
from __future__ import annotations

import argparse
import gc
import math
import sys
import time
from pathlib import Path

import torch
from torch_geometric.nn import AGNNConv, GATConv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, PeakMemory, machine, time_fwd_bwd, write_results  # noqa: E402

from pyg_wsss.graphs import feature_affinity, pixel_graph  # noqa: E402
from pyg_wsss.nn.conv import AffinityAttentionConv  # noqa: E402
from pyg_wsss.ops import spmm, to_csr  # noqa: E402

DENSE_LIMIT_BYTES = 6 * 2**30  # the dense path keeps ~6 N x N float tensors alive
GATHER_LIMIT_BYTES = 6 * 2**30  # the gather paths keep a few [E, F] tensors alive


def dense_reference(x, adj_mask, e_dense, w, beta):
    xn = torch.nn.functional.normalize(x, dim=-1)
    cos = xn @ xn.t()
    logits = w * cos + beta * (cos > 0).to(x.dtype) * e_dense
    logits = logits.masked_fill(~adj_mask, float("-inf"))
    return torch.softmax(logits, dim=-1) @ x


def bench_one(side: int, radius: int, channels: int, device: torch.device, repeats: int):
    g = pixel_graph(side, side, radius, shape="square", self_loops=True, device=device)
    n, ei = g.num_nodes, g.edge_index
    e_count = ei.size(1)
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.rand(n, channels, generator=gen).to(device).requires_grad_()
    feats = torch.rand(n, 16, generator=gen).to(device)
    e = feature_affinity(feats, ei).detach()
    rows = []

    def record(method, fn, params, skip=None):
        base = {"grid": f"{side}x{side}", "nodes": n, "edges": e_count, "radius": radius,
                "channels": channels, "method": method}
        if skip:
            rows.append({**base, "skipped": skip})
            return
        gc.collect()
        try:
            with PeakMemory(device) as mem:
                t = time_fwd_bwd(fn, params, device, repeats=repeats)
        except (RuntimeError, MemoryError) as err:  # out of memory
            rows.append({**base, "skipped": f"{type(err).__name__}: {str(err)[:60]}"})
            return
        total = t["forward_s"] + t["backward_s"]
        rows.append({**base, **t, "total_s": total, "peak_mb": mem.peak / 2**20,
                     "edges_per_s": e_count / total})

    gather_bytes = e_count * channels * 4 * 4
    too_big = None
    if gather_bytes > GATHER_LIMIT_BYTES:
        too_big = f"[E, F] gathers need ~{gather_bytes / 2**30:.1f} GiB"

    fused = AffinityAttentionConv(fused=True).to(device)
    plain = AffinityAttentionConv(fused=False).to(device)
    plain.load_state_dict(fused.state_dict())
    record("ours (fused CSR)", lambda: fused(x, ei, e), [x, *fused.parameters()])
    record("ours (gather/scatter)", lambda: plain(x, ei, e), [x, *plain.parameters()], too_big)
    agnn = AGNNConv(requires_grad=True).to(device)
    record("PyG AGNNConv", lambda: agnn(x, ei), [x, *agnn.parameters()], too_big)
    gat = GATConv(channels, channels, heads=1, add_self_loops=False).to(device)
    record("PyG GATConv", lambda: gat(x, ei), [x, *gat.parameters()], too_big)
    dense_bytes = 6 * n * n * 4
    if dense_bytes <= DENSE_LIMIT_BYTES:
        mask = torch.zeros(n, n, dtype=torch.bool, device=device)
        mask[ei[1], ei[0]] = True
        e_dense = torch.zeros(n, n, device=device)
        e_dense[ei[1], ei[0]] = e
        w = torch.tensor(0.5, device=device, requires_grad=True)
        record("dense N x N", lambda: dense_reference(x, mask, e_dense, w, 10.0), [x, w])
        del mask, e_dense
    else:
        record("dense N x N", None, [], f"needs ~{dense_bytes / 2**30:.0f} GiB")
    csr = to_csr(ei, n)
    wv = torch.rand(e_count, device=device, requires_grad=True)
    record("CSR SpMM (floor)", lambda: spmm(csr, wv, x), [x, wv])
    return rows


def markdown(rows):
    lines = ["| grid | radius | F | edges | method | forward ms | backward ms | total ms | "
             "x floor | peak MB | Medges/s |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    floors = {(r["grid"], r["radius"], r["channels"]): r["total_s"] for r in rows
              if r["method"].startswith("CSR SpMM") and "total_s" in r}
    for r in rows:
        key = (r["grid"], r["radius"], r["channels"])
        if "skipped" in r:
            lines.append(f"| {r['grid']} | {r['radius']} | {r['channels']} | {r['edges']:,} | "
                         f"{r['method']} | - | - | - | - | - | skipped: {r['skipped']} |")
            continue
        ratio = r["total_s"] / floors[key] if key in floors else float("nan")
        lines.append(
            f"| {r['grid']} | {r['radius']} | {r['channels']} | {r['edges']:,} | {r['method']} | "
            f"{1e3 * r['forward_s']:.1f} | {1e3 * r['backward_s']:.1f} | "
            f"{1e3 * r['total_s']:.1f} | "
            f"{ratio:.2f} | {r['peak_mb']:.0f} | {r['edges_per_s'] / 1e6:.2f} |")
    return "\n".join(lines)


#: The README's headline rows (``<!-- kernels:begin -->``): method in kernels.md -> README name.
HEADLINE = {"ours (fused CSR)": "`AffinityAttentionConv` (fused CSR kernel, default)",
            "ours (gather/scatter)": "`AffinityAttentionConv(fused=False)` (gather/scatter)",
            "PyG AGNNConv": "PyG `AGNNConv`", "PyG GATConv": "PyG `GATConv`",
            "dense N x N": "dense masked N x N", "CSR SpMM (floor)": "plain CSR SpMM (floor)"}
HEADLINE_CASE = ("64x64", 5, 256)


def headline(rows):
    """The 64x64, radius 5, F = 256 rows as README shows them (``None``: not measured)."""
    pick = [r for r in rows if (r["grid"], r["radius"], r["channels"]) == HEADLINE_CASE
            and r["method"] in HEADLINE and "total_s" in r]
    floor = [r["total_s"] for r in pick if r["method"].startswith("CSR SpMM")]
    if not pick or not floor:
        return None
    lines = ["| path | forward ms | backward ms | total ms | x CSR SpMM floor |",
             "|---|---:|---:|---:|---:|"]
    for r in pick:
        lines.append(f"| {HEADLINE[r['method']]} | {1e3 * r['forward_s']:,.0f} | "
                     f"{1e3 * r['backward_s']:,.0f} | {1e3 * r['total_s']:,.0f} | "
                     f"{r['total_s'] / floor[0]:.1f} |")
    return "\n".join(lines)


def plot(rows, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, channels in zip(axes, sorted({r["channels"] for r in rows})):
        for method in dict.fromkeys(r["method"] for r in rows):
            pts = sorted((r["edges"], r["total_s"]) for r in rows
                         if r["method"] == method and r["channels"] == channels and "total_s" in r)
            if pts:
                ax.loglog(*zip(*pts), marker="o", label=method)
        ax.set_title(f"forward + backward, F = {channels}")
        ax.set_xlabel("edges")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("seconds")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def slope(rows, method, channels):
    pts = [(math.log(r["edges"]), math.log(r["total_s"])) for r in rows
           if r["method"] == method and r["channels"] == channels and "total_s" in r]
    if len(pts) < 2:
        return float("nan")
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    return sum((a - mx) * (b - my) for a, b in pts) / sum((a - mx) ** 2 for a, _ in pts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=int, nargs="*", default=[32, 64, 96, 128, 256])
    parser.add_argument("--radii", type=int, nargs="*", default=[3, 4, 5])
    parser.add_argument("--channels", type=int, nargs="*", default=[64, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="64x64, radius 5, F 256 only")
    parser.add_argument("--name", default="kernels")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.radii, args.channels = [64], [5], [256]
    device = torch.device(args.device)
    rows = []
    start = time.perf_counter()
    for channels in args.channels:
        for radius in args.radii:
            for side in args.sizes:
                print(f"grid {side}x{side} radius {radius} F {channels} ...", flush=True)
                rows += bench_one(side, radius, channels, device, args.repeats)
    table = markdown(rows)
    notes = []
    for channels in args.channels:
        s = slope(rows, "ours (fused CSR)", channels)
        notes.append(f"- fused path, F = {channels}: log-log slope of time vs edges = {s:.2f} "
                     "(1.0 = linear)")
    meta = {**machine(), "device": str(device), "seconds": time.perf_counter() - start,
            "command": f"python benchmarks/{Path(__file__).name} "
                       + " ".join(argv or sys.argv[1:])}
    head = headline(rows)
    head = ("" if head is None else
            f"Headline (README): {HEADLINE_CASE[0]} grid, radius {HEADLINE_CASE[1]}, "
            f"F = {HEADLINE_CASE[2]}, forward + backward\n\n{head}\n\nAll cases:\n\n")
    text = (f"# Attention kernels on pixel graphs ({meta['device']}, torch {meta['torch']}, "
            f"{meta['threads']} threads)\n\nCommand: `{meta['command'].strip()}`\n\n{head}"
            f"{table}\n\n" + "\n".join(notes))
    print(text)
    write_results(args.name, rows, text, meta)
    if len(args.sizes) > 1:
        plot(rows, RESULTS / f"{args.name}.png")


if __name__ == "__main__":
    main()
