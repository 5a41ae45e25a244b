"""Image-group graphs (Group-WSSS): images are nodes, edges join images that share a class.

* :func:`image_group_graph` builds the graph of a set of images from their multi-hot tags
  without any ``N x N`` tensor (pairs are generated per class, so memory is ``O(E)``).
* :class:`GreedyGroupSampler` is a :class:`torch.utils.data.Sampler` that yields one group of
  ``group_size`` image indices per anchor image (use it as a DataLoader ``batch_sampler``),
  with the paper's greedy strategy or the authors' code strategy (NOTES.md 1.1).
"""
from __future__ import annotations

from typing import Iterator, cast

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Sampler

from .._checks import check_choice, check_positive, check_tensor

__all__ = ["image_group_graph", "GreedyGroupSampler"]


def _as_tags(value: object, name: str = "tags") -> Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    check_tensor(value, name, ndim=2)
    tags = cast(Tensor, value)  # check_tensor raised for anything else
    if tags.dtype == torch.bool:
        return tags
    if tags.is_floating_point() and tags.numel() and not torch.isfinite(tags).all():
        raise ValueError(f"'{name}' contains NaN or infinite values")
    if tags.numel() and (tags < 0).any():
        raise ValueError(f"'{name}' must be a non-negative multi-hot matrix [N, C]")
    return tags > 0


def image_group_graph(
    tags: Tensor,
    self_loops: bool = False,
    return_shared: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Image-level graph of a group of images (G 3): an edge :math:`j \to i` for every ordered
    pair of distinct images that share at least one class.

    Pairs are enumerated class by class (each class contributes the complete graph on the
    images that contain it) and de-duplicated, so the cost is
    :math:`O(\sum_c n_c^2)` and no ``N x N`` matrix is formed.

    Args:
        tags: ``[N, C]`` multi-hot image tags (bool, int or float; ``> 0`` means present).
        self_loops: Add an ``i -> i`` edge for *every* image (also images without tags), for
            the paper's self-attention message (G 6).
        return_shared: Also return, per edge, the number of classes the two images share
            (``0`` on self-loops of untagged images).

    Returns:
        ``edge_index`` ``[2, E]`` (int64, sorted by target then source; ``edge_index[0]`` is
        the source ``j``), and with ``return_shared`` the ``[E]`` shared-class counts.

    Shapes:
        - **input:** tags ``[N, C]``
        - **output:** edge_index ``[2, E]`` (symmetric), shared ``[E]``
    """
    t = _as_tags(tags)
    n = t.size(0)
    device = t.device
    img, cls = t.nonzero(as_tuple=True)  # incidences, sorted by image
    order = torch.argsort(cls * max(n, 1) + img)  # sort incidences by class, then image
    img_s, cls_s = img[order], cls[order]
    counts = torch.bincount(cls_s, minlength=t.size(1))
    ptr = torch.cumsum(counts, 0) - counts  # start of each class block
    rep = counts[cls_s]  # each incidence pairs with every member of its class
    total = int(rep.sum())
    src_inc = torch.repeat_interleave(torch.arange(img_s.numel(), device=device), rep)
    start = torch.repeat_interleave(torch.cumsum(rep, 0) - rep, rep)
    local = torch.arange(total, device=device) - start
    partner = img_s[ptr[cls_s[src_inc]] + local]
    first = img_s[src_inc]
    keep = first != partner
    # key = target * N + source; unique() sorts by target then source.
    key = partner[keep] * n + first[keep]
    key, shared = torch.unique(key, return_counts=True)
    if self_loops:
        loops = torch.arange(n, device=device)
        n_cls = t.sum(1)
        key = torch.cat([key, loops * n + loops])
        shared = torch.cat([shared, n_cls.to(shared.dtype)])
        key, perm = torch.sort(key)
        shared = shared[perm]
    edge_index = torch.stack([key % max(n, 1), torch.div(key, max(n, 1), rounding_mode="floor")])
    if return_shared:
        return edge_index, shared
    return edge_index


class GreedyGroupSampler(Sampler[list[int]]):
    r"""Sample groups of images that share classes (Group-WSSS mini-batches).

    One group per anchor image and epoch: the anchors are all images (in random order with
    ``shuffle=True``), and each anchor is completed with ``group_size - 1`` partners.

    * ``strategy="paper"`` (Group-WSSS, Sec. "Greedy mini-batch sampling"): the partners are
      the images sharing the *most* classes with the anchor. Ties are broken in favour of
      images that have not been used yet in the current epoch, then at random. Only images
      sharing at least one class are eligible and the anchor is never its own partner.
    * ``strategy="code"`` (authors' ``LoadData.py``, NOTES.md 1.1): for each partner, draw
      uniformly random images until one has *exactly* the anchor's label vector; after
      ``max_tries`` failed draws, pick one random class of the anchor and draw until an image
      contains it (equivalently: a uniform draw among the images containing it). As in the
      code, a partner may be the anchor itself or repeat. (The code draws from
      ``[1, N - 2]``, an off-by-one quirk; we draw from all ``N`` images.)

    Images whose classes no other image has (paper strategy) get a short partner list; with
    ``pad="anchor"`` (default) the group is padded with the anchor itself so that every group
    has exactly ``group_size`` entries (what a fixed-``K`` model needs); with ``pad=None`` the
    group is returned smaller. Images without any class cannot form a group: by default
    (``empty="error"``) they raise a :class:`ValueError`; with ``empty="skip"`` they are never
    anchors nor partners.

    Args:
        tags: ``[N, C]`` multi-hot tags (tensor or numpy array).
        group_size: ``K >= 1`` images per group (paper default 4, code 3).
        strategy: ``"paper" | "code"``.
        shuffle: Random anchor order (reshuffled every epoch, see :meth:`set_epoch`).
        seed: Base seed; the epoch's generator is seeded with ``seed + epoch``.
        max_tries: Draws before the code strategy's fallback.
        pad: ``"anchor"`` or ``None`` (see above).
        empty: ``"error" | "skip"`` for images with no class.

    Yields:
        ``list[int]`` of dataset indices, the anchor first.

    Example::

        sampler = GreedyGroupSampler(tags, group_size=3)
        loader = DataLoader(dataset, batch_sampler=sampler)
    """

    def __init__(
        self,
        tags: Tensor,
        group_size: int,
        strategy: str = "paper",
        shuffle: bool = True,
        seed: int = 0,
        max_tries: int = 1000,
        pad: str | None = "anchor",
        empty: str = "error",
    ) -> None:
        t = _as_tags(tags).cpu().numpy()
        check_positive(group_size, "group_size", integer=True)
        check_choice(strategy, ("paper", "code"), "strategy")
        check_positive(max_tries, "max_tries", integer=True)
        check_choice(pad, ("anchor", None), "pad")  # type: ignore[arg-type]
        check_choice(empty, ("error", "skip"), "empty")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"'seed' must be an int, got {seed!r}")
        if t.shape[0] == 0:
            raise ValueError("'tags' has no images")
        n_cls = t.sum(1)
        if empty == "error" and (n_cls == 0).any():
            bad = np.flatnonzero(n_cls == 0)[:10].tolist()
            raise ValueError(
                f"'tags' has images without any class (indices {bad}...); they cannot be "
                "grouped. Remove them or pass empty='skip'"
            )
        self.tags = t
        self.group_size = int(group_size)
        self.strategy = strategy
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.max_tries = int(max_tries)
        self.pad = pad
        self.empty = empty
        self.epoch = 0
        self._valid = np.flatnonzero(n_cls > 0)
        if self._valid.size == 0:
            raise ValueError("'tags' has no image with a class")
        self._tags_i = t.astype(np.int64)
        # For the code strategy: group images by identical label vector, and by class.
        self._by_class = [np.flatnonzero(t[:, c]) for c in range(t.shape[1])]

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch (changes the anchor order and the random choices)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(self._valid.size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng(self.seed + self.epoch)
        anchors = rng.permutation(self._valid) if self.shuffle else self._valid.copy()
        used = np.zeros(self.tags.shape[0], dtype=bool)
        for a in anchors.tolist():
            if self.strategy == "paper":
                group = self._paper_group(a, used, rng)
            else:
                group = self._code_group(a, rng)
            used[group] = True
            yield group

    def _pad(self, a: int, group: list[int]) -> list[int]:
        if self.pad == "anchor":
            group = group + [a] * (self.group_size - len(group))
        return group

    def _paper_group(self, a: int, used: np.ndarray, rng: np.random.Generator) -> list[int]:
        k = self.group_size - 1
        if k == 0:
            return [a]
        shared = self._tags_i @ self._tags_i[a]  # [N]
        shared[a] = 0
        cand = np.flatnonzero(shared > 0)
        if cand.size == 0:
            return self._pad(a, [a])
        # primary: shared count (desc); secondary: unused first; tertiary: random
        r = rng.random(cand.size)
        order = np.lexsort((r, used[cand], -shared[cand]))
        return self._pad(a, [a] + cand[order[:k]].tolist())

    def _code_group(self, a: int, rng: np.random.Generator) -> list[int]:
        n = self.tags.shape[0]
        target = self.tags[a]
        group = [a]
        for _ in range(self.group_size - 1):
            draws = rng.integers(0, n, size=self.max_tries)
            match = np.flatnonzero((self.tags[draws] == target).all(1))
            if match.size:
                group.append(int(draws[match[0]]))
                continue
            cls = rng.choice(np.flatnonzero(target))
            members = self._by_class[cls]
            group.append(int(members[rng.integers(0, members.size)]))
        return group

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(num_images={self.tags.shape[0]}, "
            f"group_size={self.group_size}, strategy={self.strategy!r}, "
            f"shuffle={self.shuffle})"
        )
