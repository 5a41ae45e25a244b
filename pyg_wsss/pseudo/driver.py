"""Dataset-scale pseudo-label generation: resumable, atomic, failure-tolerant, shareable.

:func:`generate` runs any pseudo-label method over a dataset in batches and writes one
palette PNG per image (and optionally the class probabilities); its options are one
:class:`GenerateConfig` (or, as before, keyword arguments).

How the output folder is kept consistent (the on-disk protocol):

* **Atomic files.** Every file is written to a temporary file in its final folder, named
  ``.pyg_wsss-tmp-<host>-<pid>-<file name>.<random>`` (``<host>`` is a short hash of the
  host name and PID namespace), then moved into place with :func:`os.replace`. An interrupted
  run never leaves a half-written label file, and a starting run removes only the temporary
  files whose owner process is dead on this host (or, from another host, older than
  ``claim_timeout``): never the in-flight files of a live run.
* **Claims.** Before an image is loaded and computed, the run creates the claim file
  ``.<stem>.claim`` beside its PNG with ``O_CREAT | O_EXCL`` (atomic on POSIX and Windows;
  contents: pid, host, start time). A second run on the same folder skips an image another
  live run has claimed and takes the next one, so two runs split the work instead of doing it
  twice; it looks at the skipped images once more at its end. A claim is released (deleted)
  once the image is written or has failed. A claim whose owner is dead on this host, or that
  is older than ``claim_timeout`` and from another host, is stale and is taken over
  (renamed away first, so two runs never take over the same claim both).
* **Finished** means the PNG (and, with ``save_probs``, the probability file, written
  first) exists. A restart skips finished images; when the output names are known without
  loading (``names=``, or a dataset with a ``names`` attribute, like the readers of
  :mod:`pyg_wsss.data`), a finished image is not even loaded.
* **failures.tsv** holds one current row per failing image: ``name``, ``index``,
  ``reason`` (tab-separated, no header). It is rewritten atomically (temporary file +
  :func:`os.replace`) under a lock on the folder, so concurrent runs merge their rows, when
  it changes (at most once a second while failures keep coming, and at the end of the run):
  a row is replaced (not appended) when the image fails again and removed when the image
  later succeeds (or is found finished); the file is deleted when no row is left. Lines
  that are not ``name<TAB>index<TAB>reason`` rows are kept as they are.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import io
import json
import os
import re
import socket
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from .._checks import check_choice, check_positive
from .._optional import available
from .._progress import progress as progress_bar
from ..data.io import label_png_bytes

__all__ = ["generate", "GenerateConfig", "GenerateSummary", "shard_indices", "output_name",
           "save_label_png", "atomic_write"]

IGNORE = 255
_TMP_PREFIX = ".pyg_wsss-tmp-"
_CLAIM_SUFFIX = ".claim"
#: Default ``claim_timeout``: seconds after which a claim or temporary file of another host
#: counts as abandoned.
CLAIM_TIMEOUT = 3600.0
_DUPLICATE = "duplicate output name"


# --------------------------------------------------------------------------------------------
# process identity and liveness


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


_HOST = socket.gethostname()
_PIDNS = _pid_namespace()
#: Identifies "this host" (host name + PID namespace, so containers sharing a host name
#: do not judge each other's processes).
_HOST_TAG = hashlib.sha1(f"{_HOST}\0{_PIDNS}".encode()).hexdigest()[:8]
_TMP_RE = re.compile(r"^" + re.escape(_TMP_PREFIX) + r"([0-9a-f]{8})-(\d+)-")


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host is alive (a zombie counts as dead)."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        return True  # unknown: rely on claim_timeout
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    except OSError:
        return False
    try:  # Linux: a killed but not yet reaped process is a zombie
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
    except (OSError, IndexError):
        pass
    return True


# --------------------------------------------------------------------------------------------
# files


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder (named with
    this process's host tag and pid, see the module docstring), flushed and fsynced, then
    :func:`os.replace` (atomic on POSIX and Windows)."""
    path = Path(path)
    prefix = f"{_TMP_PREFIX}{_HOST_TAG}-{os.getpid()}-{path.name}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _to_array(labels: Any) -> np.ndarray:
    return labels.detach().cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)


def _png_bytes(labels: Any, palette: Any = None) -> bytes:
    """A label map as palette-PNG bytes (one writer in the package:
    :func:`pyg_wsss.data.io.label_png_bytes`)."""
    return label_png_bytes(_to_array(labels), palette)


def save_label_png(labels: Any, path: str | os.PathLike, palette: Any = None) -> None:
    """Save an integer ``[H, W]`` label map (values ``0..255``, 255 = unlabelled) as a palette
    PNG (the VOC colours unless ``palette [K, 3]`` is given), atomically."""
    atomic_write(path, _png_bytes(labels, palette))


def _probs_bytes(probs: Any, fmt: str) -> bytes:
    arr = _to_array(probs)
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"probabilities must be floating point, got {arr.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError("probabilities contain NaN or infinite values")
    buf = io.BytesIO()
    if fmt == "npy":
        np.save(buf, arr.astype(np.float32))
    else:
        np.savez_compressed(buf, probs=arr.astype(np.float32))
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# output names

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe_name(name: Any, index: int) -> str:
    """The output name of sample ``index``: a relative POSIX path without extension.

    ``None`` gives the zero-padded index. ``/`` separates sub-folders; in every component,
    characters outside ``[A-Za-z0-9._-]`` become ``_`` and leading / trailing ``.`` and ``_``
    are stripped. A one-component name that becomes empty gives the zero-padded index.
    Absolute paths, ``..`` and empty components (``a//b``, ``a/``, ``./a``) raise
    :class:`ValueError` naming the sample.
    """
    if name is None:
        return f"{index:06d}"
    raw = str(name)
    parts = raw.split("/")
    if len(parts) == 1:
        s = _SAFE.sub("_", raw).strip("._")
        return s or f"{index:06d}"
    if raw.startswith("/"):
        raise ValueError(
            f"sample {index}: output name {raw!r} is an absolute path (names must be "
            "relative paths inside out_dir)"
        )
    safe = []
    for part in parts:
        if part == "..":
            raise ValueError(
                f"sample {index}: output name {raw!r} has a '..' component (names must be "
                "relative paths inside out_dir)"
            )
        s = _SAFE.sub("_", part).strip("._")
        if not s:
            raise ValueError(
                f"sample {index}: output name {raw!r} has an empty component {part!r} "
                "(after replacing characters outside [A-Za-z0-9._-])"
            )
        safe.append(s)
    return "/".join(safe)


def output_name(name: Any, index: int = 0) -> str:
    """The output path stem :func:`generate` uses for a sample named ``name`` (at dataset
    position ``index``): ``out_dir / (output_name(name) + ".png")`` is its label PNG.

    ``/`` separates sub-folders; in every component, characters outside
    ``[A-Za-z0-9._-]`` become ``_`` and leading / trailing ``.`` and ``_`` are dropped;
    ``None`` (or a one-component name that becomes empty) gives ``f"{index:06d}"``.

    Raises:
        ValueError: an absolute name, a ``..`` component or an empty component.
    """
    return _safe_name(name, index)


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _reason(err: BaseException | str) -> str:
    return _one_line(err if isinstance(err, str) else f"{type(err).__name__}: {err}")


# --------------------------------------------------------------------------------------------
# claims


class _Claims:
    """Per-image claim files (see the module docstring)."""

    def __init__(self, out: Path, timeout: float) -> None:
        self.out = out
        self.timeout = timeout
        self.token = uuid.uuid4().hex
        self.held: dict[str, Path] = {}

    def path(self, name: str) -> Path:
        p = self.out / name
        return p.with_name(f".{p.name}{_CLAIM_SUFFIX}")

    def _info(self) -> bytes:
        return json.dumps({"pid": os.getpid(), "host": _HOST, "host_tag": _HOST_TAG,
                           "start": time.time(), "token": self.token}).encode()

    def _stale(self, path: Path) -> tuple[bool, int | None]:
        """``(stale, inode)`` of the claim at ``path`` (``inode`` None: it is gone)."""
        try:
            st = path.stat()
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return True, None
        except OSError:
            return False, None
        age = time.time() - st.st_mtime
        try:
            info = json.loads(text)
            pid, tag = int(info["pid"]), str(info["host_tag"])
        except (ValueError, KeyError, TypeError):  # being written right now, or foreign
            return age > self.timeout, st.st_ino
        if tag == _HOST_TAG:
            if pid == os.getpid():
                return False, st.st_ino  # another generate() in this process
            return not _pid_alive(pid), st.st_ino
        return age > self.timeout, st.st_ino

    def _remove_stale(self, path: Path, inode: int) -> None:
        """Remove the stale claim ``path`` if it still is the file ``inode``: renamed away
        first, so of two runs taking over one claim only one succeeds, and a fresh claim
        created meanwhile is put back."""
        aside = path.with_name(f"{path.name}.stale-{os.getpid()}-{self.token}")
        try:
            os.rename(path, aside)
        except OSError:
            return  # gone already: taken over by another run
        try:
            if aside.stat().st_ino != inode:  # a fresh claim of a live run: put it back
                try:
                    os.link(aside, path)
                except OSError:
                    pass
        finally:
            with contextlib.suppress(OSError):
                os.unlink(aside)

    def acquire(self, name: str) -> bool:
        """Claim ``name``; ``False`` if a live run holds it."""
        path = self.path(name)
        for _ in range(3):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                stale, inode = self._stale(path)
                if not stale:
                    return False
                if inode is not None:
                    self._remove_stale(path, inode)
                continue
            try:
                os.write(fd, self._info())
            finally:
                os.close(fd)
            self.held[name] = path
            return True
        return False

    def release(self, name: str) -> None:
        path = self.held.pop(name, None)
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def release_all(self) -> None:
        for name in list(self.held):
            self.release(name)

    def clean(self) -> None:
        """Remove temporary files of dead owners and stale claims, in every sub-folder."""
        now = time.time()
        for root, _, files in os.walk(self.out):
            for fname in files:
                path = Path(root) / fname
                if fname.startswith(_TMP_PREFIX):
                    m = _TMP_RE.match(fname)
                    if m is not None and m.group(1) == _HOST_TAG:
                        dead = not _pid_alive(int(m.group(2)))
                    else:  # another host, or an older driver's name: by age
                        try:
                            dead = now - path.stat().st_mtime > self.timeout
                        except OSError:
                            continue
                    if dead:
                        with contextlib.suppress(OSError):
                            path.unlink()
                elif fname.startswith(".") and fname.endswith(_CLAIM_SUFFIX):
                    stale, inode = self._stale(path)
                    if stale and inode is not None:
                        self._remove_stale(path, inode)


# --------------------------------------------------------------------------------------------
# the failure log


@contextlib.contextmanager
def _folder_lock(folder: Path, name: str) -> Iterator[None]:
    """An exclusive lock among the runs on ``folder`` (``flock`` on the folder itself on
    POSIX; a lock file ``.<name>.lock`` elsewhere)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None  # type: ignore[assignment]
    if fcntl is not None:
        fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        return
    lock = folder / f".{name}.lock"  # pragma: no cover - Windows
    deadline = time.time() + 30.0
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.close(fd)
            break
        except FileExistsError:
            try:
                if time.time() - lock.stat().st_mtime > 60.0:
                    os.unlink(lock)
                    continue
            except OSError:
                continue
            if time.time() > deadline:
                raise TimeoutError(f"could not lock {lock} for 30 s") from None
            time.sleep(0.05)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)


class _FailureLog:
    """``failures.tsv``: one current row per failing ``(name, index)``.

    Changes are applied to the file under a folder lock (so concurrent runs merge their rows)
    at most once per ``interval`` seconds and at the end of the run (:meth:`flush`), so a run
    where every image fails does not rewrite a growing file once per image.
    """

    def __init__(self, path: Path, interval: float = 1.0) -> None:
        self.path = path
        self.interval = interval
        self.names: set[str] = set()  # names with a row, as last read (and changed by us)
        self._sets: dict[tuple[str, str], str] = {}
        self._clears: dict[str, set[str]] = {}  # name -> indices that succeeded
        self._last = -float("inf")

    def check(self) -> None:
        """At start: the log is a readable, writable file (or absent), its folder writable."""
        p = self.path
        if p.exists() or p.is_symlink():
            if not p.is_file():
                raise ValueError(f"failure log {p} exists but is not a regular file")
            if not os.access(p, os.R_OK | os.W_OK):
                raise PermissionError(f"failure log {p} is not readable and writable")
        if not os.access(p.parent, os.W_OK | os.X_OK):
            raise PermissionError(f"cannot write the failure log {p}: its folder is read-only")
        try:
            self._read()
        except UnicodeDecodeError as err:
            raise ValueError(f"failure log {p} is not UTF-8 text: {err}") from err

    def _read(self) -> tuple[list[str], dict[tuple[str, str], str]]:
        extra: list[str] = []
        rows: dict[tuple[str, str], str] = {}
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        for line in text.splitlines():
            parts = line.split("\t", 2)
            if len(parts) == 3:
                rows[(parts[0], parts[1])] = parts[2]
            elif line.strip():
                extra.append(line)  # not ours: kept as it is
        self.names = {n for n, _ in rows}
        return extra, rows

    def _apply(self, rows: dict[tuple[str, str], str]) -> None:
        for name, indices in self._clears.items():
            # drop the rows of ``name``, but keep those of other samples that wanted the
            # same output name (their own reason: a duplicate)
            for key in [k for k in rows if k[0] == name]:
                if key[1] in indices or not rows[key].startswith(_DUPLICATE):
                    del rows[key]
        rows.update(self._sets)

    def flush(self) -> None:
        """Write the pending changes (a warning, not an error, if that fails: the log was
        checked at start, and the images concerned have no PNG, so a rerun retries them)."""
        if not self._sets and not self._clears:
            return
        try:
            with _folder_lock(self.path.parent, self.path.name):
                extra, rows = self._read()
                before = dict(rows)
                self._apply(rows)
                if rows != before:
                    if rows or extra:
                        body = extra + [f"{n}\t{i}\t{r}" for (n, i), r in rows.items()]
                        atomic_write(self.path, ("\n".join(body) + "\n").encode("utf-8"))
                    else:
                        with contextlib.suppress(FileNotFoundError):
                            self.path.unlink()
                self.names = {n for n, _ in rows}
        except OSError as err:
            warnings.warn(f"could not update the failure log {self.path}: {err}",
                          RuntimeWarning, stacklevel=2)
            return
        self._sets.clear()
        self._clears.clear()
        self._last = time.monotonic()

    def _changed(self) -> None:
        if time.monotonic() - self._last >= self.interval:
            self.flush()

    def set(self, name: str, index: int, reason: str) -> None:
        key = (_one_line(name), str(index))
        self._sets[key] = reason
        self._clears.get(key[0], set()).discard(key[1])
        self.names.add(key[0])
        self._changed()

    def clear(self, name: str, index: int) -> None:
        """``name`` (sample ``index``) succeeded or is finished: drop its rows."""
        if name not in self.names:
            return
        self._clears.setdefault(name, set()).add(str(index))
        for key in [k for k in self._sets if k[0] == name]:
            if key[1] == str(index) or not self._sets[key].startswith(_DUPLICATE):
                del self._sets[key]
        self._changed()


# --------------------------------------------------------------------------------------------
# the driver


@dataclass
class GenerateSummary:
    """What :func:`generate` did.

    ``done`` images were written now, ``skipped`` were finished already (or finished by
    another run meanwhile), ``failed`` raised (``failures`` lists ``(name, reason)``),
    ``busy`` were claimed by another live run on the same folder until the end of this one.
    ``total`` is the number of images this call was responsible for (its shard).
    """

    done: int = 0
    skipped: int = 0
    failed: int = 0
    busy: int = 0
    total: int = 0
    out_dir: str = ""
    failures: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"GenerateSummary(done={self.done}, skipped={self.skipped}, failed={self.failed}, "
            f"busy={self.busy}, total={self.total}, out_dir={self.out_dir!r})"
        )


def _accepts_device(fn: Callable) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "device" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


def _is_batch(x: Any) -> bool:
    if isinstance(x, (list, tuple)):
        return True
    return isinstance(x, (np.ndarray, Tensor)) and x.ndim in (3, 4)


def _split_output(out: Any, n: int) -> tuple[list[Any], list[Any] | None]:
    """``labels`` or ``(labels, probs)``; a batch is a list or a stacked array."""
    probs = None
    if isinstance(out, tuple) and len(out) == 2 and _is_batch(out[0]):
        out, probs = out
    if not _is_batch(out):
        raise TypeError("the method must return a list of label maps (or labels, probs)")
    labels = list(out)
    if len(labels) != n:
        raise ValueError(f"the method returned {len(labels)} label maps for {n} samples")
    if probs is not None:
        probs = list(probs)
        if len(probs) != n:
            raise ValueError(f"the method returned {len(probs)} probability maps for {n} samples")
    return labels, probs


def _check_shard(shard: Any) -> tuple[int, int] | None:
    if shard is None:
        return None
    if (not isinstance(shard, (tuple, list)) or len(shard) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                       for v in shard)):
        raise TypeError(f"'shard' must be a (rank, world_size) pair of ints, got {shard!r}")
    rank, world = int(shard[0]), int(shard[1])
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"'shard' must satisfy 0 <= rank < world_size, got {shard!r}")
    return rank, world


def _check_indices(indices: Any, n_items: int, shard: Any) -> list[int]:
    if shard is not None:
        raise ValueError("give at most one of 'shard' and 'indices'")
    if isinstance(indices, (str, bytes)) or not hasattr(indices, "__iter__"):
        raise TypeError(f"'indices' must be a sequence of ints, got {type(indices).__name__}")
    out = []
    for v in indices:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"'indices' must hold ints, got {v!r}")
        if not 0 <= int(v) < n_items:
            raise ValueError(f"'indices' has {int(v)}, outside 0..{n_items - 1}")
        out.append(int(v))
    if len(set(out)) != len(out):
        raise ValueError("'indices' has repeated entries")
    return sorted(out)


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"'out_dir' {out} exists but is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PermissionError(f"cannot create the output folder {out}: {err}") from err
    if not os.access(out, os.W_OK | os.X_OK):
        raise PermissionError(f"the output folder {out} is not writable")
    try:  # os.access says yes to root and to some network file systems: try it
        fd, probe = tempfile.mkstemp(prefix=f"{_TMP_PREFIX}{_HOST_TAG}-{os.getpid()}-probe.",
                                     dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise PermissionError(f"the output folder {out} is not writable: {err}") from err


def shard_indices(names: Sequence[Any] | None, num_items: int,
                  shard: tuple[int, int] | None) -> list[int]:
    """The dataset indices :func:`generate` processes for ``shard = (rank, world_size)``.

    Round-robin over the items sorted by ``str(name)`` (ties and ``names=None``: by index),
    so every rank computes the same balanced split (sizes differ by at most one) from the
    name list alone, with no communication; the result is in index order.
    """
    if shard is None:
        return list(range(num_items))
    rank, world = shard
    order = (sorted(range(num_items), key=lambda i: str(names[i])) if names is not None
             else list(range(num_items)))
    return sorted(order[rank::world])


@dataclass
class GenerateConfig:
    """The options of :func:`generate`, passed whole (``generate(ds, method, out, config)``).

    Fields:
        batch_size: Samples per method call (> 0). If a batch fails, its samples are retried
            one by one so only the failing ones are logged.
        device: Passed to ``method`` when it accepts a ``device`` argument.
        save_probs: Also save the probabilities (the method must return them).
        probs_format: ``"npy"`` or ``"npz"`` (compressed).
        progress: Show a tqdm progress bar (if tqdm is installed).
        names: Output names per index (default: ``dataset.names`` if it exists, else
            ``sample["name"]``, else the zero-padded index). A name may contain ``/``: the
            PNG goes to ``out_dir/<sub/dir>/<stem>.png`` (folders created). In every path
            component, characters outside ``[A-Za-z0-9._-]`` become ``_`` (and leading and
            trailing ``.``/``_`` are dropped); an absolute name, a ``..`` component or an
            empty component is refused: that image fails with a reason naming it.
        overwrite: Recompute images whose outputs already exist (meant for one run at a
            time: concurrent overwriting runs each recompute everything).
        failures_file: Name of the failure log inside ``out_dir``.
        label_transform: Applied to every label map (as a numpy array) before it is
            written, e.g. contiguous class indices -> dataset category ids; must keep the
            shape and give integers in ``0..255``.
        palette: ``[K, 3]`` colours of the written PNGs (``K <= 256``; default the VOC
            palette). The pixel values are the label values whatever the colours.
        shard: ``(rank, world_size)``: process only this rank's share, a round-robin over
            the images sorted by output name (by index when the names are only known after
            loading); see :func:`shard_indices`. Every rank computes the same split.
        on_done: Called as ``on_done(name, seconds)`` after each image is written
            (``seconds``: its loading and writing time plus its share of the method call).
            An exception it raises stops the run (claims are released; images of the batch
            not yet written are computed again by the next run).
        claim_timeout: Seconds after which a claim or temporary file left by another host
            counts as abandoned (on this host, a dead owner process is detected at once).
        indices: Process only these dataset indices (in increasing order; e.g. this rank's
            part of :func:`pyg_wsss.distributed.shard_by_size`); not together with
            ``shard``.

    The fields are checked when :func:`generate` starts (each error names its field).
    """

    batch_size: int = 1
    device: torch.device | str = "cpu"
    save_probs: bool = False
    probs_format: str = "npy"
    progress: bool = True
    names: Sequence[str] | None = None
    overwrite: bool = False
    failures_file: str = "failures.tsv"
    label_transform: Callable[[np.ndarray], np.ndarray] | None = None
    palette: np.ndarray | None = None
    shard: tuple[int, int] | None = None
    on_done: Callable[[str, float], None] | None = None
    claim_timeout: float = CLAIM_TIMEOUT
    indices: Sequence[int] | None = None

    def replace(self, **changes: Any) -> "GenerateConfig":
        """A copy with some fields changed (an unknown name is a ``TypeError`` naming it)."""
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - fields)
        if unknown:
            raise TypeError(f"generate() got unexpected keyword argument(s) {unknown}; the "
                            f"options are the GenerateConfig fields {sorted(fields)}")
        return dataclasses.replace(self, **changes) if changes else self

    def check(self) -> tuple[int, int] | None:
        """Validate the options that need no dataset; returns the checked ``shard``."""
        check_positive(self.batch_size, "batch_size", integer=True)
        check_choice(self.probs_format, ("npy", "npz"), "probs_format")
        for arg in ("label_transform", "on_done"):
            value = getattr(self, arg)
            if value is not None and not callable(value):
                raise TypeError(f"'{arg}' must be callable or None, got {type(value).__name__}")
        shard = _check_shard(self.shard)
        timeout = self.claim_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
                or not timeout > 0:
            raise ValueError(f"'claim_timeout' must be a positive number, got {timeout!r}")
        ff = self.failures_file
        if not isinstance(ff, str) or not ff or "/" in ff or ff in (".", ".."):
            raise ValueError(f"'failures_file' must be a file name, got {ff!r}")
        if self.palette is not None:  # validated now, not at the first image
            label_png_bytes(np.zeros((1, 1), np.uint8), self.palette)
        return shard


#: The positional order of :func:`generate`'s options before :class:`GenerateConfig`.
_POSITIONAL_OPTIONS = ("batch_size", "device", "save_probs", "probs_format", "progress",
                       "names", "overwrite", "failures_file")


def _generate_config(args: tuple[Any, ...], config: GenerateConfig | None,
                     options: dict[str, Any]) -> GenerateConfig:
    """The config of one :func:`generate` call from its three accepted forms: a
    :class:`GenerateConfig` (4th argument or ``config=``), keyword options (overriding the
    config's fields), or the former positional options after ``out_dir``."""
    if args and isinstance(args[0], GenerateConfig):
        if config is not None:
            raise TypeError("generate() got the config both positionally and as 'config='")
        config, args = args[0], args[1:]
        if args:
            raise TypeError("generate(dataset, method, out_dir, config) takes no further "
                            "positional arguments; give options by keyword")
    if config is not None and not isinstance(config, GenerateConfig):
        raise TypeError(f"'config' must be a GenerateConfig, got {type(config).__name__}")
    if len(args) > len(_POSITIONAL_OPTIONS):
        raise TypeError(f"generate() takes at most {3 + len(_POSITIONAL_OPTIONS)} positional "
                        f"arguments; pass a GenerateConfig or keyword options")
    positional = dict(zip(_POSITIONAL_OPTIONS, args))
    twice = sorted(set(positional) & set(options))
    if twice:
        raise TypeError(f"generate() got multiple values for {twice}")
    return (config or GenerateConfig()).replace(**positional, **options)


def _dataset_names(dataset: Any, names: Any) -> tuple[int, list[Any] | None, bool]:
    """``(len(dataset), output names or None, names came from dataset.names)``."""
    try:
        n_items = len(dataset)
    except TypeError as err:
        raise TypeError("'dataset' must support len() and indexing") from err
    names_arg = "names"
    from_dataset = False
    if names is None and getattr(dataset, "names", None) is not None:
        names, names_arg, from_dataset = dataset.names, "dataset.names", True
    if names is not None:
        if isinstance(names, str):
            raise TypeError(f"'{names_arg}' must be a sequence of names, not a string")
        names = list(names)
        if len(names) != n_items:
            raise ValueError(f"'{names_arg}' has {len(names)} entries for {n_items} samples")
    return n_items, names, from_dataset


#: ``(index, name, sample, load seconds)``: an image claimed and loaded, waiting for its batch
_Item = tuple[int, str, Any, float]


class _GenerateRun:
    """One :func:`generate` call: its output folder (claims, failure log), the per-image
    work (name, claim, load, compute, write) and the progress bar."""

    def __init__(self, dataset: Any, method: Callable, out_dir: Any,
                 cfg: GenerateConfig) -> None:
        if not callable(method):
            raise TypeError(f"'method' must be callable, got {type(method).__name__}")
        shard = cfg.check()
        n_items, self.names, self.from_dataset = _dataset_names(dataset, cfg.names)
        self.dataset, self.method, self.cfg = dataset, method, cfg
        self.out = out = Path(out_dir)
        _check_out_dir(out)
        self.flog = _FailureLog(out / cfg.failures_file)
        self.flog.check()
        self.claims = _Claims(out, float(cfg.claim_timeout))
        self.claims.clean()
        self.device = torch.device(cfg.device)
        self.pass_device = _accepts_device(method)
        if cfg.indices is not None:
            self.indices = _check_indices(cfg.indices, n_items, shard)
        else:
            self.indices = shard_indices(self.names, n_items, shard)
        self.summary = GenerateSummary(out_dir=str(out), total=len(self.indices))
        self.seen: set[str] = set()
        self.pending: list[_Item] = []
        self.bar = None

    # ------------------------------------------------------------------ outputs and log
    def outputs(self, name: str) -> list[Path]:
        paths = [self.out / f"{name}.png"]
        if self.cfg.save_probs:
            paths.append(self.out / f"{name}.{self.cfg.probs_format}")
        return paths

    def finished(self, name: str) -> bool:
        return not self.cfg.overwrite and all(p.exists() for p in self.outputs(name))

    def log_failure(self, name: str, index: int, err: BaseException | str) -> None:
        reason = _reason(err)
        self.summary.failed += 1
        self.summary.failures.append((name, reason))
        self.flog.set(name, index, reason)

    def skip(self, name: str, index: int) -> None:
        self.summary.skipped += 1
        self.flog.clear(name, index)

    def write(self, name: str, labels: Any, probs: Any) -> None:
        cfg = self.cfg
        arr = _to_array(labels)
        if cfg.label_transform is not None:
            mapped = np.asarray(cfg.label_transform(arr))
            if mapped.shape != arr.shape:
                raise ValueError(f"label_transform changed the label map shape from "
                                 f"{arr.shape} to {mapped.shape}")
            arr = mapped
        png = label_png_bytes(arr, cfg.palette)
        pb = None
        if cfg.save_probs:
            if probs is None:
                raise ValueError("save_probs=True but the method returned no probabilities")
            pb = _probs_bytes(probs, cfg.probs_format)
        if pb is not None:  # probabilities first: the PNG marks the image as finished
            atomic_write(self.out / f"{name}.{cfg.probs_format}", pb)
        atomic_write(self.out / f"{name}.png", png)

    # ------------------------------------------------------------------ per-image work
    def compute(self, batch: list[_Item]) -> None:
        """The method on a batch, then each image written (a failing batch: one by one)."""
        samples = [s for _, _, s, _ in batch]
        kwargs = {"device": self.device} if self.pass_device else {}
        start = time.perf_counter()
        try:
            labels, probs = _split_output(self.method(samples, **kwargs), len(samples))
        except Exception as err:  # noqa: BLE001 - logged per image
            if len(batch) > 1:
                for item in batch:
                    self.compute([item])
                return
            self.log_failure(batch[0][1], batch[0][0], err)
            self.claims.release(batch[0][1])
            return
        share = (time.perf_counter() - start) / len(batch)
        for j, (index, name, _, load_s) in enumerate(batch):
            t0 = time.perf_counter()
            try:
                self.write(name, labels[j], None if probs is None else probs[j])
            except Exception as err:  # noqa: BLE001
                self.log_failure(name, index, err)
                continue
            finally:
                self.claims.release(name)
            self.summary.done += 1
            self.flog.clear(name, index)
            if self.cfg.on_done is not None:
                self.cfg.on_done(name, load_s + share + time.perf_counter() - t0)

    def resolve(self, index: int, sample: Any) -> str | None:
        """The output name of ``index`` (``sample`` given when it was loaded for it)."""
        raw = self.names[index] if self.names is not None else (
            sample.get("name") if isinstance(sample, dict) else None)
        try:
            return _safe_name(raw, index)
        except ValueError as err:
            self.log_failure(_one_line(raw), index, err)
            return None

    def load(self, index: int, name: str | None) -> tuple[Any, float] | None:
        t0 = time.perf_counter()
        try:
            sample = self.dataset[index]
        except Exception as err:  # noqa: BLE001
            self.log_failure(name if name is not None else f"{index:06d}", index, err)
            return None
        names = self.names
        if self.from_dataset and names is not None and name is not None \
                and isinstance(sample, dict) and sample.get("name") is not None \
                and str(sample["name"]) != str(names[index]):
            self.log_failure(name, index, f"ValueError: sample {index} has name "
                             f"{sample['name']!r} but dataset.names[{index}] is "
                             f"{names[index]!r}")
            return None
        return sample, time.perf_counter() - t0

    def name_of(self, index: int, revisit: bool) -> tuple[str | None, Any, float]:
        """``(name or None on failure, the sample if it had to be loaded for its name, its
        load seconds)``; a name seen before in this run is a failure (not on ``revisit``)."""
        sample, load_s = None, 0.0
        if self.names is not None:
            name = self.resolve(index, None)
        else:
            loaded = self.load(index, None)
            if loaded is None:
                return None, None, 0.0
            sample, load_s = loaded
            name = self.resolve(index, sample)
        if name is not None and not revisit:
            if name in self.seen:
                self.log_failure(name, index, f"{_DUPLICATE} (sample {index})")
                return None, None, 0.0
            self.seen.add(name)
        return name, sample, load_s

    def prepare(self, index: int, revisit: bool = False) -> _Item | str:
        """Claim and load one image: the pending item, or what happened instead
        (``"skip"``, ``"busy"``, ``"fail"``)."""
        name, sample, load_s = self.name_of(index, revisit)
        if name is None:
            return "fail"
        if self.finished(name):
            self.skip(name, index)
            return "skip"
        try:
            (self.out / name).parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            self.log_failure(name, index, err)
            return "fail"
        if not self.claims.acquire(name):
            return "busy"
        if self.finished(name):  # finished by another run between the check and the claim
            self.claims.release(name)
            self.skip(name, index)
            return "skip"
        if sample is None:
            loaded = self.load(index, name)
            if loaded is None:
                self.claims.release(name)
                return "fail"
            sample, load_s = loaded
        return index, name, sample, load_s

    # ------------------------------------------------------------------ progress and loop
    def tick(self, k: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(k)

    def flush(self) -> None:
        if self.pending:
            batch, self.pending = self.pending, []
            self.compute(batch)
            self.tick(len(batch))

    def visit(self, index: int, revisit: bool = False) -> bool:
        """Prepare one image and batch it; ``True`` if another live run holds its claim."""
        item = self.prepare(index, revisit)
        if item == "busy":
            return True
        if isinstance(item, tuple):
            self.pending.append(item)
            if len(self.pending) == self.cfg.batch_size:
                self.flush()
        else:
            self.tick()
        return False

    def __call__(self) -> GenerateSummary:
        if self.cfg.progress and available("tqdm.auto"):
            self.bar = progress_bar(total=len(self.indices), desc="pseudo labels", unit="img")
        try:
            busy = [index for index in self.indices if self.visit(index)]
            self.flush()
            for index in busy:  # once more: finished meanwhile, or abandoned by its owner
                if self.visit(index, revisit=True):
                    self.summary.busy += 1
                    self.tick()
            self.flush()
        finally:
            self.claims.release_all()
            self.flog.flush()
            if self.bar is not None:
                self.bar.close()
        return self.summary


def generate(
    dataset: Any,  # indexable: len() and [i] (a Sequence of sample dicts, a reader)
    method: Callable[..., Any],
    out_dir: str | os.PathLike,
    *args: Any,
    config: GenerateConfig | None = None,
    **options: Any,
) -> GenerateSummary:
    """Run ``method`` over ``dataset`` and write one label PNG per image, resumably.

    Several runs (processes, machines sharing the folder) may work on one ``out_dir`` at the
    same time: they split the images through claim files and never delete each other's
    files (see :mod:`pyg_wsss.pseudo.driver` for the protocol).

    Args:
        dataset: Indexable (``len`` and ``[i]``) of sample dicts (:mod:`pyg_wsss.data`). If
            it has a ``names`` attribute (the readers' relative output stems) and ``names``
            is not given, those are the output names, so a restart skips finished images
            without loading them; a loaded sample whose ``"name"`` disagrees is a failure.
        method: ``method(samples: list[dict]) -> labels`` or ``-> (labels, probs)``, with
            ``labels`` one ``[H, W]`` integer map per sample (255 = unlabelled) and ``probs``
            one ``[K, H, W]`` float array per sample. If it takes a ``device`` argument, the
            ``device`` is passed.
        out_dir: Output folder (created). Files: ``<name>.png`` (palette PNG),
            ``<name>.npy`` / ``<name>.npz`` (probabilities, with ``save_probs``), and
            ``failures.tsv`` (``name``, ``index``, ``reason``: one current row per failing
            image).
        config: A :class:`GenerateConfig` (also accepted as the 4th positional argument).
        *args, **options: The former form, still accepted: any :class:`GenerateConfig`
            field by keyword (``batch_size=4, progress=False, shard=(0, 2)``, ...;
            overrides ``config``), or ``batch_size, device, save_probs, probs_format,
            progress, names, overwrite, failures_file`` positionally after ``out_dir``.

    Returns:
        :class:`GenerateSummary` with ``done`` (written now), ``skipped`` (already present),
        ``failed``, ``busy`` (left to another live run) and the ``(name, reason)`` list.

    Raises:
        TypeError, ValueError: a bad argument (named in the message).
        PermissionError, ValueError: ``out_dir`` or the failure log cannot be written; raised
            at start, before any image is loaded or computed.

    An image counts as finished when its PNG (and, with ``save_probs``, its probability
    file) exists; since both are written atomically (temporary file + :func:`os.replace`),
    an interrupted run restarted with the same arguments recomputes only the rest.
    """
    return _GenerateRun(dataset, method, out_dir, _generate_config(args, config, options))()
