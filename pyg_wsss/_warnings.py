"""Scoped warning filters: the one place that decides which library warnings pyg_wsss hides.

Nothing here touches the global filter list: every helper is a context manager (usable as a
decorator too) that restores the caller's filters on exit, so importing pyg_wsss never changes
what the user's own code sees.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

__all__ = ["SPARSE_WARNING_PATTERNS", "sparse_beta_warnings_off"]

#: Regular expressions (``warnings`` ``message`` filters, matched at the start) of the torch
#: warnings that :func:`sparse_beta_warnings_off` hides: the "beta state" notice of every
#: compressed layout (CSR, CSC, BSR, BSC), given on each construction, and the notice that
#: sparse invariant checks are off by default.
SPARSE_WARNING_PATTERNS: tuple[str, ...] = (
    r"Sparse (CSR|CSC|BSR|BSC) tensor support is in beta",
    r"Sparse invariant checks are implicitly disabled",
)


@contextlib.contextmanager
def sparse_beta_warnings_off() -> Iterator[None]:
    """Hide torch's sparse-layout notices (:data:`SPARSE_WARNING_PATTERNS`) inside the block.

    torch warns that its compressed sparse layouts are "in beta" on every construction of a
    CSR/CSC/BSR/BSC tensor; the kernels pyg_wsss uses (CSR SpMM, ``to_sparse_csr``) are
    tested here, so the notice is noise. Every other warning, sparse or not, still shows, and
    the previous filters are restored on exit (also on an exception).

    Example:
        >>> import torch
        >>> import warnings
        >>> from pyg_wsss._warnings import sparse_beta_warnings_off
        >>> with warnings.catch_warnings(record=True) as seen:
        ...     warnings.simplefilter("always")
        ...     with sparse_beta_warnings_off():
        ...         a = torch.eye(3).to_sparse_csr()
        ...     print([str(w.message)[:10] for w in seen if "beta" in str(w.message)])
        []
    """
    with warnings.catch_warnings():
        for pattern in SPARSE_WARNING_PATTERNS:
            warnings.filterwarnings("ignore", message=pattern, category=UserWarning)
        yield
