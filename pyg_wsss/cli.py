"""The ``pyg-wsss`` command: pseudo-labels for your own dataset, their evaluation and pictures.

Sub-commands (``pyg-wsss <command> --help`` shows each one with a worked example):

* ``pseudo-label``: run a method (:mod:`pyg_wsss.pipelines.methods`) over a dataset read by
  :func:`pyg_wsss.data.open_dataset` with the resumable driver
  :func:`pyg_wsss.pseudo.generate`; writes one palette PNG per image (pixel values = the
  dataset's category ids), ``classes.json``, ``run.json`` and ``failures.tsv``;
* ``train`` / ``predict``: the stage-2 network on pseudo-labels (one process, or
  DistributedDataParallel under torchrun) and its label PNGs for a folder of images;
* ``evaluate``: mIoU and per-class IoU of a folder of label PNGs against ground truth;
* ``show``: an overlay grid (image | labels | ground truth) with a class-colour legend;
* ``demo`` / ``bench``: the demo (:mod:`pyg_wsss.demo`) and the benchmark scripts.

The command only wires readers, methods and the driver together. Exit codes: 0 all done,
1 some images failed (listed in ``failures.tsv``), 2 bad arguments or an unreadable dataset
(one line on stderr, ``pyg-wsss: error: <reason>``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn, Sequence

import numpy as np

PROG = "pyg-wsss"
IGNORE = 255
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class CommandError(Exception):
    """A problem that ends the command with exit code 2 and one line on stderr."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line ``pyg-wsss: error: <reason>`` on bad arguments."""

    def error(self, message: str) -> NoReturn:
        hint = f" (see {self.prog} --help)"
        sys.stderr.write(f"{PROG}: error: {message}{hint}\n")
        sys.exit(2)


_Formatter = argparse.RawDescriptionHelpFormatter


# ============================================================================ helpers
def _fail(message: str) -> NoReturn:
    raise CommandError(message)


def _read_config(path: str | None) -> dict[str, Any] | None:
    """Method settings from a JSON or TOML file (a flat table of ``key = value``; a table
    named after the method is accepted too)."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        _fail(f"config file not found: {p}")
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # Python 3.10: the tomli backport (a dependency there)
            import tomli as tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            _fail(f"malformed TOML in {p}: {err}")
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            _fail(f"malformed JSON in {p}: {err.msg} at line {err.lineno} column {err.colno}")
    if not isinstance(data, dict):
        _fail(f"{p} must hold a table of settings, got {type(data).__name__}")
    return data


def _method_config(data: dict[str, Any] | None, method: str) -> dict[str, Any] | None:
    if data is None:
        return None
    if set(data) == {method} and isinstance(data[method], dict):
        return dict(data[method])
    return data


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("pyg-wsss", "torch", "torch_geometric", "numpy", "opencv-python-headless",
                 "pycocotools", "pydensecrf2"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _atomic_json(path: Path, obj: Any) -> None:
    from .pseudo.driver import atomic_write

    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def _open_dataset(args: argparse.Namespace, need_images: bool = True,
                  default_names: Path | None = None) -> Any:
    """The dataset of ``--images`` and the annotation options; exits 2 when unreadable.
    ``default_names``: a ``classes.json`` naming the classes of a mask folder when
    ``--class-names`` is not given."""
    try:
        from .data import open_dataset
    except ImportError as err:  # pragma: no cover - readers missing in this version
        _fail(f"this version of pyg_wsss has no dataset readers ({err})")
    kwargs = {}
    for key in ("coco", "voc_xml", "masks", "scribbles", "points", "tags"):
        value = getattr(args, key, None)
        if value is not None:
            kwargs[key] = value
    names = getattr(args, "class_names", None)
    if names is None and default_names is not None and default_names.is_file():
        names = default_names
    if names is not None and "coco" not in kwargs:
        kwargs["class_names"] = str(names)
    images = getattr(args, "images", None)
    if need_images and images is None:
        _fail("--images DIR is required")
    if images is not None and not Path(images).is_dir():
        _fail(f"--images: not a folder: {images}")
    try:
        return open_dataset(images, **kwargs)  # type: ignore[arg-type]  # checked above
    except ImportError as err:
        _fail(str(err).splitlines()[0])
    except (ValueError, OSError, KeyError, TypeError) as err:
        _fail(" ".join(str(err).split()) or type(err).__name__)


def _lookup_to_contiguous(category_ids: Sequence[int]) -> np.ndarray:
    """``uint8 [256]`` table: dataset id -> contiguous index (unknown ids -> 255)."""
    table = np.full(256, IGNORE, dtype=np.uint8)
    for k, cid in enumerate(category_ids):
        if 0 <= int(cid) < 256:
            table[int(cid)] = k
    return table


def _pred_path(pred: Path, name: str, index: int) -> Path:
    """Where ``pseudo-label`` wrote the PNG of the image named ``name`` (the driver's
    output-name rule: sub-folders kept, odd characters replaced)."""
    from .pseudo.driver import output_name

    try:
        return pred / f"{output_name(name, index)}.png"
    except ValueError:
        return pred / f"{name}.png"


def _read_png(path: Path) -> np.ndarray:
    """A label PNG's raw values (palette indices or grey levels), ``uint8 [H, W]``; other
    modes, unreadable files: :class:`ValueError` naming the file."""
    from .data.io import read_label_png

    return read_label_png(path, modes=("P", "L"))


# ============================================================================ pseudo-label
PSEUDO_EXAMPLE = """\
example (a COCO detection dataset with images in sub-folders, A2GNN from the boxes):

  pyg-wsss pseudo-label --images data/images --coco data/instances.json \\
      --supervision box --method a2gnn --out labels/ --device auto

  writes labels/<file_name without extension>.png for every image (sub-folders mirrored):
  palette PNGs whose pixel values are the dataset's category ids (0 = background,
  255 = unlabelled), labels/classes.json (value -> class name), labels/run.json
  (arguments, package versions, device, seconds per image, counts) and
  labels/failures.tsv (images that failed, with the reason). Run the same command again
  after an interruption: finished images are skipped. --overwrite recomputes them.

other inputs:
  --voc-xml Annotations/            Pascal VOC XML boxes (difficult objects honoured)
  --masks SegmentationClass/        label PNGs (ground truth; tags from them)
  --scribbles DIR / --points FILE   scribble PNGs / point JSON for those supervisions
  --tags FILE                       image tags (CSV or JSON) for tag supervision

methods and supervisions:
{methods}

settings: --config FILE (JSON or TOML, flat "key = value"), e.g. for a2gnn
  {{"stage1_epochs": 20, "stage2_epochs": 20, "hidden_channels": 32, "affinity_epochs": 3}}
unknown keys are an error that names them.

exit codes: 0 all images done; 1 some images failed (see OUT/failures.tsv);
2 bad arguments or an unreadable dataset.

many processes: torchrun --nproc_per_node N -m pyg_wsss pseudo-label ... splits the images
over N ranks balanced by image size (the same split on every rank, no communication); each
rank writes its PNGs into the same --out, rank 0 writes classes.json and one run.json for
all. A rank that dies ends the job with an error; the same command again goes on where it
stopped. (RANK / WORLD_SIZE without MASTER_ADDR: shard only, one run.rank<R>.json each.) The
driver's claim files also let several plain runs share one folder.
"""


def _methods_help() -> str:
    import textwrap

    from .pipelines.methods import method_settings, method_summaries

    lines = []
    for name, (sups, summary) in method_summaries().items():
        text = f"{name} ({', '.join(sups)}): {summary}."
        keys = method_settings(name)
        if keys:
            text += " Settings: " + ", ".join(keys) + "."
        lines.append(textwrap.fill(text, 88, initial_indent="  ", subsequent_indent="      "))
    return "\n".join(lines)


def _add_dataset_args(p: argparse.ArgumentParser, images_required: bool) -> None:
    p.add_argument("--images", metavar="DIR", required=images_required,
                   help="folder of the images (file names as in the annotations)")
    p.add_argument("--coco", metavar="FILE", help="COCO instances JSON (boxes, masks)")
    p.add_argument("--voc-xml", metavar="DIR", dest="voc_xml",
                   help="folder of Pascal VOC XML annotations (boxes)")
    p.add_argument("--masks", metavar="DIR", help="folder of label PNGs (palette or grey)")
    p.add_argument("--class-names", metavar="FILE", dest="class_names",
                   help="JSON {id: name} (e.g. a classes.json) naming the classes of --masks "
                        "or --voc-xml")


def _add_pseudo_label(sub: Any) -> None:
    from .pipelines.methods import METHODS, SUPERVISION_KEYS

    p = sub.add_parser(
        "pseudo-label", formatter_class=_Formatter,
        help="pseudo-labels for a dataset with a weakly supervised method",
        description="Make pixel pseudo-labels for every image of a dataset from weak labels "
                    "(boxes, image tags, scribbles or points), resumably.",
        epilog=PSEUDO_EXAMPLE.format(methods=_methods_help()),
    )
    _add_dataset_args(p, images_required=True)
    p.add_argument("--scribbles", metavar="DIR", help="folder of scribble PNGs")
    p.add_argument("--points", metavar="FILE", help="point annotations (JSON)")
    p.add_argument("--tags", metavar="FILE", help="image tags (CSV or JSON)")
    p.add_argument("--supervision", required=True, choices=list(SUPERVISION_KEYS))
    p.add_argument("--method", required=True, choices=list(METHODS))
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--device", default="cpu",
                   help="cpu, cuda, cuda:N or auto (cuda when available) [cpu]")
    p.add_argument("--config", metavar="FILE", help="method settings (JSON or TOML)")
    p.add_argument("--overwrite", action="store_true",
                   help="recompute images whose PNG already exists")
    p.add_argument("--batch-size", type=int, default=1, metavar="N",
                   help="images per method call [1]")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_dist_args(p)
    p.set_defaults(func=cmd_pseudo_label)


def _add_dist_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("under torchrun (several processes)")
    g.add_argument("--dist-backend", default="auto", choices=("auto", "gloo", "nccl"),
                   help="torch.distributed backend: auto = nccl with CUDA, gloo otherwise "
                        "[auto]")
    g.add_argument("--dist-timeout", type=float, default=1800.0, metavar="SECONDS",
                   help="how long a rank waits for the others at a barrier before the job "
                        "ends with an error [1800]")


def _given(args: argparse.Namespace, *keys: str) -> list[str]:
    return [k for k in keys if getattr(args, k, None) is not None]


def _check_pseudo_args(args: argparse.Namespace) -> None:
    """The flag combinations of ``pseudo-label`` (exit 2 naming the flags)."""
    from .pipelines.methods import MethodError, check_combination

    given = _given(args, "coco", "voc_xml", "masks")
    if len(given) > 1:
        flags = ", ".join("--" + g.replace("_", "-") for g in given)
        _fail(f"give only one of --coco FILE, --voc-xml DIR or --masks DIR (got {flags})")
    if not given and not _given(args, "tags", "scribbles", "points"):
        _fail("give the annotations: --coco FILE, --voc-xml DIR or --masks DIR (or only "
              "--tags / --scribbles / --points)")
    if args.batch_size < 1:
        _fail(f"--batch-size must be at least 1, got {args.batch_size}")
    try:
        check_combination(args.method, args.supervision)
    except MethodError as err:
        _fail(str(err))


def _pseudo_device(text: str) -> Any:
    """``--device`` of ``pseudo-label``; under torchrun ``cuda`` is the local rank's GPU."""
    from .pipelines.methods import MethodError, resolve_device

    try:
        device = resolve_device(text)
    except (MethodError, RuntimeError) as err:
        _fail(str(err))
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        from .distributed import device_for_rank  # under torchrun: one GPU per local rank

        device = device_for_rank(device)
    return device


def _pseudo_dataset(args: argparse.Namespace) -> Any:
    """The dataset of ``pseudo-label``, with category ids that fit a PNG and an image."""
    dataset = _open_dataset(args)
    ids = [int(c) for c in dataset.category_ids]
    too_big = [c for c in ids if c > 254 or c < 0]
    if too_big:
        _fail(f"category ids must be in 1..254 to be written as PNG values (255 = unlabelled); "
              f"the dataset has {', '.join(map(str, too_big[:5]))}"
              + (" ..." if len(too_big) > 5 else ""))
    if len(dataset) == 0:
        _fail("the dataset has no images")
    return dataset


def _fit_method(method: Any, dataset: Any, out: Path, args: argparse.Namespace) -> float:
    """Train ``method`` on the dataset's labels when it needs it and work is left; seconds."""
    from .pipelines.methods import MethodError

    if not (method.needs_fit and _work_left(dataset, out, args.overwrite)):
        return 0.0
    print(f"training on the dataset's {args.supervision} labels "
          f"({len(dataset)} images) ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        method.fit(dataset)
    except MethodError as err:
        _fail(str(err))
    except (RuntimeError, ValueError) as err:  # nothing can be labelled without it
        _fail(f"training {args.method} on the dataset failed: {type(err).__name__}: "
              + " ".join(str(err).split()))
    return time.perf_counter() - t0


def _run_record(args: argparse.Namespace, method: Any, device: Any, dataset: Any,
                summary: Any, seconds: dict[str, float], times: tuple[float, float]) -> dict:
    """The contents of ``run.json`` (``times``: fit seconds, total seconds)."""
    fit_seconds, total = times
    return {
        "command": "pseudo-label",
        "arguments": _arguments(args),
        "method": method.describe(),
        "device": str(device),
        "versions": _versions(),
        "images": len(dataset),
        "done": summary.done,
        "skipped": summary.skipped,
        "failed": summary.failed,
        "fit_seconds": round(fit_seconds, 3),
        "seconds": round(total, 3),
        "seconds_per_image": (round(float(np.mean(list(seconds.values()))), 4)
                              if seconds else None),
        "image_seconds": {k: round(v, 4) for k, v in seconds.items()},
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _report(summary: Any, out: Path) -> int:
    """Print the summary line (and the first failures); the exit code."""
    print(f"{summary.done} written, {summary.skipped} already done, {summary.failed} failed "
          f"-> {out}")
    if not summary.failed:
        return 0
    for name, reason in summary.failures[:20]:
        print(f"  failed: {name}: {reason}")
    if len(summary.failures) > 20:
        print(f"  ... and {len(summary.failures) - 20} more")
    print(f"{summary.failed} images failed, see {out / 'failures.tsv'}")
    return 1


def cmd_pseudo_label(args: argparse.Namespace) -> int:
    """``pyg-wsss pseudo-label``."""
    from .pipelines.methods import MethodError, check_dataset, get_method

    _check_pseudo_args(args)
    config = _method_config(_read_config(args.config), args.method)
    device = _pseudo_device(args.device)
    dataset = _pseudo_dataset(args)
    try:
        check_dataset(dataset, args.supervision)
        method = get_method(args.method, args.supervision, dataset, config, device,
                            progress=not args.no_progress)
    except MethodError as err:
        _fail(str(err))

    out = Path(args.out)
    rank, world = _torchrun_rank()
    group = world > 1 and _start_group(args)  # a process group: one run.json by rank 0
    run_path = out / ("run.json" if world == 1 or group else f"run.rank{rank}.json")
    _check_previous_run(run_path, args)
    out.mkdir(parents=True, exist_ok=True)
    if group:
        _group_barrier("start (every rank has read the arguments and the dataset)")
    classes = {str(int(cid)): name for cid, name in zip(dataset.category_ids,
                                                         dataset.class_names)}
    classes[str(IGNORE)] = "unlabelled"
    if rank == 0 or not group:
        _atomic_json(out / "classes.json", classes)

    start = time.perf_counter()
    fit_seconds = _fit_method(method, dataset, out, args)
    summary, seconds = _run_driver(dataset, method, out, args, device)
    total = time.perf_counter() - start
    ranks = None
    if group:
        summary, seconds, ranks = _merge_ranks(summary, seconds, total)
    seconds = {**_previous_seconds(run_path, args), **seconds}
    record = _run_record(args, method, device, dataset, summary, seconds, (fit_seconds, total))
    if ranks is not None:
        record["world_size"] = world
        record["ranks"] = ranks
    if rank == 0 or not group:
        _atomic_json(run_path, record)
    if group:
        _end_group()
    return _report(summary, out)


_PATH_ARGS = ("images", "coco", "voc_xml", "masks", "class_names", "scribbles", "points",
              "tags", "config", "out")


def _work_left(dataset: Any, out: Path, overwrite: bool) -> bool:
    """Whether some image still lacks its PNG (so dataset-level training is needed)."""
    if overwrite or not hasattr(dataset, "names"):
        return True
    return any(not _pred_path(out, n, i).is_file() for i, n in enumerate(dataset.names))


def _previous_seconds(run_path: Path, args: argparse.Namespace) -> dict[str, float]:
    """Seconds per image recorded by an earlier run of the same command (kept on reruns)."""
    if args.overwrite or not run_path.is_file():
        return {}
    try:
        old = json.loads(run_path.read_text(encoding="utf-8")).get("image_seconds", {})
        return {str(k): float(v) for k, v in old.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def _arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The arguments for ``run.json``, paths made absolute."""
    out = {k: v for k, v in vars(args).items() if k != "func"}
    for k in _PATH_ARGS:
        if out.get(k) is not None:
            out[k] = str(Path(out[k]).resolve())
    return out


_RUN_KEYS = ("method", "supervision", "images", "coco", "voc_xml", "masks", "class_names",
             "scribbles", "points", "tags", "config")


def _check_previous_run(run_path: Path, args: argparse.Namespace) -> None:
    """Refuse to mix two different runs in one folder (unless ``--overwrite``)."""
    if args.overwrite or not run_path.is_file():
        return
    try:
        old = json.loads(run_path.read_text(encoding="utf-8")).get("arguments", {})
    except (OSError, ValueError, AttributeError):
        return
    now = _arguments(args)
    changed = [k for k in _RUN_KEYS if k in old and old.get(k) != now.get(k)]
    if changed:
        what = ", ".join(f"--{k.replace('_', '-')} {old.get(k)!r}" for k in changed)
        _fail(f"{run_path.parent} holds the outputs of another run ({what}); use another "
              "--out or --overwrite to replace them")


def _torchrun_rank() -> tuple[int, int]:
    """``(RANK, WORLD_SIZE)`` from the environment (torchrun), ``(0, 1)`` without it."""
    try:
        return int(os.environ.get("RANK", 0)), max(int(os.environ.get("WORLD_SIZE", 1)), 1)
    except ValueError:
        _fail("RANK and WORLD_SIZE must be integers")


def _start_group(args: argparse.Namespace) -> bool:
    """Join torchrun's process group (``MASTER_ADDR`` set); ``False`` without one (RANK /
    WORLD_SIZE alone: every process only takes its shard)."""
    from .distributed import DistributedError, init_distributed, is_initialized

    if is_initialized():  # joined by the caller (e.g. a script calling main()): keep it
        return True
    if not os.environ.get("MASTER_ADDR") or not os.environ.get("MASTER_PORT"):
        return False

    if not args.dist_timeout > 0:
        _fail(f"--dist-timeout must be positive, got {args.dist_timeout}")
    try:
        init_distributed(backend=args.dist_backend, timeout=args.dist_timeout)
    except (DistributedError, ValueError) as err:
        _fail(str(err))
    _OWN_GROUP.append(True)
    return True


_OWN_GROUP: list[bool] = []  # non-empty: this command created the process group


def _group_barrier(what: str) -> None:
    from .distributed import DistributedError, barrier

    try:
        barrier(name=what)
    except DistributedError as err:
        _fail(str(err))


def _end_group() -> None:
    """Destroy the process group if this command created it."""
    from .distributed import cleanup

    if _OWN_GROUP:
        _OWN_GROUP.clear()
        cleanup()


def _merge_ranks(summary: Any, seconds: dict[str, float],
                 total: float) -> tuple[Any, dict[str, float], list[dict[str, Any]]]:
    """Every rank's counts and seconds per image, gathered (the gather is the end barrier)."""
    import dataclasses
    import socket

    from .distributed import DistributedError, all_gather_object, rank

    mine = {"rank": rank(), "host": socket.gethostname(), "pid": os.getpid(),
            "total": summary.total, "done": summary.done, "skipped": summary.skipped,
            "failed": summary.failed, "busy": getattr(summary, "busy", 0),
            "failures": list(summary.failures), "seconds": round(total, 3),
            "image_seconds": seconds}
    try:
        parts = all_gather_object(mine)
    except DistributedError as err:
        _fail(f"{err} (the images written so far are kept: run the same command again)")
    merged: dict[str, float] = {}
    for part in parts:
        merged.update(part.pop("image_seconds"))
    failures = [tuple(f) for part in parts for f in part.pop("failures")]
    fields = {f.name for f in dataclasses.fields(summary)}
    values = {k: sum(int(p[k]) for p in parts) for k in ("total", "done", "skipped", "failed",
                                                         "busy") if k in fields}
    summary = dataclasses.replace(summary, failures=failures, **values)
    return summary, merged, parts


def _shard_kwargs(dataset: Any, rank: int, world: int) -> dict[str, Any]:
    """This rank's images: balanced by image size when the dataset knows its sizes
    (:func:`pyg_wsss.distributed.shard_by_size`), else the driver's round-robin by name."""
    sizes = getattr(dataset, "sizes", None)
    if sizes is not None:
        from .distributed import shard_by_size

        try:
            sizes = list(sizes)
        except (OSError, ValueError):  # an unreadable image header: round-robin instead
            sizes = None
        if sizes is not None and len(sizes) == len(dataset):
            return {"indices": shard_by_size(sizes, world)[rank]}
    return {"shard": (rank, world)}


def _run_driver(dataset: Any, method: Any, out: Path, args: argparse.Namespace,
                device: Any) -> tuple[Any, dict[str, float]]:
    """The resumable driver on ``dataset`` (this rank's share under torchrun), mapping the
    labels to the dataset's category ids; returns the summary and the seconds per image."""
    from .pseudo.driver import GenerateConfig, generate

    seconds: dict[str, float] = {}
    config = GenerateConfig(
        batch_size=args.batch_size, device=device, progress=not args.no_progress,
        overwrite=args.overwrite, label_transform=dataset.to_category_ids,
        names=list(dataset.names) if hasattr(dataset, "names") else None,
        on_done=lambda name, s: seconds.__setitem__(str(name), float(s)),
    )
    rank, world = _torchrun_rank()
    if world > 1:  # under torchrun: every rank takes its share
        config = config.replace(**_shard_kwargs(dataset, rank, world))
    summary = generate(dataset, method, out, config)
    return summary, seconds


# ============================================================================ train, predict
TRAIN_EXAMPLE = """\
example (stage 2 on the pseudo-labels of pyg-wsss pseudo-label ... --out labels/):

  pyg-wsss train --images data/images --labels labels/ --out stage2/ --iterations 2000

  trains a DeepLab-style network (ASPP over --backbone) on the images that have a label PNG
  (pixel values = category ids as pseudo-label writes them, 255 = ignored; the classes come
  from labels/classes.json). Writes stage2/checkpoint.pt (every --checkpoint-every
  iterations and at the end; the same command again resumes from it, on any number of
  processes), stage2/train.json (losses, settings) and stage2/classes.json.

several processes (one per GPU, or CPU processes on gloo), same global --batch-size:

  torchrun --nproc_per_node 4 -m pyg_wsss train --images data/images --labels labels/ \\
      --out stage2/ --batch-size 8 --sync-batchnorm

  DistributedDataParallel + DistributedSampler: every process takes batch-size / N images
  of each global batch, so N processes follow one process's loss curve (exactly so with
  --freeze-bn or --sync-batchnorm; SyncBatchNorm needs GPUs). Checkpoints come from rank 0.
"""

PREDICT_EXAMPLE = """\
example:

  pyg-wsss predict --images data/val_images --checkpoint stage2/checkpoint.pt \\
      --out predictions/

  writes predictions/<image name>.png (palette PNGs whose values are the category ids of
  the training labels) and predictions/classes.json; resumable like pseudo-label (finished
  images are skipped). Under torchrun every process predicts its share of the images.
"""


def _add_train(sub: Any) -> None:
    p = sub.add_parser(
        "train", formatter_class=_Formatter, help="train the stage-2 network on pseudo-labels",
        description="Train a DeepLab-style segmentation network on images and label PNGs "
                    "(one process or DistributedDataParallel under torchrun).",
        epilog=TRAIN_EXAMPLE)
    p.add_argument("--images", required=True, metavar="DIR", help="folder of the images")
    p.add_argument("--labels", required=True, metavar="DIR",
                   help="folder of label PNGs named like the images (e.g. pseudo-labels)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--iterations", type=int, default=2000, metavar="N", help="[2000]")
    p.add_argument("--batch-size", type=int, default=8, metavar="N",
                   help="global batch, split over the processes [8]")
    p.add_argument("--crop-size", type=int, default=321, metavar="PX", help="[321]")
    p.add_argument("--backbone", default="efficientnet_lite0",
                   help="small_cnn, efficientnet_lite0, vgg16_dilated, resnet50, resnet101 "
                        "[efficientnet_lite0]")
    p.add_argument("--no-pretrained", action="store_true",
                   help="random initial backbone weights (small_cnn always)")
    p.add_argument("--rates", default="6,12,18,24", help="ASPP dilation rates [6,12,18,24]")
    p.add_argument("--aspp-channels", type=int, default=256, metavar="N", help="[256]")
    p.add_argument("--lr", type=float, default=2.5e-4, help="base learning rate [2.5e-4]")
    p.add_argument("--freeze-bn", action="store_true", help="BatchNorm layers in eval mode")
    p.add_argument("--sync-batchnorm", action="store_true",
                   help="SyncBatchNorm over the processes (GPUs)")
    p.add_argument("--checkpoint-every", type=int, default=500, metavar="N", help="[500]")
    p.add_argument("--seed", type=int, default=0, help="[0]")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto [auto]")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_dist_args(p)
    p.set_defaults(func=cmd_train)


def _add_predict(sub: Any) -> None:
    p = sub.add_parser(
        "predict", formatter_class=_Formatter, help="label images with a trained network",
        description="Label PNGs for a folder of images with a pyg-wsss train checkpoint.",
        epilog=PREDICT_EXAMPLE)
    p.add_argument("--images", required=True, metavar="DIR", help="folder of the images")
    p.add_argument("--checkpoint", required=True, metavar="FILE",
                   help="checkpoint.pt of pyg-wsss train")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--scales", default="1", help="comma-separated test scales [1]")
    p.add_argument("--flip", action="store_true", help="average with the flipped image")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto [auto]")
    p.add_argument("--overwrite", action="store_true", help="recompute existing PNGs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_dist_args(p)
    p.set_defaults(func=cmd_predict)


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        _fail(f"{what} must be comma-separated integers, got {text!r}")
    if not values or min(values) < 1:
        _fail(f"{what} must be positive integers, got {text!r}")
    return values


def _dist_device(text: str) -> Any:
    from .distributed import device_for_rank

    try:
        device = device_for_rank(text)
    except (RuntimeError, ValueError) as err:
        _fail(f"--device {text!r}: {err}")
    if device.type == "cuda" and not __import__("torch").cuda.is_available():
        _fail("--device cuda: CUDA is not available here")
    return device


def _check_train_args(args: argparse.Namespace) -> list[int]:
    """The numeric flags of ``train`` (exit 2 naming the flag); the ASPP ``--rates``."""
    for key in ("iterations", "batch_size", "crop_size", "checkpoint_every", "aspp_channels"):
        if getattr(args, key) < 1:
            _fail(f"--{key.replace('_', '-')} must be at least 1, got {getattr(args, key)}")
    if not args.lr > 0:
        _fail(f"--lr must be positive, got {args.lr}")
    return _int_list(args.rates, "--rates")


def _train_data(args: argparse.Namespace) -> tuple[Any, Any, list[int], list[str]]:
    """``(image folder, dataset, category ids, class names)``: the images that have a label
    PNG, their labels mapped to contiguous classes."""
    from .segmentation import folders as sf

    images, labels = Path(args.images), Path(args.labels)
    for flag, d in (("--images", images), ("--labels", labels)):
        if not d.is_dir():
            _fail(f"{flag}: not a folder: {d}")
    try:
        folder = sf.ImageFolder(images)
    except ValueError as err:
        _fail(str(err))
    have = [n for n in folder.names if (labels / f"{n}.png").is_file()]
    if not have:
        _fail(f"no image of {images} has a label PNG <name>.png in {labels}")
    folder = sf.ImageFolder(images, only=set(have))
    try:
        ids, names = sf.category_ids_of(labels, folder.names)
    except ValueError as err:
        _fail(str(err))
    if len(ids) < 2:
        _fail(f"the labels in {labels} hold one class only ({names[0]}): nothing to learn")
    table = sf.to_contiguous(ids)
    dataset = sf.folder_dataset(folder, labels, table, crop_size=args.crop_size, flip=True)
    return folder, dataset, ids, names


def _train_model(args: argparse.Namespace, meta: dict[str, Any]) -> Any:
    """The stage-2 network of ``--backbone`` (ImageNet weights unless --no-pretrained)."""
    import torch

    from .segmentation import folders as sf

    torch.manual_seed(args.seed)
    pretrained = not args.no_pretrained and args.backbone.lower() not in ("small_cnn",
                                                                         "small-cnn")
    try:
        if pretrained:
            from .segmentation.deeplab import build_deeplab

            return build_deeplab(meta["num_classes"], backbone=args.backbone, pretrained=True,
                                 aspp_channels=args.aspp_channels, rates=tuple(meta["rates"]))
        return sf.model_from_meta(meta)
    except (ValueError, TypeError, OSError, RuntimeError) as err:
        _fail(f"--backbone {args.backbone}: {' '.join(str(err).split())}")


def _write_train_outputs(args: argparse.Namespace, out: Path, meta: dict[str, Any],
                         history: list[float], facts: dict[str, Any]) -> None:
    """``classes.json`` and ``train.json`` (losses merged with a resumed run's) from rank 0;
    ``facts``: world size, device, images, seconds."""
    ids, names = meta["category_ids"], meta["class_names"]
    classes = {str(c): n for c, n in zip(ids, names)}
    classes[str(IGNORE)] = "unlabelled"
    _atomic_json(out / "classes.json", classes)
    old = _json_or_empty(out / "train.json").get("losses", {})
    losses = {**{str(k): v for k, v in old.items()},
              **{str(args.iterations - len(history) + i): round(v, 6)
                 for i, v in enumerate(history)}}
    _atomic_json(out / "train.json", {
        "command": "train", "arguments": _arguments(args), "world_size": facts["world"],
        "device": str(facts["device"]), "versions": _versions(), "images": facts["images"],
        "model": meta, "losses": losses, "seconds": facts["seconds"],
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    last = f", last loss {history[-1]:.4f}" if history else " (nothing left to do)"
    print(f"trained {len(history)} iterations on {facts['images']} images with "
          f"{facts['world']} process(es){last} -> {out / 'checkpoint.pt'}")


def cmd_train(args: argparse.Namespace) -> int:
    """``pyg-wsss train``."""
    from .distributed import DistributedError, is_main, world_size
    from .segmentation.distributed import train_segmentation_distributed
    from .segmentation.train import SegmentationTrainConfig

    rates = _check_train_args(args)
    folder, dataset, ids, names = _train_data(args)
    group = _join_for_training(args)
    world = world_size()
    if args.batch_size % world:
        _fail(f"--batch-size {args.batch_size} must be a multiple of the {world} processes")
    device = _dist_device(args.device)
    if args.sync_batchnorm and world > 1 and device.type == "cpu":
        _fail("--sync-batchnorm needs GPUs (torch's SyncBatchNorm has no CPU kernel); use "
              "--freeze-bn on CPU")
    meta = {"backbone": args.backbone, "rates": rates, "aspp_channels": args.aspp_channels,
            "num_classes": len(ids), "category_ids": ids, "class_names": names}
    model = _train_model(args, meta)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = SegmentationTrainConfig(
        iterations=args.iterations, batch_size=args.batch_size, lr=args.lr,
        freeze_bn=args.freeze_bn, sync_batchnorm=args.sync_batchnorm,
        checkpoint=out / "checkpoint.pt", checkpoint_every=args.checkpoint_every,
        device=device, seed=args.seed, progress=not args.no_progress and is_main(), meta=meta)
    history: list[float] = []
    start = time.perf_counter()
    try:
        train_segmentation_distributed(model, dataset, config, history=history)
    except (ValueError, FloatingPointError, DistributedError) as err:
        _fail(" ".join(str(err).split()))
    if is_main():
        _write_train_outputs(args, out, meta, history, {
            "world": world, "device": device, "images": len(folder),
            "seconds": round(time.perf_counter() - start, 3)})
    if group:
        _end_group()
    return 0


def _join_for_training(args: argparse.Namespace) -> bool:
    """Join torchrun's process group when ``WORLD_SIZE > 1`` (train / predict need one)."""
    if os.environ.get("WORLD_SIZE", "1") in ("", "1"):
        return False
    if not _start_group(args):
        _fail("WORLD_SIZE is set but MASTER_ADDR / MASTER_PORT are not: start several "
              "processes with torchrun (python -m torch.distributed.run)")
    return True


def _json_or_empty(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cmd_predict(args: argparse.Namespace) -> int:
    """``pyg-wsss predict``."""
    from .distributed import rank as dist_rank
    from .distributed import world_size
    from .pseudo.driver import generate
    from .segmentation.distributed import load_checkpoint
    from .segmentation.evaluate import predict_segmentation
    from .segmentation.folders import ImageFolder, model_from_meta, to_category

    try:
        scales = [float(v) for v in args.scales.split(",") if v.strip()]
    except ValueError:
        _fail(f"--scales must be comma-separated numbers, got {args.scales!r}")
    if not scales or min(scales) <= 0:
        _fail(f"--scales must be positive numbers, got {args.scales!r}")
    ckpt = Path(args.checkpoint)
    if not ckpt.is_file():
        _fail(f"--checkpoint: file not found: {ckpt}")
    if not Path(args.images).is_dir():
        _fail(f"--images: not a folder: {args.images}")
    try:
        state = load_checkpoint(ckpt)
        meta = state.get("meta", {})
        model = model_from_meta(meta)
        model.load_state_dict(state["model"])
        folder = ImageFolder(args.images)
    except (ValueError, RuntimeError) as err:
        _fail(" ".join(str(err).split()))
    group = _join_for_training(args)
    device = _dist_device(args.device)
    model.to(device).eval()
    ids = [int(c) for c in meta.get("category_ids", range(int(meta["num_classes"])))]
    names = list(meta.get("class_names", [str(c) for c in ids]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if dist_rank() == 0:
        classes = {str(c): n for c, n in zip(ids, names)}
        classes[str(IGNORE)] = "unlabelled"
        _atomic_json(out / "classes.json", classes)
    table = to_category(ids)

    def method(samples: list[dict[str, Any]], device: Any = None) -> list[np.ndarray]:
        return [predict_segmentation(model, s["image"], scales=scales, flip=args.flip,
                                     device=device) for s in samples]

    kwargs: dict[str, Any] = {}
    r, world = dist_rank(), world_size()
    if world > 1:
        kwargs.update(_shard_kwargs(folder, r, world))
    summary = generate(folder, method, out, device=device, progress=not args.no_progress,
                       overwrite=args.overwrite, label_transform=lambda a: table[a], **kwargs)
    if group:
        summary, _, _ = _merge_ranks(summary, {}, 0.0)
        _end_group()
    if r == 0:
        print(f"{summary.done} written, {summary.skipped} already done, {summary.failed} "
              f"failed -> {out}")
    return 1 if summary.failed else 0


# ============================================================================ evaluate
EVALUATE_EXAMPLE = """\
example (after pyg-wsss pseudo-label ... --out labels/):

  pyg-wsss evaluate --pred labels/ --coco data/instances.json --images data/images \\
      --json labels/eval.json

  prints "mIoU 0.xxxx" and a per-class IoU table, and writes them to labels/eval.json.
  With a folder of ground-truth label PNGs instead:

  pyg-wsss evaluate --pred labels/ --masks data/SegmentationClass

how pixels count: ground-truth void (255; COCO crowd regions) is left out. A predicted 255
(unlabelled) on a non-void pixel counts as a miss (it lowers the recall and IoU of the true
class). An image with ground truth but no prediction PNG counts as all 255 and is reported
as "missing". Prediction values are the dataset's category ids, as pseudo-label writes them.
"""


def _add_evaluate(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate", formatter_class=_Formatter, help="mIoU of label PNGs against ground truth",
        description="Mean IoU and per-class IoU of predicted label PNGs against ground truth "
                    "(COCO polygons/RLE, or a folder of label PNGs).",
        epilog=EVALUATE_EXAMPLE,
    )
    p.add_argument("--pred", required=True, metavar="DIR", help="predicted label PNGs")
    _add_dataset_args(p, images_required=False)
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=cmd_evaluate)


class _Truth:
    """Ground truth per image: ``(names, class_names, category_ids, get(i) -> contiguous
    mask)`` from a dataset or from a bare folder of label PNGs."""

    def __init__(self, args: argparse.Namespace, pred: Path) -> None:
        self.dataset = None
        if args.coco is not None or (args.masks is not None and args.images is not None) \
                or args.voc_xml is not None:
            if args.images is None:
                _fail("--coco and --voc-xml need --images DIR")
            self.dataset = _open_dataset(args, default_names=pred / "classes.json")
            self.names = list(self.dataset.names)
            self.class_names = list(self.dataset.class_names)
            self.category_ids = [int(c) for c in self.dataset.category_ids]
            return
        if args.masks is None:
            _fail("give the ground truth: --coco FILE --images DIR, or --masks DIR")
        root = Path(args.masks)
        if not root.is_dir():
            _fail(f"--masks: not a folder: {root}")
        self.files = {p.relative_to(root).with_suffix("").as_posix(): p
                      for p in sorted(root.rglob("*.png"))}
        if not self.files:
            _fail(f"--masks: no PNG files in {root}")
        self.names = list(self.files)
        names = _classes_json(pred)
        if args.class_names is not None:
            from .data.io import parse_class_names

            try:
                names = {str(k): v for k, v in parse_class_names(args.class_names).items()}
            except ValueError as err:
                _fail(str(err))
            names["0"] = "background"
        values: set[int] = set()
        for p in self.files.values():
            values |= set(np.unique(_read_png(p)).tolist())
        ids = sorted((values | {int(k) for k in names}) - {IGNORE} | {0})
        self.category_ids = ids
        self.class_names = [names.get(str(c), "background" if c == 0 else f"class {c}")
                            for c in ids]

    def __len__(self) -> int:
        return len(self.names)

    def mask(self, i: int) -> np.ndarray:
        if self.dataset is not None:
            sample = self.dataset[i]
            if "mask" not in sample:
                _fail("the dataset has no ground-truth masks to evaluate against")
            return np.asarray(sample["mask"], dtype=np.uint8)
        raw = _read_png(self.files[self.names[i]])
        return _lookup_to_contiguous(self.category_ids)[raw]


def _classes_json(folder: Path) -> dict[str, str]:
    path = folder / "classes.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        _fail(f"malformed JSON in {path}: {err}")
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _prediction_of(pred: Path, name: str, i: int, gt: np.ndarray,
                   table: np.ndarray) -> tuple[np.ndarray | None, str | None, int]:
    """``(contiguous labels or None, why it is unusable, pixels of unknown value)``; a
    missing PNG is all 255 with the reason ``"missing"``."""
    path = _pred_path(pred, name, i)
    if not path.is_file():
        return np.full(gt.shape, IGNORE, dtype=np.uint8), "missing", 0
    try:
        raw = _read_png(path)
    except (ValueError, OSError) as err:
        return None, f"prediction: {' '.join(str(err).split())}", 0
    if raw.shape != gt.shape:
        return None, (f"prediction is {raw.shape[1]}x{raw.shape[0]}, the "
                      f"ground truth {gt.shape[1]}x{gt.shape[0]}"), 0
    labels = table[raw]
    return labels, None, int(((labels == IGNORE) & (raw != IGNORE)).sum())


def _confusion(truth: Any, pred: Path) -> tuple[Any, dict[str, Any]]:
    """The confusion matrix of the predictions in ``pred`` against ``truth`` and the counts
    (``images``, ``missing``, ``unreadable``, ``unknown_pixels``)."""
    from .metrics import ConfusionMatrix

    table = _lookup_to_contiguous(truth.category_ids)
    cm = ConfusionMatrix(len(truth.category_ids), class_names=truth.class_names)
    counts: dict[str, Any] = {"images": 0, "missing": [], "unreadable": [],
                              "unknown_pixels": 0}
    for i, name in enumerate(truth.names):
        try:
            gt = truth.mask(i)
        except (ValueError, OSError) as err:
            counts["unreadable"].append((name, " ".join(str(err).split())))
            continue
        labels, problem, unknown = _prediction_of(pred, name, i, gt, table)
        if problem == "missing":
            counts["missing"].append(name)
        elif problem is not None:
            counts["unreadable"].append((name, problem))
            continue
        counts["unknown_pixels"] += unknown
        cm.update(labels, gt)
        counts["images"] += 1
    return cm, counts


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``pyg-wsss evaluate``."""
    pred = Path(args.pred)
    if not pred.is_dir():
        _fail(f"--pred: not a folder: {pred}")
    truth = _Truth(args, pred)
    cm, counts = _confusion(truth, pred)
    evaluated, missing = counts["images"], counts["missing"]
    unreadable, unknown = counts["unreadable"], counts["unknown_pixels"]
    if evaluated == 0:
        _fail("no image could be evaluated")
    iou = cm.iou()
    print(f"mIoU {cm.miou():.4f}")
    print(cm.table(fmt="text"))
    print(f"{evaluated} images evaluated, {len(missing)} missing predictions (counted as "
          f"unlabelled), {len(unreadable)} unreadable")
    for name, reason in unreadable[:10]:
        print(f"  unreadable: {name}: {reason}")
    if unknown:
        print(f"  {unknown} predicted pixels had values that are no category id (counted as "
              "unlabelled)")
    if args.json:
        result = {
            "miou": cm.miou(),
            "pixel_accuracy": cm.pixel_accuracy(),
            "coverage": cm.coverage(),
            "per_class": [
                {"category_id": cid, "name": n, "iou": None if not np.isfinite(v) else float(v)}
                for cid, n, v in zip(truth.category_ids, truth.class_names, iou)
            ],
            "images": evaluated,
            "missing": missing,
            "unreadable": [{"name": n, "reason": r} for n, r in unreadable],
            "unknown_pixels": unknown,
            "pred": str(pred),
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        _atomic_json(Path(args.json), result)
    return 0


# ============================================================================ show
SHOW_EXAMPLE = """\
example:

  pyg-wsss show --images data/images --pred labels/ --coco data/instances.json \\
      --num 6 --out labels/overview.png

  one row per image: the image, its labels over it and (with --coco or --masks) the
  ground truth over it, with a legend of the class colours (names from labels/classes.json).
  Background pixels keep the image; unlabelled (255) pixels are drawn in the void colour.
"""


def _add_show(sub: Any) -> None:
    p = sub.add_parser(
        "show", formatter_class=_Formatter, help="an overlay grid of images and labels",
        description="Draw images with their label PNGs (and ground truth) as one picture.",
        epilog=SHOW_EXAMPLE,
    )
    p.add_argument("--images", required=True, metavar="DIR", help="folder of the images")
    p.add_argument("--pred", required=True, metavar="DIR", help="label PNGs to draw")
    p.add_argument("--coco", metavar="FILE", help="COCO JSON for the ground truth")
    p.add_argument("--masks", metavar="DIR", help="ground-truth label PNGs")
    p.add_argument("--class-names", metavar="FILE", dest="class_names",
                   help="JSON {id: name} for --masks [PRED/classes.json]")
    p.add_argument("--num", type=int, default=4, metavar="N", help="images to draw [4]")
    p.add_argument("--out", required=True, metavar="FILE.png", help="output PNG")
    p.set_defaults(func=cmd_show)


def _find_image(root: Path, stem: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES + tuple(s.upper() for s in IMAGE_SUFFIXES):
        p = root / f"{stem}{suffix}"
        if p.is_file():
            return p
    return None


def _load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def legend_image(entries: Sequence[tuple[int, str]], width: int,
                 palette: np.ndarray) -> np.ndarray:
    """A white strip with one colour swatch + name per ``(value, name)``, wrapped to
    ``width`` pixels. ``uint8 [H, width, 3]``."""
    import cv2

    font, scale, row_h, sw = cv2.FONT_HERSHEY_SIMPLEX, 0.4, 20, 14
    items = []
    for value, name in entries:
        (tw, _), _ = cv2.getTextSize(str(name), font, scale, 1)
        items.append((value, str(name), sw + 6 + tw + 14))
    rows: list[list[tuple[int, str, int]]] = [[]]
    x = 8
    for item in items:
        if x + item[2] > width and rows[-1]:
            rows.append([])
            x = 8
        rows[-1].append(item)
        x += item[2]
    canvas = np.full((row_h * len(rows) + 8, max(width, 1), 3), 255, dtype=np.uint8)
    for r, row in enumerate(rows):
        x, y = 8, 4 + r * row_h
        for value, name, w in row:
            colour = tuple(int(c) for c in palette[value])
            cv2.rectangle(canvas, (x, y + 3), (x + sw, y + 3 + sw), colour, -1)
            cv2.rectangle(canvas, (x, y + 3), (x + sw, y + 3 + sw), (0, 0, 0), 1)
            cv2.putText(canvas, name, (x + sw + 6, y + 15), font, scale, (0, 0, 0), 1,
                        cv2.LINE_AA)
            x += w
    return canvas


def _overlay(image: np.ndarray, labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Classes and unlabelled (255) coloured over the image; background keeps the image."""
    from .viz import overlay_labels

    return overlay_labels(image, labels, alpha=0.6, palette=palette, ignore_index=None,
                          background=False)


def _show_sources(args: argparse.Namespace, pred: Path) -> tuple[Any, list[tuple]]:
    """``(dataset or None, [(index, stem, png path)])``: the first ``--num`` label PNGs, of
    the dataset's images with --coco / --masks, else of every PNG in ``pred``."""
    dataset = None
    if args.coco is not None or args.masks is not None:
        args.voc_xml = None
        dataset = _open_dataset(args, default_names=pred / "classes.json")
        stems = list(dataset.names)
        found: list[tuple[int | None, str, Path]] = [
            (i, s, _pred_path(pred, s, i)) for i, s in enumerate(stems)]
    else:
        stems = [p.relative_to(pred).with_suffix("").as_posix()
                 for p in sorted(pred.rglob("*.png"))]
        found = [(None, s, pred / f"{s}.png") for s in stems]
    found = [f for f in found if f[2].is_file()][: args.num]
    if not found:
        _fail(f"no label PNGs in {pred} for these images")
    return dataset, found


def _show_image(dataset: Any, images: Path, i: int | None,
                stem: str) -> tuple[np.ndarray, np.ndarray | None] | None:
    """``(image, ground truth in category ids or None)`` of one row; ``None`` (with a note
    on stderr) when the image cannot be read."""
    if dataset is None:
        path = _find_image(images, stem)
        if path is None:
            print(f"skipping {stem}: no image {stem}.* in {images}", file=sys.stderr)
            return None
        return _load_rgb(path), None
    try:
        sample = dataset[i]
    except (ValueError, OSError) as err:
        print(f"skipping {stem}: {' '.join(str(err).split())}", file=sys.stderr)
        return None
    gt = None
    if "mask" in sample:
        gt = np.asarray(dataset.to_category_ids(sample["mask"]), dtype=np.uint8)
    return np.asarray(sample["image"]), gt


def _show_rows(dataset: Any, images: Path, found: list[tuple],
               palette: np.ndarray) -> tuple[list[list[np.ndarray]], list[str], set[int]]:
    """The picture rows (image, labels over it[, ground truth over it]), their titles and
    the label values drawn."""
    rows: list[list[np.ndarray]] = []
    row_titles: list[str] = []
    seen: set[int] = set()
    for i, stem, png in found:
        labels = _read_png(png)
        got = _show_image(dataset, images, i, stem)
        if got is None:
            continue
        image, gt = got
        if labels.shape != image.shape[:2]:
            print(f"skipping {stem}: labels {labels.shape} vs image {image.shape[:2]}",
                  file=sys.stderr)
            continue
        row = [image, _overlay(image, labels, palette)]
        seen |= set(np.unique(labels).tolist())
        if gt is not None:
            row.append(_overlay(image, gt, palette))
            seen |= set(np.unique(gt).tolist())
        rows.append(row)
        row_titles.append(stem if len(stem) <= 14 else "..." + stem[-11:])
    if not rows:
        _fail("nothing to draw")
    return rows, row_titles, seen


def cmd_show(args: argparse.Namespace) -> int:
    """``pyg-wsss show``."""
    from PIL import Image

    from .viz import make_grid, voc_palette

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        _fail(f"--out must end in .png, got {out}")
    if args.num < 1:
        _fail(f"--num must be at least 1, got {args.num}")
    pred, images = Path(args.pred), Path(args.images)
    if not pred.is_dir():
        _fail(f"--pred: not a folder: {pred}")
    if not images.is_dir():
        _fail(f"--images: not a folder: {images}")
    if args.coco is not None and args.masks is not None:
        _fail("give at most one of --coco and --masks")
    names_of = _classes_json(pred)
    dataset, found = _show_sources(args, pred)
    palette = voc_palette(256)
    rows, row_titles, seen = _show_rows(dataset, images, found, palette)
    titles = ["image", "labels"] + (["ground truth"] if dataset is not None and
                                     any(len(r) == 3 for r in rows) else [])
    side = max(max(r[0].shape[:2]) for r in rows)
    scale = max(1.0, 160 / side)  # small images are drawn larger
    cell = (round(max(r[0].shape[0] for r in rows) * scale),
            round(max(r[0].shape[1] for r in rows) * scale))
    grid = make_grid(rows, col_titles=titles, row_titles=row_titles, cell_size=cell)
    entries = [(v, names_of.get(str(v), "unlabelled" if v == IGNORE else str(v)))
               for v in sorted(seen - {0})]
    legend = legend_image(entries, grid.shape[1], palette)
    canvas = np.concatenate([grid, legend], axis=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(out)
    print(f"wrote {out} ({len(rows)} images, {canvas.shape[1]}x{canvas.shape[0]})")
    return 0


# ============================================================================ demo, bench
DEMO_EXAMPLE = """\
example:

  pyg-wsss demo --contexts synthetic --num-images 4 --out outputs/demo

  runs every system on the synthetic set (and, by default, a real VOC photo) and writes
  outputs/demo/{results.json,results.md,synthetic.png}. The demo's own options follow.
"""

BENCH_EXAMPLE = """\
example:

  pyg-wsss bench                 # list the benchmark scripts
  pyg-wsss bench graphs --help   # one script's options
  pyg-wsss bench graphs          # run it (results under benchmarks/results/)

The benchmark scripts live in the repository's benchmarks/ folder; they are not part of
the installed package, so bench works from a clone (pip install -e .) only.
"""


def _benchmarks_dir() -> Path | None:
    for root in (Path(__file__).resolve().parents[1], Path.cwd()):
        d = root / "benchmarks"
        if d.is_dir() and any(d.glob("*.py")):
            return d
    return None


def _bench_scripts(d: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(d.glob("*.py")) if not p.name.startswith("_")}


def _script_summary(path: Path) -> str:
    import ast

    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    except (OSError, SyntaxError):
        return ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def cmd_demo(argv: list[str]) -> int:
    """``pyg-wsss demo [demo options]``: :func:`pyg_wsss.demo.main`."""
    if argv and argv[0] in ("-h", "--help"):
        print(f"usage: {PROG} demo [options]\n\nThe demo: every system's pseudo-labels on "
              f"the synthetic set and on a real VOC photo.\n\n{DEMO_EXAMPLE}")
    from .demo import main as demo_main

    try:
        return int(demo_main(argv) or 0)
    except SystemExit as exc:  # argparse --help / errors of the demo's parser
        return int(exc.code or 0) if isinstance(exc.code, int) else 2


def cmd_bench(argv: list[str]) -> int:
    """``pyg-wsss bench [NAME [script options]]``."""
    d = _benchmarks_dir()
    help_asked = not argv or argv[0] in ("-h", "--help", "--list")
    if help_asked:
        print(f"usage: {PROG} bench [NAME [options]]\n\nRun one of the benchmark scripts.\n\n"
              f"{BENCH_EXAMPLE}")
    if d is None:
        msg = ("the benchmark scripts (benchmarks/*.py) are not installed with the package; "
               "run pyg-wsss bench from a clone of the repository")
        if help_asked:
            print(msg)
            return 0
        _fail(msg)
    scripts = _bench_scripts(d)
    if help_asked:
        print(f"benchmark scripts in {d}:")
        for name, path in scripts.items():
            print(f"  {name:<14} {_script_summary(path)}")
        return 0
    name = argv[0].removesuffix(".py")
    if name not in scripts:
        _fail(f"unknown benchmark {argv[0]!r} (choose from {', '.join(scripts)})")
    return subprocess.call([sys.executable, str(scripts[name]), *argv[1:]], cwd=d.parent)


# ============================================================================ main
TOP_EXAMPLE = """\
quick start (your own COCO dataset):

  pyg-wsss pseudo-label --images data/images --coco data/instances.json \\
      --supervision box --method a2gnn --out labels/
  pyg-wsss evaluate --pred labels/ --coco data/instances.json --images data/images
  pyg-wsss show --images data/images --pred labels/ --coco data/instances.json \\
      --out labels/overview.png

"python -m pyg_wsss ..." is the same command.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the command (sub-commands ``pseudo-label``, ``train``,
    ``predict``, ``evaluate``, ``show``, ``demo``, ``bench``)."""
    parser = _Parser(prog=PROG, formatter_class=_Formatter,
                     description="Weakly supervised semantic segmentation on your own data.",
                     epilog=TOP_EXAMPLE)
    try:
        version = metadata.version("pyg-wsss")
    except metadata.PackageNotFoundError:  # pragma: no cover - not installed
        version = "unknown"
    parser.add_argument("--version", action="version", version=f"{PROG} {version}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_pseudo_label(sub)
    _add_train(sub)
    _add_predict(sub)
    _add_evaluate(sub)
    _add_show(sub)
    sub.add_parser("demo", add_help=False, help="the demo (python -m pyg_wsss.demo)")
    sub.add_parser("bench", add_help=False, help="run a benchmark script (from a clone)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (0 done, 1 some images failed, 2 bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "demo":
            return cmd_demo(argv[1:])
        if argv and argv[0] == "bench":
            return cmd_bench(argv[1:])
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return int(args.func(args))
    except CommandError as err:
        sys.stderr.write(f"{PROG}: error: {err}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted (finished images are kept; run the same "
                         "command again to go on)\n")
        return 130
    except BrokenPipeError:  # pragma: no cover - e.g. piped into head
        os._exit(1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
