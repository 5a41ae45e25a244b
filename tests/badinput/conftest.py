"""The bad-input matrix (issue 17, item 6): prints the covered callables and cases."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import badinput_matrix  # noqa: E402


def pytest_terminal_summary(terminalreporter):
    reg = badinput_matrix.REGISTRY
    if not reg:
        return
    callables = sum(len(v) for v in reg.values())
    cases = sum(sum(v.values()) for v in reg.values())
    per_area = ", ".join(f"{a} {len(v)}" for a, v in sorted(reg.items()))
    terminalreporter.write_line(
        f"bad-input matrix: {callables} callables, {cases} cases ({per_area})"
    )
