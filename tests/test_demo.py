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


def test_picture_is_a_readable_grid_with_one_column_per_system_and_a_legend(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    samples = [{"image": rng.integers(0, 255, (40, 60, 3), dtype=np.uint8),
                "mask": np.pad(np.ones((20, 30), np.uint8), ((10, 10), (15, 15)))}
               for _ in range(6)]
    ctx = DemoContext(name="t", samples=samples, cams=[torch.rand(2, 40, 60)] * 6,
                      num_classes=3, class_names=["background", "cat", "dog"])
    preds = {m: [np.full((40, 60), k, np.uint8) for _ in samples]
             for m, k in zip(["A1", "A2", "B1", "B2", "B3"], [0, 0, 1, 2, 0])}
    rows = [{"system": m[0], "method": m, "miou": v}
            for m, v in zip(preds, [0.2, 0.5, 0.1, 0.4, 0.3])]
    assert demo.picture_columns(rows, preds) == ["A2", "B2"]  # each system's best row
    path = demo.save_pictures(ctx, preds, tmp_path, max_rows=4, rows=rows, cell_size=64)
    img = np.asarray(Image.open(path))
    # 4 image rows, 5 columns (image | CAM | ground truth | A2 | B2) of 64 px + padding,
    # plus the legend strip: not a strip thousands of pixels wide
    assert img.shape[1] == 5 * (64 + 4) + 4
    assert 4 * 64 < img.shape[0] < 4 * (64 + 4) + 18 + 4 + 60
    from pyg_wsss.viz import voc_palette

    palette = voc_palette()
    legend_rows = img[4 * (64 + 4) + 18 + 4:].reshape(-1, 3)
    for c in (1, 2):  # the swatches of the classes that appear (A2 is all background)
        assert (legend_rows == palette[c]).all(-1).any()
    preds["B2"] = [np.zeros((40, 60), np.uint8)] * 6  # now no "dog" anywhere: no swatch
    img = np.asarray(Image.open(demo.save_pictures(ctx, preds, tmp_path, rows=rows,
                                                   cell_size=64)))
    assert not (img[4 * (64 + 4) + 18 + 4:].reshape(-1, 3) == palette[2]).all(-1).any()
