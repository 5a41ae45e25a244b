r"""The per-image objective of WSGCN (W 2-7): partial cross-entropy, entropy and Laplacian
terms summed over the images of a batch (:func:`wsgcn_objective`), and
:class:`WSGCNObjective`, the same objective with its masks and normalisers computed once for a
training loop. Also importable from :mod:`pyg_wsss.nn.models.wsgcn`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..._checks import check_choice, check_positive, check_tensor
from .cross_entropy import partial_cross_entropy
from .entropy import entropy_loss
from .laplacian import laplacian_quadratic_form

__all__ = ["WSGCNLossConfig", "wsgcn_objective", "WSGCNObjective"]


@dataclass
class WSGCNLossConfig:
    """Weights and variants of the per-image objective (W 2)."""

    beta_entropy: float = 10.0
    beta_laplacian: float = 1e-2
    entropy_variant: str = "code"
    laplacian_on: str = "probs"  # "probs" (paper) | "log_probs" (code)
    balanced: bool = True


def wsgcn_objective(
    log_probs: Tensor,
    labels: Tensor,
    batch: Tensor,
    num_graphs: int,
    laplacian: Tensor | None,
    config: WSGCNLossConfig,
) -> Tensor:
    r"""Per-image loss of W 2 summed over images (so that each image's gradient is the one it
    gets alone): :math:`\sum_b \ell_{fg} + \ell_{bg} + \beta_1 \ell_{ent} + \beta_2 \ell_{lp}`.
    ``laplacian`` is the batch's sparse CSR Laplacian (symmetric) and the node count per image
    is used as normaliser.

    Example:
        >>> import torch
        >>> from pyg_wsss.nn.functional.wsgcn_objective import (
        ...     WSGCNLossConfig, WSGCNObjective, wsgcn_objective)
        >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 1.5, 0.3],
        ...                        [0.2, 0.1, 2.2], [1.0, 1.0, 1.0]])
        >>> log_probs = torch.log_softmax(logits, -1)
        >>> labels, batch = torch.tensor([0, 1, 255, 255]), torch.zeros(4, dtype=torch.long)
        >>> cfg = WSGCNLossConfig(beta_laplacian=0.0)  # CE + 10 x entropy ("code")
        >>> wsgcn_objective(log_probs, labels, batch, 1, None, cfg)
        tensor(3.5908)
        >>> WSGCNObjective(labels, batch, 1, 3, None, cfg)(log_probs)  # precomputed weights
        tensor(3.5908)
    """
    loss = partial_cross_entropy(
        log_probs,
        labels,
        balanced=config.balanced,
        batch=batch,
        num_graphs=num_graphs,
        reduction="sum",
        log_input=True,
    )
    if config.beta_entropy:
        loss = loss + config.beta_entropy * entropy_loss(
            log_probs,
            labels,
            variant=config.entropy_variant,
            batch=batch,
            num_graphs=num_graphs,
            reduction="sum",
            log_input=True,
        )
    if config.beta_laplacian and laplacian is not None:
        y = log_probs.exp() if config.laplacian_on == "probs" else log_probs
        total = laplacian_quadratic_form(laplacian, y, batch, num_graphs)
        count = torch.bincount(batch, minlength=num_graphs).clamp(min=1).to(y.dtype)
        loss = loss + config.beta_laplacian * (total / count).sum()
    return loss


class WSGCNObjective:
    r""":func:`wsgcn_objective` with everything that does not change during the optimisation
    computed once: the labels, the group of every node (fg / bg / unlabelled) and the
    per-image normalisers become constant node weights, so that a step costs one gather,
    one ``exp`` and a few reductions besides the Laplacian SpMM (the functional losses
    re-derive the masks and counts on every call). Equal to :func:`wsgcn_objective` in
    value and gradient (tested).

    Args:
        labels: ``[N]`` partial labels (255 = unlabelled), batch: ``[N]``, num_graphs: ``B``,
        num_classes: ``K``, laplacian: the batch's symmetric CSR Laplacian or ``None``,
        config: :class:`WSGCNLossConfig`.
    """

    def __init__(
        self,
        labels: Tensor,
        batch: Tensor,
        num_graphs: int,
        num_classes: int,
        laplacian: Tensor | None,
        config: WSGCNLossConfig,
        ignore_index: int = 255,
        background: int = 0,
    ) -> None:
        check_choice(config.entropy_variant, ("paper", "code"), "entropy_variant")
        check_choice(config.laplacian_on, ("probs", "log_probs"), "laplacian_on")
        check_tensor(labels, "labels", ndim=1, floating=False)
        check_tensor(batch, "batch", ndim=1, floating=False)
        check_positive(num_classes, "num_classes", integer=True)
        labels = labels.long()
        n = labels.numel()
        if batch.numel() != n:
            raise ValueError(f"'batch' has {batch.numel()} entries but 'labels' has {n}")
        b = int(num_graphs)
        batch = batch.long().to(labels.device)
        if n and (int(batch.min()) < 0 or int(batch.max()) >= b):
            raise ValueError(f"'batch' must lie in [0, {b - 1}] for num_graphs={b}")
        if config.balanced and not 0 <= background < num_classes:
            raise ValueError(f"'background' must be in [0, {num_classes - 1}], got {background}")
        labelled = labels != ignore_index
        if labelled.any() and (labels[labelled].min() < 0 or labels[labelled].max() >= num_classes):
            raise ValueError(
                f"'labels' has values outside [0, {num_classes - 1}] and not {ignore_index}"
            )
        dt = torch.float64  # weights in double, cast once in .to()

        def per_node_inverse_count(mask: Tensor) -> Tensor:
            count = torch.zeros(b, dtype=dt, device=labels.device).index_add_(
                0, batch, mask.to(dt)
            )
            return torch.where(mask, 1.0 / count.clamp(min=1)[batch], torch.zeros((), dtype=dt))

        if config.balanced:
            is_bg = labelled & (labels == background)
            ce_w = per_node_inverse_count(labelled & ~is_bg) + per_node_inverse_count(is_bg)
        else:
            ce_w = per_node_inverse_count(labelled)
        kappa = 1.0 / num_classes if config.entropy_variant == "code" else 1.0
        ent_w = per_node_inverse_count(~labelled) * (config.beta_entropy * kappa)
        nodes = torch.zeros(b, dtype=dt, device=labels.device).index_add_(
            0, batch, torch.ones(n, dtype=dt, device=labels.device)
        )
        self.num_classes = int(num_classes)
        self.labelled = labelled
        self.safe_labels = torch.where(labelled, labels, torch.zeros_like(labels)).view(-1, 1)
        self.ce_weight, self.ent_weight = ce_w, ent_w
        self.lap_weight = config.beta_laplacian / nodes.clamp(min=1)
        self.batch, self.num_graphs = batch, b
        self.laplacian = laplacian if config.beta_laplacian else None
        self._lap_coo = None if self.laplacian is None else _csr_entries(self.laplacian)
        self._use_laplacian = self.laplacian is not None  # (compiled code must not touch it)
        self.use_entropy = bool(config.beta_entropy)
        self.on_probs = config.laplacian_on == "probs"
        self._double = (ce_w, ent_w, self.lap_weight)  # masters: casts never compound

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "WSGCNObjective":
        """Move the precomputed weights (and the Laplacian) to ``device`` / ``dtype`` (the
        weights are kept in float64 and cast from there; calls with ``log_probs`` of another
        dtype or device cast them on the fly)."""
        for name, master in zip(("ce_weight", "ent_weight", "lap_weight"), self._double):
            setattr(self, name, master.to(device=device, dtype=dtype or self.ce_weight.dtype))
        if self.laplacian is not None:
            self.laplacian = self.laplacian.to(device=device, dtype=dtype)
            self._lap_coo = _csr_entries(self.laplacian)
        self.safe_labels, self.batch = self.safe_labels.to(device), self.batch.to(device)
        self.labelled = self.labelled.to(device)
        return self

    def __call__(self, log_probs: Tensor) -> Tensor:
        check_tensor(log_probs, "log_probs", ndim=2, floating=True)
        if tuple(log_probs.shape) != (self.batch.numel(), self.num_classes):
            raise ValueError(
                f"'log_probs' must be [{self.batch.numel()}, {self.num_classes}], got "
                f"{tuple(log_probs.shape)}"
            )
        if self.ce_weight.dtype != log_probs.dtype or self.ce_weight.device != log_probs.device:
            self.to(log_probs.device, log_probs.dtype)
        picked = log_probs.gather(1, self.safe_labels).view(-1)
        picked = torch.where(self.labelled, picked, torch.zeros_like(picked))  # no -inf * 0
        loss = -(picked * self.ce_weight).sum()
        probs = log_probs.exp() if (self.use_entropy or self.on_probs) else None
        if self.use_entropy:
            assert probs is not None
            finite = log_probs.clamp(min=torch.finfo(log_probs.dtype).min)  # 0 log 0 = 0
            loss = loss - ((probs * finite).sum(-1) * self.ent_weight).sum()
        if self._use_laplacian:
            y = probs if probs is not None and self.on_probs else log_probs
            if torch.compiler.is_compiling():  # sparse tensors do not trace: gather/scatter
                assert self._lap_coo is not None
                rows, cols, vals = self._lap_coo
                ly = torch.zeros_like(y).index_add_(
                    0, rows, vals.to(y.dtype).unsqueeze(-1) * y.index_select(0, cols)
                )
                trace = y.new_zeros(self.num_graphs).index_add_(0, self.batch, (y * ly).sum(-1))
            else:
                assert self.laplacian is not None
                trace = laplacian_quadratic_form(self.laplacian, y, self.batch, self.num_graphs)
            loss = loss + (trace * self.lap_weight).sum()
        return loss


def _csr_entries(a: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(rows, cols, values)`` of a sparse CSR matrix, in its storage order."""
    rows = torch.repeat_interleave(
        torch.arange(a.size(0), device=a.device), a.crow_indices().diff()
    )
    return rows, a.col_indices().clone(), a.values().clone()
