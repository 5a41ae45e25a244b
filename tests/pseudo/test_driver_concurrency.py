"""Two runs of :func:`pyg_wsss.pseudo.generate` on one folder split the work (issue 17 item 5):
every image is computed exactly once in total, neither run deletes the other's files, no
spurious failure, no temporary file or claim left."""
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
from PIL import Image

_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    from pyg_wsss.pseudo import generate

    out, calls, go, tag = sys.argv[1:5]
    ds = [{"image": np.zeros((16, 16, 3), np.uint8), "name": f"im{i}", "v": i}
          for i in range(8)]

    def slow(samples):
        for s in samples:  # one line per computed image, appended atomically
            fd = os.open(calls, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            os.write(fd, f"{s['name']} {tag}\\n".encode())
            os.close(fd)
        time.sleep(0.2 * len(samples))
        return [np.full((16, 16), s["v"], np.uint8) for s in samples]

    open(go + "." + tag, "w").close()  # imported: ready
    while not os.path.exists(go):  # both runs start together
        time.sleep(0.01)
    s = generate(ds, slow, out, batch_size=int(sys.argv[5]), progress=False)
    print(s.done, s.skipped, s.failed, s.busy)
    """
)


def _run_two(tmp_path, batch_size):
    script = tmp_path / "run.py"
    script.write_text(_SCRIPT)
    out, calls, go = tmp_path / "labels", tmp_path / "calls.txt", tmp_path / "go"
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    procs = [
        subprocess.Popen([sys.executable, str(script), str(out), str(calls), str(go), tag,
                          str(batch_size)], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for tag in ("A", "B")
    ]
    deadline = time.time() + 120
    while not all((tmp_path / f"go.{tag}").exists() for tag in ("A", "B")):
        assert time.time() < deadline and all(p.poll() is None for p in procs), \
            [p.communicate()[1] for p in procs if p.poll() is not None]
        time.sleep(0.02)
    go.touch()  # both have imported the package: start together
    results = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        results.append(tuple(map(int, stdout.split())))
    return out, calls, results


def _check(out, calls, results):
    lines = calls.read_text().split()
    names = lines[0::2]
    assert sorted(names) == [f"im{i}" for i in range(8)], "an image was computed twice or never"
    assert sum(r[0] for r in results) == 8  # done, in total
    for done, skipped, failed, busy in results:
        assert failed == 0 and done + skipped + busy == 8
    assert sorted(os.listdir(out)) == [f"im{i}.png" for i in range(8)]  # no temp, no claim
    for i in range(8):
        assert np.all(np.array(Image.open(out / f"im{i}.png")) == i)
    return lines[1::2]


def test_two_concurrent_runs_compute_every_image_once(tmp_path):
    out, calls, results = _run_two(tmp_path, batch_size=1)
    tags = _check(out, calls, results)
    assert set(tags) == {"A", "B"}, "the runs did not share the work"


def test_two_concurrent_runs_with_batches(tmp_path):
    out, calls, results = _run_two(tmp_path, batch_size=3)
    _check(out, calls, results)
