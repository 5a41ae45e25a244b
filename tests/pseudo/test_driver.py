import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pyg_wsss.pseudo import atomic_write, generate, save_label_png


def _dataset(n=5, h=6, w=7):
    return [
        {"image": np.full((h, w, 3), i, np.uint8), "name": f"img_{i}", "value": i} for i in range(n)
    ]


def _method(samples):
    return [np.full(s["image"].shape[:2], s["value"], np.uint8) for s in samples]


def _read(path):
    img = Image.open(path)
    assert img.mode == "P"
    return np.array(img)


def test_writes_palette_pngs_and_skips_on_rerun(tmp_path):
    ds = _dataset()
    summary = generate(ds, _method, tmp_path, batch_size=2, progress=False)
    assert (summary.done, summary.skipped, summary.failed) == (5, 0, 0)
    for i in range(5):
        arr = _read(tmp_path / f"img_{i}.png")
        assert arr.shape == (6, 7) and np.all(arr == i)
    pal = Image.open(tmp_path / "img_1.png").getpalette()[:9]
    assert pal == [0, 0, 0, 128, 0, 0, 0, 128, 0]  # VOC colours
    again = generate(ds, _method, tmp_path, progress=False)
    assert (again.done, again.skipped, again.failed) == (0, 5, 0)
    redo = generate(ds, _method, tmp_path, overwrite=True, progress=False)
    assert redo.done == 5


def test_probabilities_names_and_device(tmp_path):
    ds = [{"image": np.zeros((4, 4, 3), np.uint8)} for _ in range(3)]  # no names
    seen = {}

    def method(samples, device=None):
        seen["device"] = device
        labels = torch.ones(len(samples), 4, 4, dtype=torch.uint8) * 255
        probs = [torch.full((3, 4, 4), 1 / 3) for _ in samples]
        return labels, probs

    s = generate(ds, method, tmp_path / "a", save_probs=True, progress=True, device="cpu")
    assert s.done == 3 and seen["device"] == torch.device("cpu")
    for i in range(3):
        assert np.all(_read(tmp_path / "a" / f"{i:06d}.png") == 255)
        np.testing.assert_allclose(np.load(tmp_path / "a" / f"{i:06d}.npy"), 1 / 3)
    s = generate(ds, method, tmp_path / "b", save_probs=True, probs_format="npz",
                 names=["x/1", "y 2", "z"], progress=False)
    assert s.done == 3
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "x_1.npz", "x_1.png", "y_2.npz", "y_2.png", "z.npz", "z.png"]
    assert np.load(tmp_path / "b" / "z.npz")["probs"].shape == (3, 4, 4)


def test_failures_are_logged_and_the_run_goes_on(tmp_path):
    ds = _dataset(6)
    calls = []

    def flaky(samples):
        calls.append(len(samples))
        if any(s["value"] == 3 for s in samples):
            raise RuntimeError("boom on\tthree")
        return _method(samples)

    s = generate(ds, flaky, tmp_path, batch_size=4, progress=False)
    assert (s.done, s.failed) == (5, 1)
    assert calls[0] == 4 and calls[1:5] == [1, 1, 1, 1]  # failing batch retried one by one
    assert not (tmp_path / "img_3.png").exists()
    rows = (tmp_path / "failures.tsv").read_text().strip().split("\n")
    assert rows == ["img_3\t3\tRuntimeError: boom on three"]
    assert s.failures == [("img_3", "RuntimeError: boom on three")]
    # a rerun retries only the failed image
    s2 = generate(ds, _method, tmp_path, progress=False)
    assert (s2.done, s2.skipped, s2.failed) == (1, 5, 0)


def test_bad_method_output_and_missing_probs(tmp_path):
    ds = _dataset(2)
    s = generate(ds, lambda samples: [np.zeros((2, 2), np.float32) for _ in samples],
                 tmp_path / "a", progress=False)
    assert s.failed == 2 and "integer" in s.failures[0][1]
    s = generate(ds, lambda samples: [], tmp_path / "b", progress=False)
    assert s.failed == 2 and "0 label maps" in s.failures[0][1]
    s = generate(ds, _method, tmp_path / "c", save_probs=True, progress=False)
    assert s.failed == 2 and "no probabilities" in s.failures[0][1]
    assert not list((tmp_path / "c").glob("*.png"))
    dup = [{"image": np.zeros((2, 2, 3), np.uint8), "name": "same", "value": 0}] * 2
    s = generate(dup, _method, tmp_path / "d", progress=False)
    assert (s.done, s.failed) == (1, 1) and "duplicate" in s.failures[0][1]

    class Broken:
        def __len__(self):
            return 2

        def __getitem__(self, i):
            if i == 0:
                raise OSError("unreadable file")
            return {"image": np.zeros((2, 2, 3), np.uint8), "name": "ok", "value": 1}

    s = generate(Broken(), _method, tmp_path / "e", progress=False)
    assert (s.done, s.failed) == (1, 1) and "unreadable" in s.failures[0][1]


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="method"):
        generate(_dataset(), None, tmp_path)
    with pytest.raises(ValueError, match="batch_size"):
        generate(_dataset(), _method, tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="probs_format"):
        generate(_dataset(), _method, tmp_path, probs_format="pt")
    with pytest.raises(ValueError, match="names"):
        generate(_dataset(), _method, tmp_path, names=["a"])
    with pytest.raises(TypeError, match="len"):
        generate(iter(_dataset()), _method, tmp_path)
    with pytest.raises(ValueError, match="0..255"):
        save_label_png(np.full((2, 2), 300), tmp_path / "x.png")


def test_atomic_write_leaves_no_temp_on_error(tmp_path, monkeypatch):
    atomic_write(tmp_path / "a.bin", b"123")
    assert (tmp_path / "a.bin").read_bytes() == b"123"

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "a.bin", b"456")
    assert (tmp_path / "a.bin").read_bytes() == b"123"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from pyg_wsss.pseudo import generate

    out, delay = sys.argv[1], float(sys.argv[2])
    ds = [{"image": np.zeros((64, 64, 3), np.uint8), "name": f"im{i:02d}", "v": i}
          for i in range(12)]

    def slow(samples):
        time.sleep(delay)
        return ([np.full((64, 64), s["v"], np.uint8) for s in samples],
                [np.random.rand(3, 64, 64).astype(np.float32) for s in samples])

    s = generate(ds, slow, out, batch_size=1, save_probs=True, progress=False)
    print(s.done, s.skipped, s.failed)
    """
)


def test_killed_run_resumes_without_partial_files(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_SCRIPT)
    out = tmp_path / "labels"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen([sys.executable, str(script), str(out), "0.4"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        if out.exists() and len(list(out.glob("*.png"))) >= 3:
            break
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    pngs = sorted(out.glob("*.png"))
    assert 3 <= len(pngs) < 12, "the run was not interrupted part-way"
    for p in pngs:  # every finished label file is complete and valid
        arr = _read(p)
        assert arr.shape == (64, 64) and np.all(arr == int(p.stem[2:]))
        assert np.load(p.with_suffix(".npy")).shape == (3, 64, 64)
    res = subprocess.run([sys.executable, str(script), str(out), "0"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    done, skipped, failed = map(int, res.stdout.split())
    assert failed == 0 and skipped >= len(pngs) and done + skipped == 12
    names = sorted(p.name for p in out.iterdir())
    expected = [f"im{i:02d}.{ext}" for i in range(12) for ext in ("png", "npy")]
    assert names == sorted(expected)
    for i in range(12):
        assert np.all(_read(out / f"im{i:02d}.png") == i)
    assert not [n for n in os.listdir(out) if "tmp" in n]
    assert Path(out).is_dir()
