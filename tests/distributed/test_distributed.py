"""Scale-out on torch.distributed with two CPU processes (gloo): sharded pseudo-labels are
byte-for-byte one process's, DDP training follows one process's loss curve, a dead rank ends
the job with a clear error (no hang) and a rerun loses nothing. Every subprocess has a
timeout; each worker uses one thread."""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from pyg_wsss import cli
from pyg_wsss import distributed as D

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("ddp_worker.py")
CLI_WORKER = Path(__file__).with_name("cli_worker.py")
SLOW_WORKER = Path(__file__).with_name("slow_rank_worker.py")
TIMEOUT = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", **extra}


def torchrun(*args: str, cwd: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --nproc_per_node N ...`` on 127.0.0.1.

    Every caller expects success. A job whose rank was aborted by a signal (SIGABRT from
    gloo's transport, seen about once in ten CI runs on the shared 2-core machine, never
    reproduced alone) is run once more, with a warning in the test report; a second failure,
    or any other failure (a Python error in a rank), fails the test with the ranks' own
    stderr first."""
    for attempt in range(2):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), *args]
        r = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True,
                           timeout=TIMEOUT)
        aborted = "(SIGABRT)" in r.stderr  # a Python error in a rank exits 1, not -6
        if r.returncode == 0 or not aborted or attempt == 1:
            break
        warnings.warn(f"torchrun job aborted by a signal, run again: {r.stderr[:1500]}",
                      stacklevel=2)
    if r.returncode != 0:  # the ranks' own messages come first in torchrun's stderr
        r.stderr = r.stderr[:3000] + "\n[...]\n" + r.stderr[-1500:]
    return r


def ranks(args: list[str], cwd: Path, world: int = 2) -> list[subprocess.Popen]:
    """``world`` plain processes with torchrun's environment (no elastic agent, so a dead
    rank is noticed by the others, not by the agent)."""
    port = str(_free_port())
    return [subprocess.Popen([sys.executable, *args], cwd=cwd, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env=_env(RANK=str(r), WORLD_SIZE=str(world), LOCAL_RANK=str(r),
                                      MASTER_ADDR="127.0.0.1", MASTER_PORT=port))
            for r in range(world)]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _pngs(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*.png"))}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    pytest.importorskip("pycocotools")
    root = tmp_path_factory.mktemp("tiny")
    _load(ROOT / "examples" / "make_tiny_coco.py", "make_tiny_coco").draw(root)
    return root


# ----------------------------------------------------------------------------- pure parts


def test_shard_by_size_is_balanced_deterministic_and_complete():
    sizes = [(100, 100), (10, 10), (50, 50), None, (100, 100), (30, 40), 900, (70, 10)]
    shards = D.shard_by_size(sizes, 3)
    assert shards == D.shard_by_size(list(sizes), 3)  # pure: every rank computes the same
    assert sorted(i for s in shards for i in s) == list(range(len(sizes)))
    assert all(s == sorted(s) for s in shards)
    # largest first to the least loaded rank; None counts as the median (1200)
    assert shards == [[0], [4], [1, 2, 3, 5, 6, 7]]
    rng = np.random.default_rng(0)
    sizes = [tuple(int(v) for v in rng.integers(50, 500, 2)) for _ in range(200)]
    loads = [sum(sizes[i][0] * sizes[i][1] for i in s) for s in D.shard_by_size(sizes, 4)]
    assert max(loads) - min(loads) <= max(h * w for h, w in sizes)  # the LPT bound
    assert D.shard_by_size(sizes, 1) == [list(range(len(sizes)))]
    assert D.shard_by_size([(1, 1)], 3) == [[0], [], []]
    with pytest.raises(ValueError, match="world"):
        D.shard_by_size(sizes, 0)
    with pytest.raises(TypeError, match="size"):
        D.shard_by_size(["big"], 2)


def test_single_rank_without_torchrun_is_a_no_op(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    assert D.init_distributed() == (0, 1)
    assert (D.rank(), D.world_size(), D.is_main(), D.is_initialized()) == (0, 1, True, False)
    D.barrier(1.0)
    assert D.all_gather_object({"a": 1}) == [{"a": 1}]
    assert D.broadcast_object(5) == 5
    assert D.all_reduce_sum(3) == 3
    assert D.distributed_batch([4, 5, 6]) == [4, 5, 6]
    assert D.distributed_batch([1, 2, 3, 4], rank_=1, world=2) == [2, 4]
    with pytest.raises(ValueError, match="multiple of 2"):
        D.distributed_batch([1, 2, 3], rank_=0, world=2)
    D.cleanup()
    seeds = {D.seed_for_rank(7, r) for r in range(4)}
    assert len(seeds) == 4 and D.seed_for_rank(7, 2) == D.seed_for_rank(7, 2)


def test_clear_errors_without_a_rendezvous(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    with pytest.raises(D.DistributedError, match="MASTER_ADDR.*torchrun"):
        D.init_distributed()
    with pytest.raises(ValueError, match="backend"):
        D._resolve_backend("carrier-pigeon")
    with pytest.raises(ValueError, match="timeout"):
        D.init_distributed(timeout=-1)


def test_generate_takes_an_explicit_index_list(tmp_path):
    from pyg_wsss.pseudo import generate

    ds = [{"image": np.zeros((4, 4, 3), np.uint8), "name": f"im{i}"} for i in range(5)]

    def method(samples):
        return [np.full((4, 4), 1, np.uint8) for _ in samples]

    s = generate(ds, method, tmp_path, indices=[3, 0], progress=False)
    assert s.done == 2 and sorted(p.name for p in tmp_path.glob("*.png")) == ["im0.png",
                                                                          "im3.png"]
    with pytest.raises(ValueError, match="at most one"):
        generate(ds, method, tmp_path, indices=[1], shard=(0, 2), progress=False)
    with pytest.raises(ValueError, match="outside"):
        generate(ds, method, tmp_path, indices=[7], progress=False)


# ----------------------------------------------------------------------------- pseudo-labels

A2GNN_TOML = ("stage1_epochs = 3\nstage2_epochs = 3\nhidden_channels = 8\n"
              "affinity_epochs = 1\nmin_side = 64\n")


def _pseudo_args(tiny: Path, method: str, out: Path, cfg: Path | None) -> list[str]:
    args = ["pseudo-label", "--images", str(tiny / "images"), "--coco",
            str(tiny / "instances.json"), "--supervision", "box", "--method", method,
            "--out", str(out), "--no-progress", "--dist-timeout", "60"]
    return args + (["--config", str(cfg)] if cfg is not None else [])


def _check_same(tmp_path: Path, one: Path, two: Path) -> None:
    a, b = _pngs(one), _pngs(two)
    assert len(a) == 4 and a == b  # byte for byte
    assert (one / "classes.json").read_bytes() == (two / "classes.json").read_bytes()
    record = json.loads((two / "run.json").read_text())
    assert record["world_size"] == 2 and record["done"] == 4
    done = [p["done"] for p in record["ranks"]]
    assert sum(done) == 4 and min(done) >= 1  # every image once, both ranks worked
    assert sorted(record["image_seconds"]) == sorted(n[:-4] for n in a)
    assert not list(two.glob("run.rank*.json"))
    assert not [p for p in two.rglob(".*") if p.is_file()]  # no claim or temporary file left


@pytest.fixture(scope="module")
def references(tiny, tmp_path_factory) -> tuple[Path, Path]:
    """One process's labels for filled, grabcut and a2gnn (box), and the a2gnn config."""
    import torch

    root = tmp_path_factory.mktemp("one")
    cfg = root / "a2gnn.toml"
    cfg.write_text(A2GNN_TOML)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for method in ("filled", "grabcut", "a2gnn"):
            c = cfg if method == "a2gnn" else None
            assert cli.main(_pseudo_args(tiny, method, root / method, c)) == 0
    finally:
        torch.set_num_threads(threads)
    return root, cfg


def test_two_ranks_write_what_one_process_writes(tiny, references, tmp_path):
    """One torchrun job of two processes runs pseudo-label for filled, grabcut and a2gnn
    (box) one after the other (one start-up for the three): byte for byte one process's."""
    ref, cfg = references
    r = torchrun(str(CLI_WORKER), *_pseudo_args(tiny, "filled", tmp_path / "filled", None),
                 "--next", *_pseudo_args(tiny, "grabcut", tmp_path / "grabcut", None),
                 "--next", *_pseudo_args(tiny, "a2gnn", tmp_path / "a2gnn", cfg),
                 cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for method in ("filled", "grabcut", "a2gnn"):
        _check_same(tmp_path, ref / method, tmp_path / method)


@pytest.mark.slow
def test_tag_methods_train_their_classifier_data_parallel(tiny, tmp_path, one_thread):
    """pseudo-label --supervision tag with group and knowledge under torchrun: the
    classifiers train with DDP (auto-detected; the backbone may hold unused layers), every
    image is labelled once and the labels are close to one process's (graph dropout masks
    and BatchNorm statistics are per-rank draws, so not byte for byte)."""
    from PIL import Image

    cfgs = {"group": "epochs = 2\nhidden_channels = 8\nimage_size = 64\n",
            "knowledge": "epochs = 2\nhidden_channels = 16\nimage_size = 64\n"}
    args = {}
    for method, text in cfgs.items():
        (tmp_path / f"{method}.toml").write_text(text)
        args[method] = lambda out, m=method: [
            "pseudo-label", "--images", str(tiny / "images"), "--coco",
            str(tiny / "instances.json"), "--supervision", "tag", "--method", m, "--out",
            str(out), "--no-progress", "--config", str(tmp_path / f"{m}.toml"),
            "--dist-timeout", "120"]
        assert cli.main(args[method](tmp_path / f"one_{method}")) == 0
    r = torchrun(str(CLI_WORKER), *args["group"](tmp_path / "two_group"), "--next",
                 *args["knowledge"](tmp_path / "two_knowledge"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for method in cfgs:
        one, two = _pngs(tmp_path / f"one_{method}"), _pngs(tmp_path / f"two_{method}")
        assert sorted(one) == sorted(two) and len(one) == 4
        assert json.loads((tmp_path / f"two_{method}" / "run.json").read_text())[
            "world_size"] == 2
        agree = [np.mean(np.asarray(Image.open(tmp_path / f"one_{method}" / k))
                         == np.asarray(Image.open(tmp_path / f"two_{method}" / k)))
                 for k in one]
        assert np.mean(agree) > 0.8, (method, agree)


@pytest.mark.slow
def test_torchrun_module_form(tiny, references, tmp_path):
    """``python -m torch.distributed.run --nproc_per_node 2 -m pyg_wsss pseudo-label``."""
    ref, cfg = references
    r = torchrun("-m", "pyg_wsss", *_pseudo_args(tiny, "a2gnn", tmp_path / "a2gnn", cfg),
                 cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    _check_same(tmp_path, ref / "a2gnn", tmp_path / "a2gnn")


def test_a_killed_rank_ends_the_job_and_a_rerun_loses_nothing(tiny, tmp_path):
    """Rank 1 is killed (SIGKILL) after its first image (it stalls there, see
    ``slow_rank_worker.py``, so the kill cannot come after its last image): rank 0 finishes its
    own images, then exits 2 with an error naming the failed rank at the end barrier (no
    hang); the same command (here on one process) writes only the missing images."""
    ref = tmp_path / "ref"
    args = _pseudo_args(tiny, "grabcut", tmp_path / "out", None)
    procs = ranks([str(SLOW_WORKER), *args, "--dist-timeout", "20"], cwd=tmp_path)
    shards = D.shard_by_size([(48, 64)] * 4, 2)
    names = ["a/img0", "a/img1", "b/img2", "img3"]
    mine = [tmp_path / "out" / f"{names[i]}.png" for i in shards[1]]
    t0 = time.time()
    try:
        while not any(p.exists() for p in mine) and procs[1].poll() is None:
            assert time.time() - t0 < TIMEOUT, "rank 1 wrote nothing"
            time.sleep(0.01)
        procs[1].send_signal(signal.SIGKILL)
        killed_at = time.time()
        _, err0 = procs[0].communicate(timeout=TIMEOUT)
        waited = time.time() - killed_at
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
    assert procs[1].returncode == -signal.SIGKILL
    assert procs[0].returncode == 2, err0[-2000:]
    assert "pyg-wsss: error:" in err0 and "rank" in err0 and waited < 60
    written = _pngs(tmp_path / "out")
    assert 1 <= len(written) < 4
    assert cli.main(args) == 0  # the rerun: one process takes over the dead rank's claims
    assert cli.main(_pseudo_args(tiny, "grabcut", ref, None)) == 0
    final = _pngs(tmp_path / "out")
    assert final == _pngs(ref)
    assert all(final[k] == v for k, v in written.items())  # nothing rewritten differently


# ----------------------------------------------------------------------------- DDP training


def _check_trainers(one: dict, two: dict) -> None:
    """The package's trainers, one process (today's code path) vs 2 gloo ranks (DDP)."""
    for name in ("group", "group_frozen", "knowledge", "affinity_net"):
        a, b = one[name], two[name]
        assert len(a["history"]) == len(b["history"]) > 0, name
        np.testing.assert_allclose(b["history"], a["history"], rtol=1e-4, err_msg=name)
        np.testing.assert_allclose(b["weights"], a["weights"], rtol=1e-4, atol=1e-6,
                                   err_msg=name)
        if "acc" in a:  # the online CAM accumulator, merged over the ranks
            assert sorted(b["acc"]) == sorted(a["acc"])
            np.testing.assert_allclose([b["acc"][k] for k in sorted(a["acc"])],
                                       [a["acc"][k] for k in sorted(a["acc"])], rtol=1e-4)
    assert two["ranks_agree"]  # also with BatchNorm trained (rank 0's statistics)
    assert one["auto"] == {"outside": False, "inside": False, "local_steps": 5}
    assert two["auto"] == {"outside": True, "inside": False, "local_steps": 5}  # rank 0
    assert one["sync_bn_error"] is None  # one process: sync_batchnorm is a no-op
    assert "GPU" in two["sync_bn_error"]  # torch has no CPU SyncBatchNorm


def test_trainers_data_parallel_path_on_one_process(one_thread, monkeypatch):
    """distributed=True on one process (no process group): the data-parallel code path of
    the three trainers gives today's one-process results (rounding aside), also with
    BatchNorm trained (one rank sees every image)."""
    worker = _load(WORKER, "ddp_worker")
    today, forced = worker.trainers(None), worker.trainers(True)
    for name in ("group", "group_frozen", "knowledge", "knowledge_bn", "affinity_net"):
        np.testing.assert_allclose(forced[name]["history"], today[name]["history"],
                                   rtol=1e-5, err_msg=name)
        np.testing.assert_allclose(forced[name]["weights"], today[name]["weights"],
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    assert D.data_parallel(None) is False and D.data_parallel(True) is True
    with D.local_work():
        assert D.data_parallel(None) is False and D.data_parallel(True) is True
    with pytest.raises(TypeError, match="distributed"):
        D.data_parallel("yes")
    monkeypatch.setenv("PYG_WSSS_DATA_PARALLEL", "0")
    assert D.data_parallel(None) is False and D.data_parallel(True) is True
    torch = pytest.importorskip("torch")
    bn = torch.nn.BatchNorm1d(2)
    assert D.sync_buffers(bn) is bn  # one rank: a no-op


def test_ddp_follows_one_process_and_resumes_on_another_world(tmp_path, one_thread):
    """Same global batch (4): 2 gloo ranks follow the 1-process losses (rtol 1e-4, BatchNorm
    frozen), also the affinity head through the generic ddp_fit and the package's own
    trainers (train_group_wsss with a trained and a frozen backbone, graph dropout off;
    train_knowledge_classifier with BatchNorm frozen; train_affinity_net), all in the same
    torchrun job; rank 1 dying at iteration 3 of 5 ends the job, and a 1-process rerun
    resumes from rank 0's checkpoint to the same final weights and losses."""
    worker = _load(WORKER, "ddp_worker")
    assert worker.main(["--out", str(tmp_path / "one.json"), "--iterations", "5",
                        "--trainers", "1"]) == 0
    r = torchrun(str(WORKER), "--out", str(tmp_path / "two.json"), "--iterations", "5",
                 "--trainers", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    one = json.loads((tmp_path / "one.json").read_text())
    two = json.loads((tmp_path / "two.json").read_text())
    assert two["world"] == 2 and len(one["history"]) == 5
    np.testing.assert_allclose(two["history"], one["history"], rtol=1e-4)
    np.testing.assert_allclose(two["weights"], one["weights"], rtol=1e-4, atol=1e-6)
    assert two["confusion"] == one["confusion"]  # evaluation gathered over the ranks
    # the generic helper (ddp_fit) on the A2GNN affinity head, Adam, global batch 2
    np.testing.assert_allclose(two["affinity_history"], one["affinity_history"], rtol=1e-4)
    np.testing.assert_allclose(two["affinity_weights"], one["affinity_weights"], rtol=1e-4,
                               atol=1e-6)
    # ... and on the knowledge-graph classifier through LossModule (its own loss method)
    np.testing.assert_allclose(two["classifier_history"], one["classifier_history"],
                               rtol=1e-4)
    np.testing.assert_allclose(two["classifier_weights"], one["classifier_weights"],
                               rtol=1e-4, atol=1e-6)
    _check_trainers(one["trainers"], two["trainers"])

    ckpt = tmp_path / "ckpt.pt"
    procs = ranks([str(WORKER), "--out", str(tmp_path / "dead.json"), "--iterations", "5",
                   "--checkpoint", str(ckpt), "--die-at", "3"], cwd=tmp_path)
    outs = [p.communicate(timeout=TIMEOUT) for p in procs]
    assert procs[1].returncode == 17 and procs[0].returncode != 0
    assert "DistributedError" in outs[0][1] or "rank" in outs[0][1]
    assert not (tmp_path / "dead.json").exists()
    assert worker.main(["--out", str(tmp_path / "resumed.json"), "--iterations", "5",
                        "--checkpoint", str(ckpt)]) == 0  # resumed on one process
    resumed = json.loads((tmp_path / "resumed.json").read_text())
    np.testing.assert_allclose(resumed["history"], one["history"][3:], rtol=1e-4)
    np.testing.assert_allclose(resumed["weights"], one["weights"], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("two_ranks", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_train_and_predict_commands(tiny, tmp_path, one_thread, capsys, two_ranks):
    """pyg-wsss train / predict on one process; (slow) the same under torchrun with two
    processes: the same losses and the same predicted PNGs."""
    labels = tmp_path / "labels"
    assert cli.main(["pseudo-label", "--images", str(tiny / "images"), "--coco",
                     str(tiny / "instances.json"), "--supervision", "box", "--method",
                     "filled", "--out", str(labels), "--no-progress"]) == 0
    common = ["--images", str(tiny / "images"), "--labels", str(labels), "--iterations", "3",
              "--batch-size", "2", "--crop-size", "32", "--backbone", "small_cnn",
              "--rates", "1,2", "--aspp-channels", "8", "--freeze-bn", "--lr", "0.01",
              "--no-progress", "--checkpoint-every", "2"]
    assert cli.main(["train", *common, "--out", str(tmp_path / "s1")]) == 0
    assert cli.main(["predict", "--images", str(tiny / "images"), "--checkpoint",
                     str(tmp_path / "s1" / "checkpoint.pt"), "--out", str(tmp_path / "p1"),
                     "--no-progress"]) == 0
    p1 = _pngs(tmp_path / "p1")
    assert len(p1) == 4
    if two_ranks:
        r = torchrun(str(CLI_WORKER), "train", *common, "--out", str(tmp_path / "s2"),
                     "--next", "predict", "--images", str(tiny / "images"), "--checkpoint",
                     str(tmp_path / "s2" / "checkpoint.pt"), "--out", str(tmp_path / "p2"),
                     "--no-progress", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        l1 = json.loads((tmp_path / "s1" / "train.json").read_text())["losses"]
        l2 = json.loads((tmp_path / "s2" / "train.json").read_text())
        assert l2["world_size"] == 2
        np.testing.assert_allclose(list(l2["losses"].values()), list(l1.values()), rtol=1e-4)
        assert p1 == _pngs(tmp_path / "p2")
    values = set()
    for name in p1:
        values |= set(np.unique(np.asarray(__import__("PIL.Image").Image.open(
            tmp_path / "p1" / name))).tolist())
    assert values <= {0, 3, 17, 40}  # the category ids of the training labels
    classes = json.loads((tmp_path / "p1" / "classes.json").read_text())
    assert classes["3"] == "cat" and classes["255"] == "unlabelled"
    # a bad argument: one line, exit 2
    assert cli.main(["train", *common[:-2], "--out", str(tmp_path / "s3"),
                     "--checkpoint-every", "0"]) == 2
    assert "checkpoint-every" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "predict"])
def test_help_has_an_example(command, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "example" in text and f"pyg-wsss {command}" in text and "torchrun" in text
