"""Scale-out: images/s of ``pyg-wsss pseudo-label`` with 1, 2, ... torchrun ranks.

Writes a synthetic COCO dataset (``--images`` photos of ``--size`` pixels, one to three
boxed objects each, a fixed seed), then runs, for every rank count of ``--ranks``::

    python -m torch.distributed.run --nproc_per_node N -m pyg_wsss pseudo-label \\
        --images ... --coco ... --supervision box --method METHOD --device DEVICE

with ``OMP_NUM_THREADS=--threads`` per rank (one thread each by default: ranks, not
threads, use the cores). It reports the wall time of the whole command (process start-up,
imports and the rendezvous included) and the labelling rate: images / the slowest rank's
own time in the command (``run.json``), and checks that every rank count writes the same
PNGs byte for byte. Results: ``benchmarks/results/distributed.{md,json}``.

    python benchmarks/distributed.py                         # CPU: 1 and 2 ranks, grabcut
    python benchmarks/distributed.py --method a2gnn --images 8
    python benchmarks/distributed.py --device cuda --ranks 1,2,4,8 --threads 4 --images 256
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_results  # noqa: E402

A2GNN_TINY = {"stage1_epochs": 10, "stage2_epochs": 10, "hidden_channels": 16,
              "affinity_epochs": 1, "min_side": 96}


def make_dataset(root: Path, n: int, h: int, w: int, seed: int = 0) -> None:
    """``root/images/imgNNN.png`` and ``root/instances.json`` (categories 1 = red, 2 = blue)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        img = np.stack([80 + 60 * xx / w, 90 + 50 * yy / h, 100 + 0 * xx], -1)
        for _ in range(int(rng.integers(1, 4))):
            cid = int(rng.integers(1, 3))
            bh, bw = int(rng.integers(h // 5, h // 2)), int(rng.integers(w // 5, w // 2))
            y0, x0 = int(rng.integers(0, h - bh)), int(rng.integers(0, w - bw))
            cy, cx = y0 + bh / 2, x0 + bw / 2
            inside = ((yy - cy) / (bh / 2)) ** 2 + ((xx - cx) / (bw / 2)) ** 2 <= 1
            img[inside] = (200, 60, 50) if cid == 1 else (40, 80, 210)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cid,
                         "bbox": [x0, y0, bw, bh], "area": bw * bh, "iscrowd": 0})
        img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
        name = f"img{i:03d}.png"
        Image.fromarray(img).save(root / "images" / name)
        images.append({"id": i + 1, "file_name": name, "height": h, "width": w})
    coco = {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "red"}, {"id": 2, "name": "blue"}]}
    (root / "instances.json").write_text(json.dumps(coco))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*.png")):
        h.update(p.relative_to(folder).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def run(root: Path, out: Path, nproc: int, args: argparse.Namespace,
        config: Path | None) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
           "--master_addr", "127.0.0.1", "--master_port", str(_port()),
           "-m", "pyg_wsss", "pseudo-label", "--images", str(root / "images"),
           "--coco", str(root / "instances.json"), "--supervision", "box",
           "--method", args.method, "--device", args.device, "--out", str(out),
           "--no-progress"]
    if config is not None:
        cmd += ["--config", str(config)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{nproc} ranks failed:\n{proc.stderr[-3000:]}")
    record = json.loads((out / "run.json").read_text())
    ranks = record.get("ranks") or [{"seconds": record["seconds"], "done": record["done"]}]
    slowest = max(float(r["seconds"]) for r in ranks)
    return {"ranks": nproc, "images": record["images"], "done": record["done"],
            "wall_s": round(wall, 2), "slowest_rank_s": round(slowest, 2),
            "images_per_s_wall": round(record["done"] / wall, 3),
            "images_per_s": round(record["done"] / slowest, 3),
            "per_rank_images": [int(r["done"]) for r in ranks], "digest": _digest(out)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="grabcut", choices=("grabcut", "a2gnn", "filled"))
    p.add_argument("--images", type=int, default=24, help="synthetic images [24]")
    p.add_argument("--size", default="160x224", help="HxW of the images [160x224]")
    p.add_argument("--ranks", default="1,2", help="rank counts to time [1,2]")
    p.add_argument("--threads", type=int, default=1, help="OMP threads per rank [1]")
    p.add_argument("--device", default="cpu", help="cpu or cuda (one GPU per rank) [cpu]")
    p.add_argument("--repeat", type=int, default=1, help="runs per rank count, best kept [1]")
    p.add_argument("--timeout", type=float, default=1800.0)
    p.add_argument("--name", default="distributed", help="results file name [distributed]")
    args = p.parse_args(argv)
    h, w = (int(v) for v in args.size.lower().split("x"))
    counts = [int(v) for v in args.ranks.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_dataset(root, args.images, h, w)
        config = None
        if args.method == "a2gnn":
            config = root / "a2gnn.json"
            config.write_text(json.dumps(A2GNN_TINY))
        for n in counts:
            tries = []
            for k in range(args.repeat):
                out = root / f"out{n}_{k}"
                load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
                tries.append({**run(root, out, n, args, config), "load_before": load})
            row = max(tries, key=lambda t: t["images_per_s"])  # the least disturbed run
            row["tries_images_per_s"] = [t["images_per_s"] for t in tries]
            rows.append(row)
            print(f"{n} ranks: {row['images_per_s']:.2f} images/s "
                  f"({row['images_per_s_wall']:.2f} counting start-up), "
                  f"images per rank {row['per_rank_images']}", flush=True)
    same = len({r["digest"] for r in rows}) == 1
    base = rows[0]["images_per_s"]
    for r in rows:
        r["speed_up"] = round(r["images_per_s"] / base, 2)
    given = sys.argv[1:] if argv is None else argv
    command = " ".join(["python benchmarks/distributed.py", *given])
    lines = [
        f"# Scale-out: pseudo-label ({args.method}) with torchrun ranks",
        "",
        f"Command: `{command}`  ",
        f"{args.images} synthetic {h}x{w} images with 1-3 boxes each; device {args.device}, "
        f"{args.threads} thread(s) per rank, gloo/NCCL chosen automatically; "
        f"torch {machine()['torch']}, {os.cpu_count()} cores.",
        "",
        "| ranks | images per rank | labelling images/s | speed-up | wall s (with start-up) "
        "| images/s incl. start-up | load average before |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        load = "-" if r.get("load_before") is None else f"{r['load_before']:.1f}"
        lines.append(f"| {r['ranks']} | {'/'.join(map(str, r['per_rank_images']))} | "
                     f"{r['images_per_s']:.2f} | {r['speed_up']:.2f}x | {r['wall_s']:.1f} | "
                     f"{r['images_per_s_wall']:.2f} | {load} |")
    lines += ["", "Labelling images/s: images / the slowest rank's time inside the command "
              "(reading, labelling, writing; from run.json). Wall time adds interpreter "
              "start-up, imports and the rendezvous (a few seconds per run, independent of "
              "the dataset size). Best of --repeat runs; the load average (1 min) shows how busy "
              "the machine was (other jobs share its cores). "
              + ("Every rank count wrote the same PNGs byte for byte." if same else
                 "WARNING: the rank counts wrote different PNGs.")]
    meta = {**machine(), "method": args.method, "images": args.images, "size": [h, w],
            "threads_per_rank": args.threads, "device": args.device, "cores": os.cpu_count(),
            "identical_outputs": same, "command": command}
    write_results(args.name, rows, "\n".join(lines), meta)
    print("\n".join(lines))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
