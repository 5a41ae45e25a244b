"""A worker for the DDP tests: trains a tiny stage-2 network with
:func:`pyg_wsss.segmentation.distributed.train_segmentation_distributed` (run it with
``python -m torch.distributed.run --nproc_per_node N`` or as one plain process) and writes
the losses, a weight checksum and the gathered evaluation to ``--out`` (rank 0); with
``--trainers 1`` also the package's own trainers (``train_group_wsss``,
``train_knowledge_classifier``, ``train_affinity_net``) on tiny data."""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch
from torch import nn


class TinyNet(nn.Module):
    """conv - BatchNorm - ReLU - conv: BatchNorm shows whether statistics are shared."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, num_classes, 1))

    def forward(self, x):
        return self.body(x)


def data(n: int = 8, size: int = 16):
    rng = np.random.default_rng(0)
    samples, labels = [], []
    for i in range(n):
        lab = rng.integers(0, 3, (size, size)).astype(np.uint8)
        lab[rng.random((size, size)) < 0.2] = 255
        img = (rng.random((size, size, 3)) * 80).astype(np.uint8)
        img[..., 0] += (lab == 1).astype(np.uint8) * 120
        img[..., 1] += (lab == 2).astype(np.uint8) * 120
        mask = np.where(lab == 255, 0, lab).astype(np.uint8)
        samples.append({"image": img, "name": f"im{i}", "mask": mask})
        labels.append(lab)
    return samples, labels


class _DieAt(list):
    """A history list whose owner (rank ``rank``) dies when it reaches ``k`` losses."""

    def __init__(self, k: int, rank: int) -> None:
        super().__init__()
        self.k, self.rank = k, rank

    def append(self, value):
        super().append(value)
        if len(self) == self.k and int(os.environ.get("RANK", 0)) == self.rank:
            sys.stderr.write(f"rank {self.rank}: dying after {self.k} iterations\n")
            sys.stderr.flush()
            os._exit(17)


def affinity_head() -> tuple[list[float], list[float]]:
    """The A2GNN affinity head (:class:`pyg_wsss.nn.models.AffinityNet` on precomputed
    pyramids) trained through the generic :func:`pyg_wsss.distributed.ddp_fit` (Adam, as
    ``train_affinity_net``): global batch 2 of 4 items, 3 steps."""
    from pyg_wsss import distributed as D
    from pyg_wsss.nn.models import AffinityNet

    g = torch.Generator().manual_seed(1)
    items = [([torch.rand(1, c, s, s, generator=g) for c, s in ((4, 8), (6, 4), (8, 2))],
              torch.rand(1, 12, 8, 8, generator=g)) for _ in range(4)]
    torch.manual_seed(0)
    net = D.wrap_model(AffinityNet(in_channels=(4, 6, 8), reduce_channels=(4, 4, 4)))
    opt = torch.optim.Adam(net.parameters(), lr=0.01, weight_decay=5e-4)

    def loss_fn(model, batch):
        total = sum(((model(items[i][0]) - items[i][1]) ** 2).sum() for i, _ in batch)
        return total, sum(items[i][1].numel() for i, _ in batch)

    losses = D.ddp_fit(net, opt, len(items), 3, 2, loss_fn, seed=5)
    weights = [float(t.double().sum()) for t in D.unwrap_model(net).state_dict().values()]
    return losses, weights


def knowledge_classifier() -> tuple[list[float], list[float]]:
    """The knowledge-graph classifier (:class:`pyg_wsss.nn.models.KnowledgeClassifier` over
    SmallCNN, BatchNorm frozen) through :class:`pyg_wsss.distributed.LossModule` and
    ``ddp_fit``: its own mean loss (Eq. 6) times the local batch is the loss sum."""
    from pyg_wsss import distributed as D
    from pyg_wsss.nn.models import KnowledgeClassifier, build_backbone

    g = torch.Generator().manual_seed(2)
    x = torch.rand(4, 3, 32, 32, generator=g)
    y = (torch.rand(4, 3, generator=g) > 0.5).float()
    torch.manual_seed(0)
    clf = KnowledgeClassifier(build_backbone("small_cnn"), torch.eye(3), hidden_channels=8,
                              focal_weight=0.1)
    net = D.wrap_model(D.LossModule(clf))
    net.train()
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)

    def loss_fn(model, batch):
        idx = [i for i, _ in batch]
        return model(x[idx], y[idx]) * len(idx), len(idx)

    losses = D.ddp_fit(net, opt, 4, 3, 2, loss_fn, seed=6)
    weights = [float(t.double().sum()) for t in clf.state_dict().values()
               if t.is_floating_point()]
    return losses, weights


def _checksums(module) -> list[float]:
    return [float(t.double().sum()) for t in module.state_dict().values()
            if t.is_floating_point()]


def _tag_samples(n: int, size: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        tags = np.zeros(3, np.float32)
        tags[i % 3] = 1
        if i % 2:
            tags[(i + 1) % 3] = 1
        img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        out.append({"image": img, "tags": tags, "name": f"t{i}"})
    return out


class _Conv(nn.Module):
    """A BatchNorm-free backbone (exact DDP = one process on CPU) with a layer its features
    do not use (as EfficientNet's head): DDP must not wait for its gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.spare = nn.Linear(2, 2)
        self.channels = (8,)

    def forward(self, x):
        return [torch.relu(self.conv(x))]


def trainers(distributed: bool | None = None) -> dict:
    """The package's own trainers with ``distributed`` (default auto, also for the affinity
    net whose default is False): run as one process they take today's path, under torchrun
    the data-parallel one (``True``: that path even on one process). Tiny data; steps where
    rank 1 has no work are included (zero-weighted forward pass)."""
    from pyg_wsss import distributed as D
    from pyg_wsss.nn.models import AffinityNet, KnowledgeClassifier, build_backbone
    from pyg_wsss.pipelines.a2gnn import train_affinity_net
    from pyg_wsss.pipelines.group_wsss import build_group_model, train_group_wsss
    from pyg_wsss.pipelines.knowledge_grm import train_knowledge_classifier

    out: dict = {}
    s = _tag_samples(6, 16, 0)
    # Group-WSSS: trained backbone (steps of 2 groups) and frozen backbone (cached features,
    # steps of 5 then 1 group); graph dropout off (its masks are per-rank draws)
    for name, blr, gps in (("group", 1e-3, 2), ("group_frozen", 0.0, 5)):
        torch.manual_seed(0)
        model = build_group_model(3, _Conv(), hidden_channels=4, graph_dropout=False)
        hist: list = []
        model, acc = train_group_wsss(model, s, group_size=3, epochs=2, backbone_lr=blr,
                                      groups_per_step=gps, accumulate_cams=True,
                                      progress=False, seed=4, history=hist,
                                      distributed=distributed)
        out[name] = {"history": hist, "weights": _checksums(model),
                     "acc": {str(k): float(v.double().sum()) for k, v in acc.maps.items()}}
    # knowledge-graph classifier on SmallCNN (BatchNorm frozen); batches of 3, 3, 1
    ks = _tag_samples(7, 32, 1)
    feats = torch.rand(3, 5, generator=torch.Generator().manual_seed(3))
    for name, freeze in (("knowledge", True), ("knowledge_bn", False)):
        torch.manual_seed(0)
        backbone = build_backbone("small_cnn")
        backbone.spare = nn.Linear(2, 2)  # unused by the features
        clf = KnowledgeClassifier(backbone, feats, torch.eye(3), hidden_channels=8,
                                  focal_weight=0.5)
        hist = []
        train_knowledge_classifier(clf, ks, epochs=2, batch_size=3, lr=0.01, seed=2,
                                   freeze_bn=freeze, history=hist, distributed=distributed)
        out[name] = {"history": hist, "weights": _checksums(clf),
                     "state": [float(t.double().sum()) for t in clf.state_dict().values()]}
    try:
        train_knowledge_classifier(clf, ks, epochs=1, batch_size=2, sync_batchnorm=True,
                                   distributed=distributed)
        out["sync_bn_error"] = None
    except D.DistributedError as err:
        out["sync_bn_error"] = str(err)
    # the A2GNN affinity CNN: 5 images, global batches of 4 (two forward passes a rank), 1
    g = torch.Generator().manual_seed(1)
    pyramids = [[torch.rand(c, k, k, generator=g) for c, k in ((4, 8), (6, 4), (8, 2))]
                for _ in range(5)]
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(5)]
    seeds = [rng.choice(np.array([0, 1, 2, 255], np.uint8), (16, 16)) for _ in range(5)]
    torch.manual_seed(0)
    spare = nn.Linear(2, 2)  # a backbone the precomputed pyramids bypass
    spare.channels = (4, 6, 8)
    net = AffinityNet(spare, reduce_channels=(4, 4, 4))
    hist = []
    train_affinity_net(net, pyramids, images, seeds, radius=2, epochs=2, batch_size=4,
                       distributed=distributed, history=hist)
    out["affinity_net"] = {"history": hist, "weights": _checksums(net)}
    # every rank ends with the same model (parameters and, after the trainers' final
    # broadcast, buffers)
    outside = D.data_parallel()
    with D.local_work():  # per-rank work (different data): auto-detection stays local
        inside = D.data_parallel()
        hist = []
        r = D.rank()
        train_affinity_net(net, pyramids[r:], images[r:], seeds[r:], radius=2, epochs=1,
                           distributed=None, history=hist)  # 5 - rank steps, no collective
    out["auto"] = {"outside": outside, "inside": inside, "local_steps": len(hist)}
    mine = [out[k]["weights"] + out[k].get("state", []) for k in
            ("group", "group_frozen", "knowledge", "knowledge_bn", "affinity_net")]
    every = D.all_gather_object(mine)
    out["ranks_agree"] = all(x == every[0] for x in every)
    return out


def main(argv: list[str] | None = None) -> int:
    from pyg_wsss import distributed as D
    from pyg_wsss.segmentation import PseudoLabelDataset
    from pyg_wsss.segmentation.distributed import (
        evaluate_segmentation_distributed,
        train_segmentation_distributed,
    )

    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--iterations", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--checkpoint")
    p.add_argument("--die-at", type=int, default=0)
    p.add_argument("--freeze-bn", type=int, default=1)
    p.add_argument("--trainers", type=int, default=0,
                   help="also run the package's Group-WSSS / knowledge / affinity trainers")
    args = p.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    D.init_distributed(backend="gloo", timeout=30)
    samples, labels = data()
    ds = PseudoLabelDataset(samples, labels, crop_size=12, flip=True)
    torch.manual_seed(0)
    model = TinyNet()
    history = _DieAt(args.die_at, 1) if args.die_at else []
    model = train_segmentation_distributed(
        model, ds, iterations=args.iterations, batch_size=args.batch_size, lr=0.05,
        freeze_bn=bool(args.freeze_bn), checkpoint=args.checkpoint, checkpoint_every=1,
        seed=3, history=history)
    ev = evaluate_segmentation_distributed(model, samples, 3)
    aff_history, aff_weights = affinity_head()
    clf_history, clf_weights = knowledge_classifier()
    trained = trainers() if args.trainers else None
    if D.is_main():
        weights = [float(t.double().sum()) for t in model.state_dict().values()
                   if t.is_floating_point()]
        with open(args.out, "w") as f:
            json.dump({"history": list(history), "weights": weights, "miou": ev["miou"],
                       "affinity_history": aff_history, "affinity_weights": aff_weights,
                       "classifier_history": clf_history, "classifier_weights": clf_weights,
                       "confusion": ev["confusion"].tolist(), "world": D.world_size(),
                       "trainers": trained}, f)
    D.cleanup()
    torch.set_num_threads(threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
