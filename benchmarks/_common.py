"""Shared helpers of the benchmark scripts: timing, peak memory, markdown/JSON output."""
from __future__ import annotations

import gc
import json
import platform
import threading
import time
from pathlib import Path
from typing import Any, Callable

import torch

RESULTS = Path(__file__).resolve().parent / "results"


class PeakMemory:
    """Peak memory above the starting level while the block runs: CUDA allocator statistics
    on a GPU, resident-set size sampled every millisecond (psutil) on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak = 0

    def __enter__(self) -> "PeakMemory":
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        import psutil

        self._proc = psutil.Process()
        self._base = self._proc.memory_info().rss
        self._stop = False
        self._max = self._base

        def poll() -> None:
            while not self._stop:
                self._max = max(self._max, self._proc.memory_info().rss)
                time.sleep(0.001)

        self._thread = threading.Thread(target=poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._base
            return
        self._max = max(self._max, self._proc.memory_info().rss)
        self._stop = True
        self._thread.join()
        self.peak = self._max - self._base


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fwd_bwd(
    fn: Callable[[], torch.Tensor], params: list[torch.Tensor], device: torch.device,
    repeats: int = 3, warmup: int = 1,
) -> dict[str, float]:
    """Median forward and backward seconds of ``fn`` (backward of ``out.sum()``)."""
    fwd, bwd = [], []
    for i in range(warmup + repeats):
        for p in params:
            p.grad = None
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        t1 = time.perf_counter()
        out.float().square().sum().backward()
        sync(device)
        t2 = time.perf_counter()
        if i >= warmup:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
        del out
    fwd.sort()
    bwd.sort()
    return {"forward_s": fwd[len(fwd) // 2], "backward_s": bwd[len(bwd) // 2]}


def machine() -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def write_results(name: str, rows: list[dict[str, Any]], table: str, meta: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    (RESULTS / f"{name}.md").write_text(table + "\n")
