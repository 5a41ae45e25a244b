"""Random-walk propagation: sparse iterated walk vs the dense reference (PSA/IRNet).

For square grids of side 32 .. 128 (radius-5 disc graph, PSA/IRNet's neighbourhood) it
times, in one process:

* ``build``: :func:`pyg_wsss.pseudo.transition_matrix` (sparse CSC, O(E) memory);
* ``sparse``: ``2^log_t`` CSR SpMM steps :math:`X \\leftarrow X T` (the default path);
* ``spmm``: one plain CSR SpMM of the same matrix (the floor per step);
* ``dense``: the upstream algorithm: dense :math:`T`, ``log_t`` squarings, :math:`X T^{2^k}`,
  until it exceeds ``--dense-max-nodes`` or the time budget (then reported as skipped);

and checks that sparse and dense agree. Peak memory is the tracemalloc-free estimate of the
tensors each path holds (CPU) or ``torch.cuda.max_memory_allocated`` (CUDA). Writes
``benchmarks/results/random_walk.md`` and ``.json``.

    python benchmarks/random_walk.py [--device cuda] [--threads 1] [--log-t 6] [--classes 21]
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from pyg_wsss.graphs.pixel import pixel_graph
from pyg_wsss.graphs.weights import feature_affinity
from pyg_wsss.pseudo import random_walk, random_walk_dense, transition_matrix

RESULTS = Path(__file__).resolve().parent / "results"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, repeat: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        _sync(device)
        start = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best, out


def run(sizes, log_t, classes, radius, beta, device, dense_max_nodes, dense_budget):
    rows = []
    dense_ok = True
    last_dense = None  # (nodes, seconds) of the last dense run, to predict the next (O(N^3))
    for side in sizes:
        n = side * side
        g = pixel_graph(side, side, radius, shape="disc", device=device)
        gen = torch.Generator().manual_seed(side)
        feats = torch.rand(n, 16, generator=gen).to(device)
        w = feature_affinity(feats, g.edge_index)
        x = torch.rand(classes, n, generator=gen).to(device)
        steps = 2**log_t
        t_build, t = _timed(lambda: transition_matrix(g.edge_index, w, n, beta=beta), device)
        nnz = t.values().numel()
        t_sparse, y = _timed(lambda: random_walk(x, t, steps), device, repeat=2)
        mt = t.t()
        xt = x.t().contiguous()
        t_spmm, _ = _timed(lambda: mt @ xt, device, repeat=3)
        sparse_bytes = nnz * (4 + 8) + (n + 1) * 8 + 2 * n * classes * 4
        row = {
            "side": side, "nodes": n, "nnz": nnz, "classes": classes, "steps": steps,
            "build_s": t_build, "sparse_s": t_sparse, "spmm_step_s": t_spmm,
            "sparse_mib": sparse_bytes / 2**20,
            "edges_per_s": nnz * steps / t_sparse,
            "dense_s": None, "dense_mib": 3 * n * n * 4 / 2**20, "max_abs_diff": None,
            "dense_note": "",
        }
        if not dense_ok:
            row["dense_note"] = "skipped (previous size over budget)"
        elif n > dense_max_nodes:
            row["dense_note"] = f"skipped (N > {dense_max_nodes} guard)"
        elif last_dense and last_dense[1] * (n / last_dense[0]) ** 3 > dense_budget:
            predicted = last_dense[1] * (n / last_dense[0]) ** 3
            row["dense_note"] = (
                f"skipped (predicted {predicted:.0f} s > {dense_budget:.0f} s budget)"
            )
        else:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            try:
                t_dense, yd = _timed(
                    lambda: random_walk_dense(x, g.edge_index, w, n, beta=beta, log_t=log_t,
                                              max_nodes=dense_max_nodes),
                    device,
                )
                row["dense_s"] = t_dense
                last_dense = (n, t_dense)
                row["max_abs_diff"] = float((yd - y).abs().max())
                if device.type == "cuda":
                    row["dense_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
                if t_dense > dense_budget:
                    dense_ok = False
            except (RuntimeError, MemoryError) as err:  # out of memory
                row["dense_note"] = f"failed: {type(err).__name__}"
                dense_ok = False
        rows.append(row)
        print(
            f"{side:4d}^2 N={n:6d} nnz={nnz:8d} build {t_build:.3f}s sparse {t_sparse:.3f}s "
            f"dense {row['dense_s'] if row['dense_s'] is None else round(row['dense_s'], 3)} "
            f"diff {row['max_abs_diff']} {row['dense_note']}",
            flush=True,
        )
    return rows


def to_markdown(rows, meta) -> str:
    lines = [
        "# Random walk: sparse iterated walk vs dense T^(2^k)",
        "",
        f"Command: `{meta['command']}`  ",
        f"Device: {meta['device']}, torch {meta['torch']}, {meta['threads']} threads, "
        f"{meta['machine']}; radius-{meta['radius']} disc graph, beta {meta['beta']}, "
        f"{meta['classes']} classes, 2^{meta['log_t']} = {2 ** meta['log_t']} steps.",
        "",
        "| grid | nodes | nnz(T) | build (s) | sparse walk (s) | SpMM / step (ms) | "
        "sparse MiB | Medges/s | dense T^(2^k) (s) | dense MiB | max abs diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        dense = f"{r['dense_s']:.3f}" if r["dense_s"] is not None else r["dense_note"]
        diff = f"{r['max_abs_diff']:.1e}" if r["max_abs_diff"] is not None else "-"
        lines.append(
            f"| {r['side']}x{r['side']} | {r['nodes']} | {r['nnz']} | {r['build_s']:.3f} | "
            f"{r['sparse_s']:.3f} | {1e3 * r['spmm_step_s']:.1f} | {r['sparse_mib']:.1f} | "
            f"{r['edges_per_s'] / 1e6:.0f} | {dense} | {r['dense_mib']:.0f} | {diff} |"
        )
    lines += [
        "",
        "Sparse memory: T in CSC (values + row indices + column pointers) plus two [N, K] "
        "score buffers. Dense memory: about three N x N float32 matrices while squaring "
        "(the estimate is shown also where the dense path was skipped). Timings are the "
        "best of the runs on a shared machine; the dense path squares the full matrix "
        "(O(N^3) per squaring), the sparse path costs O(nnz K) per step.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 48, 64, 96, 128])
    p.add_argument("--log-t", type=int, default=6)
    p.add_argument("--classes", type=int, default=21)
    p.add_argument("--radius", type=int, default=5)
    p.add_argument("--beta", type=float, default=8.0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dense-max-nodes", type=int, default=4096,
                   help="size guard of the dense reference (4096^2 fp32 = 64 MiB)")
    p.add_argument("--dense-budget", type=float, default=30.0,
                   help="stop running the dense path after a size slower than this (s)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads (1 is steadier on a shared machine)")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = run(args.sizes, args.log_t, args.classes, args.radius, args.beta, device,
               args.dense_max_nodes, args.dense_budget)
    meta = {
        "command": "python benchmarks/random_walk.py" + (
            f" --device {args.device}" if args.device != "cpu" else "") + (
            f" --threads {args.threads}" if args.threads else ""),
        "device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": platform.machine(), "radius": args.radius, "beta": args.beta,
        "classes": args.classes, "log_t": args.log_t,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "random_walk.md").write_text(to_markdown(rows, meta))
    (out / "random_walk.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {out / 'random_walk.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
