"""Fast sparse kernels for pixel graphs: CSR layout cache, SpMM with an SDDMM backward, and
fused edge attention (SDDMM + segment softmax + SpMM). Every kernel has the plain
gather/scatter path beside it as the reference in the tests."""
from .csr import CSRGraph, clear_csr_cache, to_csr
from .edge_attention import edge_attention, edge_softmax
from .spmm import csr_matrix, fixed_spmm, sddmm, spmm

__all__ = [
    "CSRGraph",
    "clear_csr_cache",
    "csr_matrix",
    "edge_attention",
    "edge_softmax",
    "fixed_spmm",
    "sddmm",
    "spmm",
    "to_csr",
]
