"""The ``pyg-wsss`` command end to end, through ``python -m pyg_wsss`` in a subprocess, on the
tiny COCO dataset of ``examples/make_tiny_coco.py`` (4 images of 48x64 in sub-folders,
non-contiguous category ids 3 / 17 / 40, a crowd region, an image without annotations)."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pyg_wsss import cli

pytest.importorskip("pycocotools")

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["a/img0", "a/img1", "b/img2", "img3"]
IDS = [0, 3, 17, 40]


def _maker():
    spec = importlib.util.spec_from_file_location("make_tiny_coco",
                                                  ROOT / "examples" / "make_tiny_coco.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "pyg_wsss", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    _maker().draw(root)
    return root


def _expected_filled_miou(root: Path) -> float:
    """mIoU of the filled-box labels against the mask folder, computed here from the JSON's
    boxes and the masks (larger boxes first, so smaller ones stay on top)."""
    coco = json.loads((root / "instances.json").read_text())
    inter, union = np.zeros(256), np.zeros(256)
    present = set()
    for img in coco["images"]:
        gt = np.asarray(Image.open((root / "masks" / img["file_name"]).with_suffix(".png")))
        pred = np.zeros_like(gt)
        anns = [a for a in coco["annotations"]
                if a["image_id"] == img["id"] and not a["iscrowd"]]
        for a in sorted(anns, key=lambda a: -a["bbox"][2] * a["bbox"][3]):
            x, y, w, h = a["bbox"]
            pred[y:y + h, x:x + w] = a["category_id"]
        valid = gt != 255
        for c in IDS:
            p, t = (pred == c) & valid, (gt == c) & valid
            inter[c] += (p & t).sum()
            union[c] += (p | t).sum()
            if union[c]:
                present.add(c)
    return float(np.mean([inter[c] / union[c] for c in sorted(present)]))


def _miou(stdout: str) -> float:
    m = re.search(r"^mIoU (\d\.\d{4})$", stdout, flags=re.M)
    assert m, stdout
    return float(m.group(1))


def test_filled_pseudo_label_evaluate_show_rerun(tiny, tmp_path, capsys):
    out = tmp_path / "filled"
    args = ["pseudo-label", "--images", str(tiny / "images"), "--coco",
            str(tiny / "instances.json"), "--supervision", "box", "--method", "filled",
            "--out", str(out), "--no-progress"]
    r = run(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    pngs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert pngs == sorted(f"{n}.png" for n in NAMES)  # mirrors file_name, sub-folders
    with Image.open(out / "a/img0.png") as im:
        assert im.mode == "P" and im.size == (64, 48)
        labels = np.asarray(im)
    assert set(np.unique(labels)) == {0, 3, 17}  # dataset ids, not contiguous indices
    assert np.asarray(Image.open(out / "img3.png")).max() == 0  # no annotations
    assert json.loads((out / "classes.json").read_text()) == {
        "0": "background", "3": "cat", "17": "dog", "40": "bird", "255": "unlabelled"}
    record = json.loads((out / "run.json").read_text())
    assert {"torch", "torch_geometric", "pyg-wsss"} <= set(record["versions"])
    assert record["done"] == 4 and record["failed"] == 0 and record["device"] == "cpu"
    assert record["arguments"]["method"] == "filled" and record["seconds_per_image"] >= 0

    # evaluate: exact against the mask folder, and against the COCO polygons
    r = run("evaluate", "--pred", str(out), "--masks", str(tiny / "masks"), "--json",
            str(tmp_path / "eval.json"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    expected = _expected_filled_miou(tiny)
    assert _miou(r.stdout) == pytest.approx(round(expected, 4), abs=1e-9)
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["miou"] == pytest.approx(expected, abs=1e-12)
    assert [c["name"] for c in result["per_class"]] == ["background", "cat", "dog", "bird"]
    r = run("evaluate", "--pred", str(out), "--coco", str(tiny / "instances.json"),
            "--images", str(tiny / "images"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert 0.5 < _miou(r.stdout) < 0.95 and "cat" in r.stdout and "dog" in r.stdout

    # show: a grid with the ground truth column and a legend
    r = run("show", "--images", str(tiny / "images"), "--pred", str(out), "--coco",
            str(tiny / "instances.json"), "--num", "3", "--out", str(tmp_path / "show.png"),
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "show.png") as im:
        w, h = im.size
    assert w > 3 * 64 and h > 3 * 48

    # a rerun skips every image and rewrites none
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    r = run(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "0 written, 4 already done" in r.stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == mtimes
    again = json.loads((out / "run.json").read_text())
    assert again["skipped"] == 4 and again["image_seconds"] == record["image_seconds"]
    # another method into the same folder is refused; --overwrite recomputes
    other = [a if a != "filled" else "grabcut" for a in args]
    assert cli.main(other) == 2
    assert "another run (--method 'filled')" in _error_line(capsys.readouterr().err)
    r = run(*args, "--overwrite", cwd=tmp_path)
    assert r.returncode == 0 and "4 written" in r.stdout
    assert all(p.stat().st_mtime_ns != mtimes[p] for p in mtimes)


def test_grabcut_and_missing_predictions(tiny, tmp_path):
    out = tmp_path / "gc"
    r = run("pseudo-label", "--images", str(tiny / "images"), "--coco",
            str(tiny / "instances.json"), "--supervision", "box", "--method", "grabcut",
            "--out", str(out), "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (out / "img3.png").unlink()  # a missing prediction counts as all unlabelled
    r = run("evaluate", "--pred", str(out), "--masks", str(tiny / "masks"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert _miou(r.stdout) > _expected_filled_miou(tiny) - 0.2
    assert "1 missing prediction" in r.stdout


def test_a2gnn_box_with_a_config(tiny, tmp_path):
    cfg = tmp_path / "a2gnn.toml"
    cfg.write_text("stage1_epochs = 3\nstage2_epochs = 3\nhidden_channels = 8\n"
                   "affinity_epochs = 1\nmin_side = 64\n")
    out = tmp_path / "a2gnn"
    r = run("pseudo-label", "--images", str(tiny / "images"), "--coco",
            str(tiny / "instances.json"), "--supervision", "box", "--method", "a2gnn",
            "--config", str(cfg), "--device", "auto", "--out", str(out), "--no-progress",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for n in NAMES:
        labels = np.asarray(Image.open(out / f"{n}.png"))
        assert labels.shape == (48, 64) and set(np.unique(labels)) <= {0, 3, 17, 255}
    record = json.loads((out / "run.json").read_text())
    assert record["method"]["settings"]["stage1_epochs"] == 3
    assert "cams" not in record["method"]  # the box pipeline needs no CAMs
    assert record["device"] in ("cpu", "cuda")


def test_tag_supervision_on_a_mask_folder(tiny, tmp_path):
    """Masks folder + class names: tags from the masks, ImageNet CAMs (VOC names) or a
    classifier, WSGCN; the evaluation uses the same folder."""
    cfg = tmp_path / "w.json"
    cfg.write_text(json.dumps({"steps": 5, "cam_source": "classifier",
                               "cam_backbone": "small_cnn", "classifier_epochs": 2,
                               "image_size": 32}))
    out = tmp_path / "wsgcn"
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"3": "cat", "17": "dog"}))
    args = ["pseudo-label", "--images", str(tiny / "images"), "--masks", str(tiny / "masks"),
            "--class-names", str(names), "--supervision", "tag", "--method", "wsgcn",
            "--config", str(cfg), "--out", str(out), "--no-progress"]
    r = run(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "training on the dataset's tag labels" in r.stderr  # the CAM classifier
    assert "CAMClassifier(small_cnn)" in json.loads((out / "run.json").read_text())[
        "method"]["cams"]
    r = run(*args, cwd=tmp_path)  # nothing left to do: no training either
    assert r.returncode == 0 and "training on" not in r.stderr and "4 already done" in r.stdout
    assert json.loads((out / "classes.json").read_text()) == {
        "0": "background", "3": "cat", "17": "dog", "255": "unlabelled"}
    labels = np.asarray(Image.open(out / "a/img1.png"))
    assert set(np.unique(labels)) <= {0, 17, 255}  # the image's tags only
    r = run("evaluate", "--pred", str(out), "--masks", str(tiny / "masks"), cwd=tmp_path)
    assert r.returncode == 0 and 0 <= _miou(r.stdout) <= 1


def test_bad_images_are_logged_and_the_others_written(tiny, tmp_path):
    """Per-image problems (unreadable file, category id not in 'categories', a box outside
    the image, a size that disagrees with the JSON) go to failures.tsv with the reason;
    the other images are written and the exit code is 1."""
    data = tmp_path / "data"
    shutil.copytree(tiny, data)
    (data / "images" / "a" / "img1.jpg").write_bytes(b"not a jpeg")
    coco = json.loads((data / "instances.json").read_text())
    (data / "images" / "c").mkdir()
    bad = {"c/box_out": ([100, 100, 5, 5], 3, 48), "c/bad_cat": ([4, 4, 10, 10], 99, 48),
           "c/size": ([4, 4, 10, 10], 3, 50)}
    for k, (stem, (bbox, cid, height)) in enumerate(bad.items()):
        shutil.copy(data / "images" / "a" / "img0.png", data / "images" / f"{stem}.png")
        coco["images"].append({"id": 100 + k, "file_name": f"{stem}.png", "height": height,
                               "width": 64})
        coco["annotations"].append({"id": 100 + k, "image_id": 100 + k, "category_id": cid,
                                    "bbox": bbox, "iscrowd": 0, "area": 1,
                                    "segmentation": [[4, 4, 14, 4, 14, 14, 4, 14]]})
    (data / "instances.json").write_text(json.dumps(coco))
    out = tmp_path / "out"
    r = run("pseudo-label", "--images", str(data / "images"), "--coco",
            str(data / "instances.json"), "--supervision", "box", "--method", "filled",
            "--out", str(out), "--no-progress", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert f"4 images failed, see {out / 'failures.tsv'}" in r.stdout
    rows = [row.split("\t") for row in (out / "failures.tsv").read_text().splitlines()]
    reasons = {row[0]: row[-1] for row in rows if row[0] != "name"}
    assert sorted(reasons) == ["a/img1", "c/bad_cat", "c/box_out", "c/size"]
    assert "99" in reasons["c/bad_cat"] and "50" in reasons["c/size"]
    assert all(reasons.values())
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "a/img0.png", "b/img2.png", "img3.png"]


def _coco(tiny: Path, tmp_path: Path, edit) -> Path:
    coco = json.loads((tiny / "instances.json").read_text())
    edit(coco)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(coco))
    return path


def _error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.startswith("pyg-wsss")]
    assert len(lines) == 1 and lines[0].startswith("pyg-wsss: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_bad_input_exits_2_with_one_line(tiny, tmp_path):
    # missing --images (argparse) and a malformed field of the JSON (the reader), end to end
    r = run("pseudo-label", "--coco", str(tiny / "instances.json"), "--supervision", "box",
            "--method", "filled", "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert r.returncode == 2 and "--images" in _error_line(r.stderr)
    bad = _coco(tiny, tmp_path, lambda c: c["annotations"][1].update(bbox="oops"))
    r = run("pseudo-label", "--images", str(tiny / "images"), "--coco", str(bad),
            "--supervision", "box", "--method", "filled", "--out", str(tmp_path / "o"),
            cwd=tmp_path)
    assert r.returncode == 2 and "annotations[1].bbox" in _error_line(r.stderr)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("case, needle", [
    ("big_id", "300"),
    ("tag_filled", "does not work with tag supervision"),
    ("no_boxes", "box supervision needs boxes"),
    ("unknown_key", "'epochz'"),
    ("bad_config", "malformed JSON"),
    ("two_sources", "only one of --coco"),
])
def test_bad_input_in_process(tiny, tmp_path, capsys, case, needle):
    base = ["pseudo-label", "--images", str(tiny / "images"), "--out", str(tmp_path / "o"),
            "--no-progress"]
    coco = ["--coco", str(tiny / "instances.json")]
    if case == "big_id":
        def edit(c):
            c["categories"][1]["id"] = 300
            for a in c["annotations"]:
                a["category_id"] = 300 if a["category_id"] == 17 else a["category_id"]
        args = base + ["--coco", str(_coco(tiny, tmp_path, edit)), "--supervision", "box",
                       "--method", "filled"]
    elif case == "tag_filled":
        args = base + coco + ["--supervision", "tag", "--method", "filled"]
    elif case == "no_boxes":
        tags = tmp_path / "tags.json"
        tags.write_text(json.dumps({n: [3] for n in NAMES}))
        args = base + ["--tags", str(tags), "--supervision", "box", "--method", "grabcut"]
    elif case == "unknown_key":
        cfg = tmp_path / "cfg.toml"
        cfg.write_text("epochz = 3\n")
        args = base + coco + ["--supervision", "box", "--method", "random-walk",
                              "--config", str(cfg)]
    elif case == "bad_config":
        cfg = tmp_path / "cfg.json"
        cfg.write_text("{\"stage1_epochs\": 3,,}")
        args = base + coco + ["--supervision", "box", "--method", "a2gnn", "--config", str(cfg)]
    else:
        args = base + coco + ["--masks", str(tiny / "masks"), "--supervision", "box",
                              "--method", "filled"]
    assert cli.main(args) == 2
    line = _error_line(capsys.readouterr().err)
    assert needle in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["pseudo-label", "evaluate", "show", "demo", "bench"])
def test_help_has_an_example(command, capsys):
    try:
        code = cli.main([command, "--help"])
    except SystemExit as exc:
        code = exc.code
    assert code == 0
    text = capsys.readouterr().out
    assert "example" in text and f"pyg-wsss {command}" in text


def test_top_level_help_and_bench_list(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert all(c in text for c in ("pseudo-label", "evaluate", "show", "demo", "bench"))
    assert cli.main(["bench"]) == 0
    assert "graphs" in capsys.readouterr().out
    assert cli.main(["bench", "no-such-benchmark"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err


def test_bench_without_the_scripts_says_so(monkeypatch, capsys):
    monkeypatch.setattr(cli, "_benchmarks_dir", lambda: None)
    assert cli.main(["bench"]) == 0
    assert "not installed with the package" in capsys.readouterr().out
    assert cli.main(["bench", "graphs"]) == 2
    assert "run pyg-wsss bench from a clone" in _error_line(capsys.readouterr().err)


def test_demo_wraps_the_demo(tmp_path):
    r = run("demo", "--contexts", "synthetic", "--num-images", "2", "--num-train", "4",
            "--image-size", "32", "--epochs", "1", "--systems", "Baselines", "--no-progress",
            "--out", str(tmp_path / "demo"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = json.loads((tmp_path / "demo" / "results.json").read_text())["rows"]
    assert {row["method"] for row in rows} >= {"CAM (bg threshold)"}


def test_voc_xml_boxes_give_the_same_filled_labels(tiny, tmp_path, capsys):
    """VOC XML boxes (1-based, the crowd object marked difficult) with --class-names: the same
    filled labels, hence the same exact mIoU, as from the COCO JSON."""
    coco = json.loads((tiny / "instances.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    for img in coco["images"]:
        objs = ""
        for a in (a for a in coco["annotations"] if a["image_id"] == img["id"]):
            x, y, w, h = a["bbox"]
            objs += (f"<object><name>{names[a['category_id']]}</name><difficult>{a['iscrowd']}"
                     f"</difficult><bndbox><xmin>{x + 1}</xmin><ymin>{y + 1}</ymin>"
                     f"<xmax>{x + w}</xmax><ymax>{y + h}</ymax></bndbox></object>")
        xml = (tmp_path / "xml" / img["file_name"]).with_suffix(".xml")
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.write_text(f"<annotation><filename>{img['file_name']}</filename><size><width>64"
                       f"</width><height>48</height><depth>3</depth></size>{objs}</annotation>")
    class_names = tmp_path / "names.json"
    class_names.write_text(json.dumps(names))
    out = tmp_path / "out"
    assert cli.main(["pseudo-label", "--images", str(tiny / "images"), "--voc-xml",
                     str(tmp_path / "xml"), "--class-names", str(class_names),
                     "--supervision", "box", "--method", "filled", "--out", str(out),
                     "--no-progress"]) == 0
    assert cli.main(["evaluate", "--pred", str(out), "--masks", str(tiny / "masks")]) == 0
    assert _miou(capsys.readouterr().out) == pytest.approx(round(_expected_filled_miou(tiny), 4))
    # VOC XML has no masks to evaluate against
    assert cli.main(["evaluate", "--pred", str(out), "--voc-xml", str(tmp_path / "xml"),
                     "--images", str(tiny / "images")]) == 2
    assert "no ground-truth masks" in _error_line(capsys.readouterr().err)


def _scribbles_and_points(tiny: Path, root: Path) -> Path:
    """One horizontal scribble line and one point per class of every mask (ids as in it)."""
    points = {}
    for m in sorted((tiny / "masks").rglob("*.png")):
        stem = m.relative_to(tiny / "masks").with_suffix("").as_posix()
        mask = np.asarray(Image.open(m))
        scribble = np.full(mask.shape, 255, np.uint8)
        points[stem] = []
        for c in (c for c in np.unique(mask) if c != 255):
            ys, xs = np.nonzero(mask == c)
            row = int(np.median(ys))
            scribble[row, xs[ys == row]] = c
            points[stem].append([row, int(np.median(xs[ys == row])), int(c)])
        path = (root / "scribbles" / stem).with_suffix(".png")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(scribble).save(path)
    (root / "points.json").write_text(json.dumps(points))
    return root


def test_scribble_and_point_supervision(tiny, tmp_path, capsys, one_thread):
    root = _scribbles_and_points(tiny, tmp_path)
    cfg = tmp_path / "a2gnn.json"
    cfg.write_text(json.dumps({"stage1_epochs": 3, "stage2_epochs": 3, "hidden_channels": 8,
                               "cam_source": "none"}))
    common = ["--images", str(tiny / "images"), "--masks", str(tiny / "masks"),
              "--method", "a2gnn", "--config", str(cfg), "--no-progress"]
    r = run("pseudo-label", *common, "--scribbles", str(root / "scribbles"),
            "--supervision", "scribble", "--out", str(tmp_path / "scribble"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert cli.main(["pseudo-label", *common, "--points", str(root / "points.json"),
                     "--supervision", "point", "--out", str(tmp_path / "point")]) == 0
    for sup in ("scribble", "point"):
        lab = np.asarray(Image.open(tmp_path / sup / "a/img1.png"))
        assert lab.shape == (48, 64) and set(np.unique(lab)) <= {0, 17, 255}
    # scribble supervision without scribbles is refused before any work
    assert cli.main(["pseudo-label", *common, "--supervision", "scribble",
                     "--out", str(tmp_path / "none")]) == 2
    assert "--scribbles DIR" in _error_line(capsys.readouterr().err)
