"""Scale-out on :mod:`torch.distributed`: process group set-up, deterministic sharding, DDP.

Everything here is a thin layer over ``torch.distributed`` (no engine of its own):

* :func:`init_distributed` reads torchrun's environment (``RANK``, ``WORLD_SIZE``,
  ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) and creates the default process group:
  NCCL when CUDA is available, gloo otherwise (overridable with ``backend=`` or the
  ``PYG_WSSS_DIST_BACKEND`` environment variable). Without torchrun it does nothing and the
  same code runs as one rank. Besides the default group a CPU (gloo) group is kept for
  barriers and object collectives, so they work (and time out) the same on NCCL jobs.
* :func:`barrier` is :func:`torch.distributed.monitored_barrier` on that gloo group: a rank
  that died or hangs makes the others raise :class:`DistributedError` naming it within
  ``timeout`` seconds instead of hanging.
* :func:`shard_by_size` is a pure function (every rank computes the same split, no
  communication): greedy longest-processing-time over the images sorted by pixel count.
* :func:`all_gather_object`, :func:`broadcast_object`, :func:`all_reduce_sum` are the
  collectives evaluation needs (confusion matrices, per-rank summaries); one rank: identity.
* :func:`wrap_model` / :func:`ddp_train_step` / :func:`distributed_batch` are the generic
  pieces for dataset-level training under DistributedDataParallel with the same global
  batch as one process (used by :mod:`pyg_wsss.segmentation.distributed` and by the
  package's dataset-level trainers ``train_group_wsss``, ``train_knowledge_classifier`` and
  ``train_affinity_net``).
* :func:`data_parallel` resolves a trainer's ``distributed=None | True | False`` keyword
  (``None``: data-parallel when more than one rank runs, outside :func:`local_work`);
  :func:`local_work` marks per-rank work (e.g. labelling this rank's shard) in which the
  auto-detection must not make the ranks train together; :func:`sync_buffers` copies rank
  0's buffers (BatchNorm statistics) to every rank after training.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import os
import random
import warnings
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "DistributedError", "init_distributed", "is_initialized", "rank", "world_size",
    "local_rank", "is_main", "backend", "barrier", "cleanup", "shard_by_size",
    "seed_for_rank", "all_gather_object", "broadcast_object", "all_reduce_sum",
    "wrap_model", "unwrap_model", "distributed_batch", "ddp_train_step",
    "convert_sync_batchnorm", "GlobalBatchSampler", "ddp_fit", "LossModule", "device_for_rank",
    "seed_everything", "data_parallel", "local_work", "sync_buffers", "DEFAULT_TIMEOUT",
]

#: Default seconds a collective (and :func:`barrier`) waits for the other ranks.
DEFAULT_TIMEOUT = 1800.0
_BACKEND_ENV = "PYG_WSSS_DIST_BACKEND"
_DATA_PARALLEL_ENV = "PYG_WSSS_DATA_PARALLEL"

_state: dict[str, Any] = {"cpu_group": None, "timeout": DEFAULT_TIMEOUT, "owned": False,
                          "failed": False,
                          "local": 0}


class DistributedError(RuntimeError):
    """A distributed job cannot go on: a rank died or timed out, or the set-up is wrong."""


def _dist() -> Any:
    import torch.distributed as dist

    return dist


def is_initialized() -> bool:
    """Whether a default process group exists (``torch.distributed`` is initialised)."""
    dist = _dist()
    return dist.is_available() and dist.is_initialized()


def _env_int(key: str, default: int) -> int:
    value = os.environ.get(key)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f"environment variable {key} must be an integer, got "
                               f"{value!r}") from None


def _timedelta(timeout: float | _dt.timedelta | None) -> _dt.timedelta:
    if timeout is None:
        timeout = _state["timeout"]
    if isinstance(timeout, _dt.timedelta):
        return timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"'timeout' must be a positive number of seconds, got {timeout!r}")
    return _dt.timedelta(seconds=float(timeout))


def _resolve_backend(backend: str | None) -> str:
    dist = _dist()
    name = (backend or "auto").lower()
    if name == "auto":
        name = os.environ.get(_BACKEND_ENV, "auto").lower() or "auto"
    if name == "auto":
        name = "nccl" if (torch.cuda.is_available() and dist.is_nccl_available()) else "gloo"
    if name not in ("gloo", "nccl", "mpi", "ucc", "xccl"):
        raise ValueError(f"'backend' must be 'auto', 'gloo' or 'nccl' (or another "
                         f"torch.distributed backend), got {backend!r}")
    if name == "nccl" and not torch.cuda.is_available():
        raise DistributedError("backend 'nccl' needs CUDA, which is not available here; use "
                               "backend='gloo' (CPU)")
    return name


def init_distributed(backend: str = "auto",
                     timeout: float | _dt.timedelta = DEFAULT_TIMEOUT) -> tuple[int, int]:
    """Join the job torchrun started; a no-op single rank without torchrun.

    Args:
        backend: ``"auto"`` (NCCL when CUDA is available, gloo otherwise; the environment
            variable ``PYG_WSSS_DIST_BACKEND`` overrides ``"auto"``), ``"gloo"`` or
            ``"nccl"``.
        timeout: Seconds (or a :class:`~datetime.timedelta`) a collective waits for the other
            ranks before failing; also the default of :func:`barrier`.

    Returns:
        ``(rank, world_size)``. With ``WORLD_SIZE`` unset or 1 no process group is created
        and ``(0, 1)`` is returned. Calling it again (or after someone else initialised
        ``torch.distributed``) returns the current values.

    Raises:
        DistributedError: ``WORLD_SIZE > 1`` but ``RANK``, ``MASTER_ADDR`` or
            ``MASTER_PORT`` is missing, or the rendezvous failed.
    """
    td = _timedelta(timeout)
    _state["timeout"] = td.total_seconds()
    dist = _dist()
    if is_initialized():
        _make_cpu_group()
        return dist.get_rank(), dist.get_world_size()
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return 0, 1
    if not dist.is_available():  # pragma: no cover - torch built without distributed
        raise DistributedError("this torch build has no torch.distributed support")
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
    if missing:
        raise DistributedError(f"WORLD_SIZE={world} but {', '.join(missing)} not set: start "
                               "the job with torchrun (python -m torch.distributed.run)")
    r = _env_int("RANK", 0)
    if not 0 <= r < world:
        raise DistributedError(f"RANK={r} is outside 0..{world - 1} (WORLD_SIZE={world})")
    name = _resolve_backend(backend)
    if name == "nccl":
        torch.cuda.set_device(_env_int("LOCAL_RANK", 0))
    try:
        dist.init_process_group(backend=name, timeout=td, rank=r, world_size=world)
    except Exception as err:  # noqa: BLE001 - re-raised with the context
        raise DistributedError(
            f"rank {r}: joining the process group ({name}, {world} ranks, "
            f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}) failed: "
            f"{type(err).__name__}: {' '.join(str(err).split())[:300]}") from err
    _state["owned"] = True
    _make_cpu_group()
    return r, world


def _make_cpu_group() -> Any:
    dist = _dist()
    if _state["cpu_group"] is None and is_initialized():
        if dist.get_backend() == "gloo":
            _state["cpu_group"] = dist.group.WORLD
        else:
            _state["cpu_group"] = dist.new_group(backend="gloo",
                                                 timeout=_timedelta(None))
    return _state["cpu_group"]


def rank() -> int:
    """This process's global rank (0 without a process group; ``RANK`` before init)."""
    return _dist().get_rank() if is_initialized() else 0


def world_size() -> int:
    """Number of ranks (1 without a process group)."""
    return _dist().get_world_size() if is_initialized() else 1


def local_rank() -> int:
    """The rank on this node (``LOCAL_RANK`` of torchrun; 0 without it)."""
    return _env_int("LOCAL_RANK", 0) if is_initialized() else 0


def is_main() -> bool:
    """Whether this is rank 0 (the one that writes shared files)."""
    return rank() == 0


def backend() -> str | None:
    """The default group's backend (``"gloo"``, ``"nccl"``), ``None`` without one."""
    return str(_dist().get_backend()) if is_initialized() else None


def device_for_rank(device: str | torch.device = "auto") -> torch.device:
    """The device of this rank: ``"auto"`` = ``cuda:LOCAL_RANK`` when CUDA is available (and
    the job is not on gloo-only CPU), else CPU; an explicit ``"cuda"`` becomes
    ``cuda:LOCAL_RANK``."""
    dev = str(device)
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    d = torch.device(dev)
    if d.type == "cuda" and d.index is None:
        d = torch.device("cuda", _env_int("LOCAL_RANK", 0))
    return d


def barrier(timeout: float | _dt.timedelta | None = None, name: str = "barrier") -> None:
    """Wait until every rank arrives, at most ``timeout`` seconds (default: the one given
    to :func:`init_distributed`). No-op for one rank.

    Raises:
        DistributedError: a rank did not arrive in time (dead, stuck or much slower); the
            message names the rank(s) torch reports and ``name``.
    """
    if not is_initialized() or world_size() == 1:
        return
    td = _timedelta(timeout)
    dist = _dist()
    try:
        dist.monitored_barrier(group=_make_cpu_group(), timeout=td, wait_all_ranks=True)
    except Exception as err:  # noqa: BLE001 - gloo raises RuntimeError / DistBackendError
        _state["failed"] = True
        raise DistributedError(
            f"rank {rank()}: {name}: not every rank arrived within {td.total_seconds():g} s "
            f"(a rank died, hangs or is far behind): {' '.join(str(err).split())[:400]}"
        ) from err


def cleanup() -> None:
    """Destroy the process group :func:`init_distributed` created (no-op otherwise).

    Unless a collective of this process has failed already (a rank is known to be gone), the
    ranks first meet at a barrier, so no rank tears its connections down while another still
    talks to it (gloo aborts the peer's process when that happens)."""
    dist = _dist()
    if is_initialized() and _state["owned"]:
        if world_size() > 1 and not _state["failed"]:
            with contextlib.suppress(DistributedError):
                barrier(name="cleanup")
        dist.destroy_process_group()
    _state["failed"] = False
    _state["cpu_group"] = None
    _state["owned"] = False


def _collective(what: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except DistributedError:
        raise
    except Exception as err:  # noqa: BLE001
        _state["failed"] = True
        raise DistributedError(f"rank {rank()}: {what} failed (another rank died or timed "
                               f"out?): {' '.join(str(err).split())[:400]}") from err


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` for one rank.
    Runs on the CPU group (works on NCCL jobs too)."""
    if not is_initialized() or world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    _collective("all_gather_object",
                lambda: _dist().all_gather_object(out, obj, group=_make_cpu_group()))
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (the others pass anything, e.g. ``None``)."""
    if not is_initialized() or world_size() == 1:
        return obj
    box = [obj]
    _collective("broadcast_object",
                lambda: _dist().broadcast_object_list(box, src=src, group=_make_cpu_group()))
    return box[0]


def all_reduce_sum(value: Any) -> Any:
    """The sum over ranks of a number, numpy array or tensor (same shape on every rank), of
    the same type; the value itself for one rank. Tensors are reduced on their device with
    the default group; numbers and arrays on the CPU group in float64 / int64 (exact for
    counts such as confusion matrices)."""
    if not is_initialized() or world_size() == 1:
        return value
    dist = _dist()
    if isinstance(value, Tensor):
        t = value.detach().clone()
        _collective("all_reduce", lambda: dist.all_reduce(t))
        return t
    arr = np.asarray(value)
    dtype = torch.int64 if np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool \
        else torch.float64
    t = torch.as_tensor(arr).to(dtype)
    _collective("all_reduce", lambda: dist.all_reduce(t, group=_make_cpu_group()))
    out = t.numpy()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return type(value)(out.item())
    return out.astype(arr.dtype) if np.issubdtype(arr.dtype, np.integer) else out


# --------------------------------------------------------------------------- sharding, seeds


def _cost(size: Any) -> float | None:
    if size is None:
        return None
    if isinstance(size, (int, float, np.integer, np.floating)) and not isinstance(size, bool):
        return float(size)
    try:
        if isinstance(size, (str, bytes)):
            raise TypeError
        values = [float(v) for v in size]
    except (TypeError, ValueError):
        raise TypeError(f"an image size must be a number (pixels), (height, width) or None, "
                        f"got {size!r}") from None
    return float(np.prod(values[:2])) if values else None


def shard_by_size(sizes: Sequence[Any], world: int) -> list[list[int]]:
    """A deterministic split of images over ``world`` ranks, balanced by image size.

    Greedy longest-processing-time: the images sorted by pixel count (largest first, ties
    by index) go one by one to the rank with the least pixels so far (ties: the lowest
    rank). A pure function of ``(sizes, world)``: every rank computes the same split with no
    communication, so it can be used before the process group exists.

    Args:
        sizes: One entry per image (dataset order): ``(height, width)`` (more values are
            ignored), a pixel count, or ``None`` when unknown (counted as the median of the
            known sizes).
        world: Number of ranks (``>= 1``).

    Returns:
        ``world`` lists of dataset indices, each in increasing order; together they hold
        every index exactly once (a rank may get none when there are fewer images).
    """
    if isinstance(world, bool) or not isinstance(world, (int, np.integer)) or world < 1:
        raise ValueError(f"'world' must be a positive integer, got {world!r}")
    costs = [_cost(s) for s in sizes]
    known = [c for c in costs if c is not None]
    if any(c < 0 or not np.isfinite(c) for c in known):
        raise ValueError("image sizes must be finite and non-negative")
    fill = float(np.median(known)) if known else 1.0
    full = [fill if c is None else c for c in costs]
    order = sorted(range(len(full)), key=lambda i: (-full[i], i))
    loads = [0.0] * int(world)
    shards: list[list[int]] = [[] for _ in range(int(world))]
    for i in order:
        r = min(range(int(world)), key=lambda k: (loads[k], k))
        shards[r].append(i)
        loads[r] += full[i]
    return [sorted(s) for s in shards]


def seed_for_rank(seed: int, rank_: int | None = None) -> int:
    """A per-rank seed derived from one ``seed`` (:class:`numpy.random.SeedSequence` spawned
    by rank): different on every rank, the same on every run; rank defaults to this one's.
    Use it for the per-rank randomness that must differ (e.g. data augmentation of a
    rank's own samples); keep ``seed`` itself for what must agree (model initialisation)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"'seed' must be a non-negative integer, got {seed!r}")
    r = rank() if rank_ is None else int(rank_)
    state = np.random.SeedSequence(int(seed), spawn_key=(r,)).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & 0x7FFF_FFFF_FFFF_FFFF


def seed_everything(seed: int) -> None:
    """Seed :mod:`random`, numpy and torch (CPU and CUDA) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- DDP helpers


def convert_sync_batchnorm(model: nn.Module, device: torch.device | str) -> nn.Module:
    """``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` when more than one rank runs.

    SyncBatchNorm is implemented by torch for GPUs only: on CPU this raises
    :class:`DistributedError` (use ``freeze_bn`` instead, or one process)."""
    if world_size() == 1:
        return model
    if torch.device(device).type == "cpu":
        raise DistributedError("sync_batchnorm needs GPUs (torch's SyncBatchNorm has no CPU "
                               "kernel); on CPU freeze BatchNorm (freeze_bn=True) instead")
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def wrap_model(model: nn.Module, device: torch.device | str = "cpu",
               sync_batchnorm: bool = False, ignore: Sequence[str] = (),
               **ddp_kwargs: Any) -> nn.Module:
    """``model`` on ``device``, wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`
    when more than one rank runs (the model itself otherwise).

    DDP broadcasts rank 0's parameters and buffers at construction, so every rank starts
    from the same weights. ``sync_batchnorm`` converts BatchNorm layers first (GPU only).
    ``ignore``: names (as in ``model.named_parameters()`` / ``named_buffers()``) that DDP
    neither synchronises nor waits for (e.g. a backbone the inputs bypass).
    ``ddp_kwargs`` go to DDP (e.g. ``find_unused_parameters=True``)."""
    device = torch.device(device)
    if sync_batchnorm:
        model = convert_sync_batchnorm(model, device)
    model = model.to(device)
    if world_size() == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    if ignore:
        DDP._set_params_and_buffers_to_ignore_for_model(model, list(ignore))

    ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    return _collective("DistributedDataParallel(...)",
                       lambda: DDP(model, device_ids=ids, **ddp_kwargs))


def data_parallel(distributed: bool | None = None) -> bool:
    """Whether a trainer called with ``distributed=`` should train data-parallel.

    ``None`` (auto): ``torch.distributed`` is initialised with more than one rank, the call
    is not inside :func:`local_work` and the environment variable ``PYG_WSSS_DATA_PARALLEL``
    is not ``0`` (``0``: every rank trains alone, e.g. to keep ``pyg-wsss pseudo-label``'s
    dataset-level training the one-process result under torchrun). ``True`` / ``False`` are
    returned as given (``True`` with one rank runs the data-parallel code path on that rank
    alone).
    """
    if distributed is None:
        if os.environ.get(_DATA_PARALLEL_ENV, "").strip() in ("0", "false", "no", "off"):
            return False
        return is_initialized() and world_size() > 1 and _state["local"] == 0
    if not isinstance(distributed, (bool, np.bool_)):
        raise TypeError(f"'distributed' must be True, False or None, got {distributed!r}")
    return bool(distributed)


@contextlib.contextmanager
def local_work() -> Any:
    """A block of per-rank work: inside it :func:`data_parallel` ``(None)`` is ``False``.

    Use it around work whose inputs differ between ranks (e.g. labelling this rank's shard
    of the images, where a trainer runs on each batch of the shard): trainers left on
    auto-detection then train on this rank alone instead of joining the other ranks'
    collectives (which would hang or mix different data). Re-entrant."""
    _state["local"] += 1
    try:
        yield
    finally:
        _state["local"] -= 1


def sync_buffers(model: nn.Module, src: int = 0) -> nn.Module:
    """Broadcast rank ``src``'s buffers (e.g. BatchNorm running statistics) to every rank,
    in place; a no-op for one rank. DDP copies rank 0's buffers at the start of every
    forward pass only, so after the last training step each rank holds its own statistics:
    call this once training ends so every rank continues with the same model."""
    if not is_initialized() or world_size() == 1:
        return model
    dist = _dist()
    for buf in unwrap_model(model).buffers():
        _collective("broadcast of the buffers", functools.partial(dist.broadcast, buf, src=src))
    return model


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (the model itself otherwise)."""
    return model.module if hasattr(model, "module") and isinstance(
        model, torch.nn.parallel.DistributedDataParallel) else model


def distributed_batch(global_indices: Sequence[int], rank_: int | None = None,
                      world: int | None = None) -> list[int]:
    """This rank's part of a global batch: positions ``rank, rank + world, ...`` (the layout
    :class:`~torch.utils.data.distributed.DistributedSampler` gives a rank), so the union
    over ranks is the one-process batch. ``len(global_indices)`` must be a multiple of
    ``world`` (same per-rank batch, hence the same loss weighting)."""
    r = rank() if rank_ is None else int(rank_)
    w = world_size() if world is None else int(world)
    if len(global_indices) % w:
        raise ValueError(f"a global batch of {len(global_indices)} cannot be split evenly "
                         f"over {w} ranks: use a batch size that is a multiple of {w}")
    return list(global_indices)[r::w]


class _Range(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:  # pragma: no cover - the sampler only needs len
        return i


class GlobalBatchSampler:
    """This rank's samples of every iteration's global batch.

    The stream of one rank is the concatenation over epochs of a
    :class:`~torch.utils.data.distributed.DistributedSampler` (``shuffle=True``, ``seed``,
    ``set_epoch(epoch)``); iteration ``it`` takes the next ``batch_size / world`` entries.
    :meth:`batch` returns ``(dataset index, global position)`` pairs: the position in the
    one-process stream (``local position * world + rank``), used to seed the sample's
    augmentation.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int = 0,
                 rank_: int | None = None, world: int | None = None) -> None:
        from torch.utils.data.distributed import DistributedSampler

        self.rank = rank() if rank_ is None else int(rank_)
        self.world = world_size() if world is None else int(world)
        if batch_size % self.world:
            raise ValueError(f"the global 'batch_size' {batch_size} must be a multiple of the "
                             f"number of ranks ({self.world})")
        self.local_batch = batch_size // self.world
        self.sampler: DistributedSampler[int] = DistributedSampler(
            _Range(num_samples), num_replicas=self.world, rank=self.rank, shuffle=True,
            seed=int(seed), drop_last=False)
        self.per_epoch = len(self.sampler)
        self._epochs: dict[int, list[int]] = {}

    def _epoch(self, e: int) -> list[int]:
        if e not in self._epochs:
            if len(self._epochs) > 4:
                self._epochs.clear()
            self.sampler.set_epoch(e)
            self._epochs[e] = list(self.sampler)
        return self._epochs[e]

    def batch(self, iteration: int) -> list[tuple[int, int]]:
        out = []
        for k in range(iteration * self.local_batch, (iteration + 1) * self.local_batch):
            e, pos = divmod(k, self.per_epoch)
            out.append((self._epoch(e)[pos], k * self.world + self.rank))
        return out


class LossModule(nn.Module):
    """``forward(*args) = getattr(model, method)(*args)``: puts a model's own loss method
    (e.g. :meth:`pyg_wsss.nn.models.KnowledgeClassifier.loss`) behind ``forward``, so DDP
    (which hooks ``forward``) can wrap it: ``wrap_model(LossModule(classifier))``."""

    def __init__(self, model: nn.Module, method: str = "loss") -> None:
        super().__init__()
        if not callable(getattr(model, method, None)):
            raise TypeError(f"{type(model).__name__} has no method {method!r}")
        self.model = model
        self.method = method

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.model, self.method)(*args, **kwargs)


def ddp_fit(model: nn.Module, optimizer: torch.optim.Optimizer, num_items: int,
            iterations: int, batch_size: int,
            loss_fn: Callable[[nn.Module, list[tuple[int, int]]], tuple[Tensor, Any]],
            seed: int = 0, start: int = 0,
            on_step: Callable[[int, float], None] | None = None) -> list[float]:
    """A generic data-parallel training loop over ``num_items`` items (images, samples...).

    Iteration ``it`` gives ``loss_fn(model, items)`` this rank's part of the global batch
    (``items``: ``(item index, global position)`` pairs from :class:`GlobalBatchSampler`;
    seed per-item randomness from the global position so any number of ranks draws the
    same); the step is :func:`ddp_train_step` (gradient of the one-process mean over the
    global batch). ``model`` is what :func:`wrap_model` returned; any training loop of
    the package (the A2GNN affinity head, the Group-WSSS and knowledge classifiers) can be
    expressed as ``loss_fn`` and run through it. ``on_step(it, loss)`` is called after every
    step (e.g. to checkpoint from rank 0, or to set the learning rate of the next one).

    Returns:
        The global mean loss of every iteration from ``start`` (the same on every rank).
    """
    sampler = GlobalBatchSampler(num_items, batch_size, seed)
    losses = []
    for it in range(int(start), int(iterations)):
        items = sampler.batch(it)
        loss = ddp_train_step(model, optimizer, functools.partial(_call_with, loss_fn, items))
        losses.append(loss)
        if on_step is not None:
            on_step(it, loss)
    return losses


def _call_with(loss_fn: Callable[[nn.Module, Any], Any], items: Any, model: nn.Module) -> Any:
    """``loss_fn(model, items)`` (bound with :func:`functools.partial` per step)."""
    return loss_fn(model, items)


def ddp_train_step(model: nn.Module, optimizer: torch.optim.Optimizer,
                   loss_fn: Callable[[nn.Module], tuple[Tensor, Tensor | float]],
                   ) -> float:
    """One optimisation step whose gradient equals one process's on the global batch.

    ``loss_fn(model)`` runs the forward pass on this rank's part of the batch and returns
    ``(loss_sum, count)``: the *sum* of the per-element losses and how many elements it
    summed (pixels, images...). The step all-reduces the counts, back-propagates
    ``loss_sum * world / global_count`` (DDP averages the gradients over ranks, so the
    result is the gradient of ``global_loss_sum / global_count``, the one-process mean) and
    steps ``optimizer``. Works unchanged for one rank without DDP.

    Returns:
        The global mean loss (the same on every rank).
    """
    with warnings.catch_warnings():  # find_unused_parameters with nothing unused: harmless
        warnings.filterwarnings("ignore", message="find_unused_parameters=True was specified")
        return _ddp_step(model, optimizer, loss_fn)


def _ddp_step(model: nn.Module, optimizer: torch.optim.Optimizer,
              loss_fn: Callable[[nn.Module], tuple[Tensor, Tensor | float]]) -> float:
    loss_sum, count = loss_fn(model)
    w = world_size()
    local = torch.stack([loss_sum.detach().double().reshape(()),
                         torch.as_tensor(count, dtype=torch.float64,
                                         device=loss_sum.device).reshape(())])
    total = all_reduce_sum(local)
    n = float(total[1].clamp_min(1.0))
    mean = float(total[0]) / n
    if not np.isfinite(mean):
        raise FloatingPointError(f"the loss became {mean}")
    optimizer.zero_grad(set_to_none=True)
    (loss_sum * (w / n)).backward()
    optimizer.step()
    return mean
