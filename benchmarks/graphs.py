"""Benchmark: pixel-graph construction (pyg_wsss.graphs.pixel_graph) on growing grids.

Side by side, on the same grid and neighbourhood:

* ``ours``: the vectorised stencil builder (``pixel_graph``);
* ``dense``: the dense reference (all ``N x N`` pairwise offsets, masked, ``nonzero``), run
  while ``N^2`` stays below ``--dense-max`` entries;
* ``loop``: a plain Python loop over nodes and stencil offsets, run while ``N * S`` stays
  below ``--loop-max`` iterations;
* ``pyg grid``: PyG's built-in ``torch_geometric.utils.grid`` (its only pixel-graph builder:
  the 8-neighbourhood, i.e. ``square`` radius 1 with self-loops), as a floor.

Prints a markdown table and writes ``benchmarks/results/graphs.md`` and ``.json``.
Usage: ``python benchmarks/graphs.py [--device cuda] [--repeats 5]``.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from pyg_wsss.graphs import pixel_graph, stencil_offsets

CONFIGS = [  # (label, shape, radius, self_loops)
    ("disc r=5 (PSA/IRN stencil)", "disc", 5, False),
    ("square r=4 (A2GNN box), +self", "square", 4, True),
    ("square r=1, +self (= PyG grid)", "square", 1, True),
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, device, repeats, warmup=True):
    """Best (minimum) wall time of ``repeats`` runs: on a shared machine the minimum is the
    least noisy estimate of the intrinsic cost."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return min(times), out


def dense_reference(h, w, shape, radius, self_loops, device):
    n = h * w
    r = torch.arange(n, device=device) // w
    c = torch.arange(n, device=device) % w
    dy = r[None, :] - r[:, None]  # [target, source]
    dx = c[None, :] - c[:, None]
    if shape == "square":
        mask = (dy.abs() <= radius) & (dx.abs() <= radius)
    else:
        mask = dy * dy + dx * dx < radius * radius
    if not self_loops:
        mask &= ~torch.eye(n, dtype=torch.bool, device=device)
    tgt, src = mask.nonzero(as_tuple=True)  # row-major: sorted by target, then source
    return torch.stack([src, tgt])


def loop_reference(h, w, shape, radius, self_loops):
    offs = stencil_offsets(radius, shape, self_loops=self_loops).tolist()
    src, dst = [], []
    for i in range(h * w):
        ir, ic = divmod(i, w)
        for dy, dx in offs:
            jr, jc = ir + dy, ic + dx
            if 0 <= jr < h and 0 <= jc < w:
                src.append(jr * w + jc)
                dst.append(i)
    return torch.tensor([src, dst])


def pyg_grid(h, w, device):
    from torch_geometric.utils import grid

    return grid(h, w, device=device)[0]


def run(args: argparse.Namespace) -> list[dict]:
    device = torch.device(args.device)
    rows = []
    for label, shape, radius, loops in CONFIGS:
        for side in args.sizes:
            h = w = side
            n = h * w
            t_ours, g = _time(
                lambda: pixel_graph(h, w, radius, shape=shape, self_loops=loops, device=device),
                device, args.repeats,
            )
            e = g.edge_index.size(1)
            row = dict(config=label, grid=f"{h}x{w}", nodes=n, edges=e, ours_ms=t_ours * 1e3,
                       edges_per_s=e / t_ours, edge_index_MiB=e * 2 * 8 / 2**20,
                       dense_ms=None, loop_ms=None, pyg_ms=None, equal=True)
            if n * n <= args.dense_max:
                t, ref = _time(lambda: dense_reference(h, w, shape, radius, loops, device),
                               device, 1, warmup=False)
                row["dense_ms"] = t * 1e3
                row["equal"] &= torch.equal(ref, g.edge_index)
            s = stencil_offsets(radius, shape, self_loops=loops).size(0)
            if n * s <= args.loop_max:
                t, ref = _time(lambda: loop_reference(h, w, shape, radius, loops), device, 1,
                               warmup=False)
                row["loop_ms"] = t * 1e3
                row["equal"] &= torch.equal(ref.to(device), g.edge_index)
            if shape == "square" and radius == 1 and loops:
                t, ref = _time(lambda: pyg_grid(h, w, device), device, args.repeats)
                row["pyg_ms"] = t * 1e3
                key = lambda ei: torch.sort(ei[1] * n + ei[0]).values  # noqa: E731
                row["equal"] &= torch.equal(key(ref), key(g.edge_index))
            rows.append(row)
            print(_fmt_row(row), flush=True)
    return rows


def _ms(v):
    return "—" if v is None else f"{v:.1f}"


HEADER = (
    "| neighbourhood | grid | nodes | edges | ours (ms) | dense ref (ms) | Python loop (ms) "
    "| PyG grid (ms) | Medges/s (ours) | edge_index MiB | equal |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def _fmt_row(r):
    return (
        f"| {r['config']} | {r['grid']} | {r['nodes']:,} | {r['edges']:,} | {_ms(r['ours_ms'])} "
        f"| {_ms(r['dense_ms'])} | {_ms(r['loop_ms'])} | {_ms(r['pyg_ms'])} "
        f"| {r['edges_per_s'] / 1e6:.1f} | {r['edge_index_MiB']:.1f} | {r['equal']} |"
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 48, 64, 96, 128])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--dense-max", type=float, default=(64 * 64) ** 2,
                   help="largest N^2 for the dense reference")
    p.add_argument("--loop-max", type=float, default=200_000,
                   help="largest nodes x offsets for the Python loop reference")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (0 = torch's default). 1 by default: on an "
                   "oversubscribed machine OpenMP barriers stall multi-threaded ops (measured "
                   "here: a 32x32 graph took 340 ms with 2 threads, 14-47 ms with 1)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "graphs"))
    args = p.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}")
    print(HEADER)
    t0 = time.perf_counter()
    rows = run(args)
    total = time.perf_counter() - t0
    meta = dict(torch=torch.__version__, device=args.device, threads=torch.get_num_threads(),
                python=platform.python_version(), machine=platform.machine(),
                repeats=args.repeats, total_s=total,
                command="python benchmarks/graphs.py " + " ".join(argv or []))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=2))
    md = [
        "# Pixel-graph construction",
        "",
        f"`{meta['command'].strip()}` — torch {meta['torch']}, {args.device}, "
        f"{meta['threads']} threads; ours and PyG: best of {args.repeats} runs after a warm-up, "
        "references: one run (wall clock on a shared machine, so absolute times are noisy). "
        f"Total {total:.1f} s.",
        "",
        "Dense reference: all N x N offsets masked + `nonzero` (skipped above "
        f"N^2 = {args.dense_max:.3g}); Python loop: nodes x stencil offsets (skipped above "
        f"{args.loop_max:.3g} iterations); PyG grid: `torch_geometric.utils.grid` (8-neighbours"
        " + self, only for square r=1). `equal`: same edge list as every reference run.",
        "",
        HEADER,
        *[_fmt_row(r) for r in rows],
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(md))
    print(f"total {total:.1f} s; wrote {out}.md and {out}.json")


if __name__ == "__main__":
    main()
