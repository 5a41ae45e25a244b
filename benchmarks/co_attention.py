"""Co-attention (Group-WSSS, G 5-8) forward + backward: fused SDPA path vs the naive dense path.

A group of K images with C-channel H x W maps on the complete graph without self-loops
(E = K (K - 1) edges). The naive path materialises the E x HW x HW attention (for K = 4,
64 x 64 maps: 12 x 4096^2 floats = 0.8 GB, plus its softmax and gradients); the fused path
(`torch.nn.functional.scaled_dot_product_attention`, scale 1) keeps O(E HW C).

Each configuration runs in a fresh subprocess; peak memory is the growth of the process's
peak RSS (``ru_maxrss``) over the run on CPU, ``torch.cuda.max_memory_allocated`` on CUDA.

    python benchmarks/co_attention.py                 # K = 4, C = 512, 32x32 and 64x64 maps
    python benchmarks/co_attention.py --sizes 64 --device cuda
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def run_one(k: int, c: int, size: int, attention: str, device: str, repeats: int) -> dict:
    import torch

    from pyg_wsss.nn.conv import CoAttentionConv

    torch.manual_seed(0)
    dev = torch.device(device)
    conv = CoAttentionConv(c, variant="paper", self_attention=False, attention=attention).to(dev)
    x = torch.randn(k, c, size, size, device=dev, requires_grad=True)
    ei = torch.cartesian_prod(torch.arange(k), torch.arange(k)).t()
    ei = ei[:, ei[0] != ei[1]].contiguous().to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    # warm-up on tiny maps so that one-off allocations (kernel workspaces, thread pools,
    # library initialisation) are not counted as the run's memory
    xw = torch.randn(k, c, 4, 4, device=dev, requires_grad=True)
    conv(xw, ei).sum().backward()
    conv.zero_grad(set_to_none=True)
    del xw
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    fwd, bwd = [], []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        out = conv(x, ei)
        sync()
        t1 = time.perf_counter()
        out.square().mean().backward()
        sync()
        t2 = time.perf_counter()
        fwd.append(t1 - t0)
        bwd.append(t2 - t1)
        x.grad = None
        conv.zero_grad(set_to_none=True)
        del out
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    e = ei.size(1)
    return {
        "K": k, "C": c, "H": size, "W": size, "edges": e, "attention": attention,
        "device": device, "threads": torch.get_num_threads(),
        "forward_s": min(fwd), "backward_s": min(bwd),
        "peak_mem_mb": peak / 2**20,
        "attention_matrix_mb": e * (size * size) ** 2 * 4 / 2**20,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--channels", type=int, default=512)
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(RESULTS / "co_attention"))
    args = p.parse_args(argv)
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        size, attention = int(args.child[0]), args.child[1]
        res = run_one(args.k, args.channels, size, attention, args.device, args.repeats)
        print(json.dumps(res))
        return 0
    rows = []
    for size in args.sizes:
        for attention in ("fused", "dense"):
            cmd = [sys.executable, __file__, "--child", str(size), attention, "--k", str(args.k),
                   "--channels", str(args.channels), "--device", args.device,
                   "--repeats", str(args.repeats), "--threads", str(args.threads)]
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                err = (proc.stderr.strip().splitlines() or ["failed"])[-1]
                rows.append({"H": size, "W": size, "attention": attention, "error": err})
            else:
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    lines = [
        f"# Co-attention forward + backward, K = {args.k} images (complete graph, "
        f"{args.k * (args.k - 1)} edges), C = {args.channels}, device {args.device}",
        "",
        "Fused = `scaled_dot_product_attention(scale=1)` (value channels split into heads of "
        "the key width so the fused kernel applies); dense = explicit `[E, HW, HW]` softmax. "
        "Peak memory = growth of peak RSS (CPU) or of `max_memory_allocated` (CUDA) during "
        "the run.",
        "",
        "| maps | path | forward s | backward s | peak memory MB | E x HW^2 attention MB |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['H']}x{r['W']} | {r['attention']} | error: {r['error']} | | | |")
            continue
        lines.append(
            f"| {r['H']}x{r['W']} | {r['attention']} | {r['forward_s']:.2f} | "
            f"{r['backward_s']:.2f} | {r['peak_mem_mb']:.0f} | {r['attention_matrix_mb']:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
