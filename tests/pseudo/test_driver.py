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
    assert s.done == 3  # "/" makes a sub-folder (issue 14); other characters become "_"
    assert sorted(p.relative_to(tmp_path / "b").as_posix()
                  for p in (tmp_path / "b").rglob("*") if p.is_file()) == [
        "x/1.npz", "x/1.png", "y_2.npz", "y_2.png", "z.npz", "z.png"]
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


# --------------------------------------------------------------------------------------------
# issue 17 item 5 and issue 14: failure rows, start-up checks, no-load restarts, sub-folders


def test_one_failure_row_per_image_across_restarts_and_cleared_on_success(tmp_path):
    ds = _dataset(5)
    state = {"fix": False}

    def flaky(samples):
        if any(s["value"] in (1, 3) for s in samples) and not (
                state["fix"] and samples[0]["value"] == 3):
            raise RuntimeError(f"bad {samples[0]['value']}")
        return _method(samples)

    log = tmp_path / "failures.tsv"
    for _ in range(3):  # a permanently failing image is not appended again on restart
        s = generate(ds, flaky, tmp_path, progress=False)
        assert s.failed == 2
        assert log.read_text().splitlines() == ["img_1\t1\tRuntimeError: bad 1",
                                                "img_3\t3\tRuntimeError: bad 3"]
    state["fix"] = True  # img_3 recovers: its row goes, img_1's stays
    s = generate(ds, flaky, tmp_path, progress=False)
    assert (s.done, s.failed, s.skipped) == (1, 1, 3)
    assert log.read_text().splitlines() == ["img_1\t1\tRuntimeError: bad 1"]
    s = generate(ds, _method, tmp_path, progress=False)
    assert (s.done, s.failed, s.skipped) == (1, 0, 4)
    assert not log.exists()  # no failing image left: no log
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_failure_row_of_an_image_finished_elsewhere_is_cleared_without_loading(tmp_path):
    ds = _dataset(2)
    (tmp_path / "failures.tsv").write_text("img_0\t0\tOSError: was unreadable\nnot a row\n")
    save_label_png(np.zeros((6, 7), np.uint8), tmp_path / "img_0.png")
    s = generate(ds, _method, tmp_path, names=["img_0", "img_1"], progress=False)
    assert (s.done, s.skipped) == (1, 1)
    assert (tmp_path / "failures.tsv").read_text() == "not a row\n"  # foreign lines kept


def _unwritable_cases(tmp_path, monkeypatch, case):
    out = tmp_path / "out"
    out.mkdir()
    if case == "log-is-folder":
        (out / "failures.tsv").mkdir()
        return out, ValueError, "failures.tsv"
    if case == "log-read-only":
        (out / "failures.tsv").write_text("")
        (out / "failures.tsv").chmod(0o444)
        real = os.access
        # root may write a 0o444 file anyway: make the check see what a user would
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: (
            False if Path(p).name == "failures.tsv" and mode & os.W_OK else real(p, mode, **kw)))
        return out, PermissionError, "failures.tsv"
    if case == "out-is-file":
        (tmp_path / "file").write_text("x")
        return tmp_path / "file", ValueError, "file"
    if case == "out-read-only":
        import tempfile

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
        return out, PermissionError, "out"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["log-is-folder", "log-read-only", "out-is-file",
                                  "out-read-only"])
def test_unwritable_output_is_an_error_before_any_work(tmp_path, monkeypatch, case):
    out, err, where = _unwritable_cases(tmp_path, monkeypatch, case)
    calls = []

    class Loud(list):
        def __getitem__(self, i):
            calls.append(("load", i))
            return super().__getitem__(i)

    def method(samples):
        calls.append("method")
        return _method(samples)

    with pytest.raises(err, match=where):
        generate(Loud(_dataset(3)), method, out, progress=False)
    assert calls == []


class _Counting:
    """A dataset with ``names`` whose ``__getitem__`` raises once ``broken`` is set."""

    def __init__(self, n, names=None):
        self.items = _dataset(n)
        self.names = names or [s["name"] for s in self.items]
        self.loaded = []
        self.broken = False

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        self.loaded.append(i)
        if self.broken:
            raise AssertionError(f"sample {i} loaded")
        return self.items[i]


def test_restart_skips_finished_images_without_loading_them(tmp_path):
    ds = _Counting(4)
    s = generate(ds, _method, tmp_path, progress=False)
    assert s.done == 4 and sorted(ds.loaded) == [0, 1, 2, 3]
    ds.loaded.clear()
    ds.broken = True  # __getitem__ raises: a restart must not call it for finished images
    s = generate(ds, _method, tmp_path, progress=False)
    assert (s.done, s.skipped, s.failed) == (0, 4, 0) and ds.loaded == []
    # the same with explicit names on a plain list
    s = generate(ds, _method, tmp_path, names=ds.names, progress=False)
    assert s.skipped == 4 and ds.loaded == []
    # one image removed: only that one is loaded
    (tmp_path / "img_2.png").unlink()
    ds.broken = False
    s = generate(ds, _method, tmp_path, progress=False)
    assert (s.done, s.skipped) == (1, 3) and ds.loaded == [2]


def test_dataset_names_must_match_the_samples(tmp_path):
    ds = _Counting(2, names=["img_0", "other"])
    s = generate(ds, _method, tmp_path, progress=False)
    assert (s.done, s.failed) == (1, 1) and "dataset.names[1]" in s.failures[0][1]
    bad = _Counting(2, names=["a"])
    with pytest.raises(ValueError, match="dataset.names"):
        generate(bad, _method, tmp_path / "b", progress=False)


def test_sub_folder_names(tmp_path):
    ds = _dataset(3)
    names = ["train/2017/a b", "train/c", "val/deep/er/d"]
    s = generate(ds, _method, tmp_path, names=names, progress=False)
    assert s.done == 3
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
                   if p.is_file())
    assert files == ["train/2017/a_b.png", "train/c.png", "val/deep/er/d.png"]
    assert np.all(_read(tmp_path / "val/deep/er/d.png") == 2)
    s = generate(ds, _method, tmp_path, names=names, progress=False)
    assert s.skipped == 3
    # names from the samples themselves, too
    named = [dict(s, name=n) for s, n in zip(_dataset(3), names)]
    s = generate(named, _method, tmp_path / "b", progress=False)
    assert s.done == 3 and (tmp_path / "b/val/deep/er/d.png").is_file()


@pytest.mark.parametrize("bad, what", [
    ("../escape", "'..'"), ("a/../../b", "'..'"), ("/etc/passwd", "absolute"),
    ("a//b", "empty component"), ("a/b/", "empty component"), ("a/???/b", "empty component"),
])
def test_unsafe_names_are_refused_naming_the_sample(tmp_path, bad, what):
    out = tmp_path / "out"
    for source in ("names", "sample"):
        ds = _dataset(3)
        kwargs = {}
        if source == "names":
            kwargs["names"] = ["ok0", bad, "ok2"]
        else:
            ds[1]["name"] = bad
        s = generate(ds, _method, out / source, progress=False, **kwargs)
        assert (s.done, s.failed) == (2, 1)
        reason = s.failures[0][1]
        assert what in reason and "sample 1" in reason and bad in reason
        assert "sample 1" in (out / source / "failures.tsv").read_text()
    assert sorted(p.name for p in tmp_path.rglob("*.png")) == sorted(
        ["ok0.png", "ok2.png", "img_0.png", "img_2.png"])


def test_label_transform_palette_and_on_done(tmp_path):
    ids = np.array([0, 7, 42, 99], np.uint8)  # contiguous -> category ids
    pal = np.zeros((256, 3), np.uint8)
    pal[42] = (1, 2, 3)
    done = []
    s = generate(_dataset(4), _method, tmp_path, progress=False,
                 label_transform=lambda lab: ids[lab], palette=pal,
                 on_done=lambda name, sec: done.append((name, sec)))
    assert s.done == 4
    for i in range(4):
        assert np.all(_read(tmp_path / f"img_{i}.png") == ids[i])
    assert Image.open(tmp_path / "img_2.png").getpalette()[42 * 3:42 * 3 + 3] == [1, 2, 3]
    assert [n for n, _ in done] == [f"img_{i}" for i in range(4)]
    assert all(isinstance(sec, float) and sec >= 0 for _, sec in done)
    s = generate(_dataset(2), _method, tmp_path / "b", progress=False,
                 label_transform=lambda lab: lab[:1])
    assert s.failed == 2 and "shape" in s.failures[0][1]
    s = generate(_dataset(2), _method, tmp_path / "c", progress=False,
                 label_transform=lambda lab: lab.astype(np.int64) + 300)
    assert s.failed == 2 and "0..255" in s.failures[0][1]


def test_shards_split_the_sorted_names_round_robin(tmp_path):
    from pyg_wsss.pseudo import shard_indices

    names = [f"img_{i}" for i in (3, 0, 4, 1, 2)]
    assert shard_indices(names, 5, (0, 2)) == [1, 2, 4]  # sorted: img_0 img_1 img_2 ...
    assert shard_indices(names, 5, (1, 2)) == [0, 3]
    assert shard_indices(None, 5, (1, 2)) == [1, 3]
    ds = [dict(s, name=n) for s, n in zip(_dataset(5), names)]
    total = []
    for rank in range(3):
        s = generate(ds, _method, tmp_path, names=names, shard=(rank, 3), progress=False)
        assert s.total == len(shard_indices(names, 5, (rank, 3))) == s.done
        total.append(s.done)
    assert sorted(total) == [1, 2, 2] and len(list(tmp_path.glob("*.png"))) == 5


@pytest.mark.parametrize("kwargs, err, match", [
    ({"shard": (2, 2)}, ValueError, "shard"),
    ({"shard": (0,)}, TypeError, "shard"),
    ({"shard": (0.0, 1)}, TypeError, "shard"),
    ({"label_transform": 3}, TypeError, "label_transform"),
    ({"on_done": "x"}, TypeError, "on_done"),
    ({"palette": np.zeros((300, 3), np.uint8)}, ValueError, "palette"),
    ({"palette": np.zeros((4, 4), np.uint8)}, ValueError, "palette"),
    ({"claim_timeout": 0}, ValueError, "claim_timeout"),
    ({"failures_file": "a/b.tsv"}, ValueError, "failures_file"),
    ({"names": "abc"}, TypeError, "names"),
])
def test_bad_new_arguments(tmp_path, kwargs, err, match):
    with pytest.raises(err, match=match):
        generate(_dataset(3), _method, tmp_path, progress=False, **kwargs)
    assert not list(tmp_path.glob("*.png"))


def test_temp_files_and_claims_of_live_owners_are_kept(tmp_path):
    """A starting run removes only temporary files and claims of dead owners."""
    import json

    from pyg_wsss.pseudo import driver

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        tag = driver._HOST_TAG
        live_tmp = tmp_path / f".pyg_wsss-tmp-{tag}-{live.pid}-img_0.png.abc"
        dead_tmp = tmp_path / f".pyg_wsss-tmp-{tag}-{dead.pid}-img_1.png.abc"
        for p in (live_tmp, dead_tmp):
            p.write_bytes(b"partial")

        def claim(name, pid):
            info = {"pid": pid, "host": driver._HOST, "host_tag": tag, "start": time.time()}
            (tmp_path / f".{name}.claim").write_text(json.dumps(info))

        claim("img_0", live.pid)  # a live run computes img_0 right now
        claim("img_1", dead.pid)  # a killed run left img_1 claimed
        s = generate(_dataset(3), _method, tmp_path, progress=False)
        assert (s.done, s.busy) == (2, 1)
        assert live_tmp.exists() and not dead_tmp.exists()
        assert (tmp_path / ".img_0.claim").exists() and not (tmp_path / ".img_1.claim").exists()
        assert sorted(p.name for p in tmp_path.glob("*.png")) == ["img_1.png", "img_2.png"]
    finally:
        live.kill()
        live.wait()
    s = generate(_dataset(3), _method, tmp_path, progress=False)  # its owner is gone now
    assert (s.done, s.skipped, s.busy) == (1, 2, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img_0.png", "img_1.png", "img_2.png"]


def test_failure_log_is_not_rewritten_once_per_image(tmp_path, monkeypatch):
    from pyg_wsss.pseudo import driver

    writes = []
    real = driver.atomic_write
    monkeypatch.setattr(driver, "atomic_write", lambda path, data: (
        writes.append(Path(path).name), real(path, data)))

    def fail(samples):
        raise ValueError("always")

    s = generate(_dataset(60), fail, tmp_path, progress=False)
    assert s.failed == 60
    assert len((tmp_path / "failures.tsv").read_text().splitlines()) == 60
    assert 1 <= writes.count("failures.tsv") <= 3  # the first change, then once a second


def test_output_name():
    from pyg_wsss.pseudo import output_name

    assert output_name("train 2017/a b.c") == "train_2017/a_b.c"
    assert output_name(None, 7) == "000007" and output_name("???", 3) == "000003"
    with pytest.raises(ValueError, match="'..'"):
        output_name("a/../b")


def test_config_passed_whole_and_the_old_forms(tmp_path):
    """Issue 18: the options are one GenerateConfig; keyword options (and the former
    positional ones) still work and give the same files."""
    from pyg_wsss.pseudo.driver import GenerateConfig

    ids = np.array([0, 7, 42, 99, 100], np.uint8)
    cfg = GenerateConfig(batch_size=2, progress=False, label_transform=lambda lab: ids[lab],
                         save_probs=False, names=[f"n{i}" for i in range(5)])
    a = generate(_dataset(), _method, tmp_path / "a", cfg)
    b = generate(_dataset(), _method, tmp_path / "b", config=cfg)
    c = generate(_dataset(), _method, tmp_path / "c", batch_size=2, progress=False,
                 label_transform=lambda lab: ids[lab], names=cfg.names)
    d = generate(_dataset(), _method, tmp_path / "d", 2, "cpu", False, "npy", False, cfg.names,
                 label_transform=lambda lab: ids[lab])
    assert [(s.done, s.total) for s in (a, b, c, d)] == [(5, 5)] * 4
    for i in range(5):
        arrs = [_read(tmp_path / k / f"n{i}.png") for k in "abcd"]
        assert all(np.array_equal(arrs[0], x) for x in arrs) and np.all(arrs[0] == ids[i])
    # a keyword option overrides the config's field; the config itself is not changed
    e = generate(_dataset(2), _method, tmp_path / "e", cfg, names=None, shard=(0, 2))
    assert e.total == 1 and cfg.shard is None and cfg.names is not None
    with pytest.raises(TypeError, match="batchsize"):
        generate(_dataset(), _method, tmp_path, batchsize=2)
    with pytest.raises(TypeError, match="multiple values"):
        generate(_dataset(), _method, tmp_path, 2, batch_size=2)
    with pytest.raises(TypeError, match="GenerateConfig"):
        generate(_dataset(), _method, tmp_path, config={"batch_size": 2})
    with pytest.raises(TypeError, match="positional"):
        generate(_dataset(), _method, tmp_path, cfg, 2)
    with pytest.raises(ValueError, match="batch_size"):
        generate(_dataset(), _method, tmp_path, GenerateConfig(batch_size=0))
