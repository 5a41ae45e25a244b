"""The bad-input matrix (issue 17, item 6): prints the covered callables and cases."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(__file__))

import badinput_matrix  # noqa: E402


def pytest_terminal_summary(terminalreporter):
    reg = badinput_matrix.REGISTRY
    if not reg:
        return

    def public(names):  # "laplacian_loss[spmm]", "AffinityAttentionConv()" -> the public name
        return {re.sub(r"\[.*\]|\(\)$", "", n) for n in names}

    callables = len(set().union(*(public(v) for v in reg.values())))
    cases = sum(sum(v.values()) for v in reg.values())
    per_area = ", ".join(f"{a} {len(public(v))}" for a, v in sorted(reg.items()))
    terminalreporter.write_line(
        f"bad-input matrix: {callables} callables, {cases} cases ({per_area})"
    )
