"""Smoke test of examples/wsgcn.py on a tiny synthetic set (both the one-seed table and the
multi-seed table), and its argument checks."""
import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--num-images", "2", "--num-train", "8", "--epochs", "1", "--steps", "5", "--quiet",
        "--no-ablation", "--image-size", "48", "--device", "cpu"]


def _example():
    path = Path(__file__).resolve().parents[2] / "examples" / "wsgcn.py"
    spec = importlib.util.spec_from_file_location("example_wsgcn", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tables(capsys):
    mod = _example()
    assert mod.main(TINY) == 0
    out = capsys.readouterr().out
    assert "| Random walk + CRF |" in out and "(WSGCN) + CRF |" in out
    assert mod.main(TINY + ["--seeds", "0", "1"]) == 0
    out = capsys.readouterr().out
    assert "| method | seed 0 | seed 1 | mean |" in out
    assert "CAM seeds (WSGCN partial labels" in out


def test_voc_root_rejects_cam_backbone_features(tmp_path):
    with pytest.raises(SystemExit):
        _example().main(["--voc-root", str(tmp_path), "--node-features", "cam-backbone"])
