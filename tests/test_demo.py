import json

import numpy as np
import pytest
import torch

from pyg_wsss import demo
from pyg_wsss.pipelines import _DEMOS, DemoContext, register_demo


def test_demo_plumbing_on_a_tiny_synthetic_run(tmp_path, monkeypatch):
    calls = []

    @register_demo("_Test")
    def fake(ctx):
        calls.append(ctx.name)
        return {"ground truth": [s["mask"] for s in ctx.samples],
                "all background": [np.zeros_like(s["mask"]) for s in ctx.samples]}

    try:
        code = demo.main(["--contexts", "synthetic", "--systems", "_Test", "--num-images", "2",
                          "--num-train", "4", "--image-size", "48", "--epochs", "1",
                          "--out", str(tmp_path), "--no-progress"])
    finally:
        _DEMOS.pop("_Test")
    assert code == 0 and calls == ["synthetic"]
    result = json.loads((tmp_path / "results.json").read_text())
    rows = {r["method"]: r for r in result["rows"]}
    assert rows["ground truth"]["miou"] == pytest.approx(1.0)
    assert rows["all background"]["miou"] < 0.6
    assert (tmp_path / "synthetic.png").stat().st_size > 0


def test_failing_system_is_reported_not_hidden(tmp_path):
    @register_demo("_Broken")
    def broken(ctx):
        raise RuntimeError("boom")

    try:
        ctx = DemoContext(name="t", samples=[{"image": np.zeros((8, 8, 3), np.uint8),
                                              "mask": np.zeros((8, 8), np.uint8)}],
                          cams=[torch.zeros(2, 8, 8)], num_classes=3,
                          class_names=["background", "a", "b"])
        rows, preds = demo.run_context(ctx, ["_Broken"], progress=False)
    finally:
        _DEMOS.pop("_Broken")
    assert rows[0]["error"] == "RuntimeError: boom" and preds == {}
    assert "failed: RuntimeError: boom" in demo.format_table(rows)
