"""One home per concept: the scoped sparse-warning filter, the progress wrapper, the VOC
palette and the label-PNG reader/writer."""
import warnings

import numpy as np
import pytest
import torch

from pyg_wsss._progress import NullBar, progress
from pyg_wsss._warnings import sparse_beta_warnings_off

BETA = "Sparse CSR tensor support is in beta state. If you miss a functionality ..."


def _beta_warnings(fn) -> list[str]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        fn()
    return [str(w.message) for w in seen if "in beta" in str(w.message)]


def test_sparse_beta_warnings_off_is_scoped():
    def inside():
        with sparse_beta_warnings_off():
            torch.eye(3).to_sparse_csr()  # torch's own notice (given once per process)
            warnings.warn(BETA, UserWarning)

    assert _beta_warnings(inside) == []
    # outside the block the notice shows again (the filter list is restored)
    assert _beta_warnings(lambda: warnings.warn(BETA, UserWarning)) == [BETA]
    before = list(warnings.filters)
    with sparse_beta_warnings_off():
        pass
    assert warnings.filters == before


def test_sparse_beta_warnings_off_keeps_other_warnings():
    with pytest.warns(UserWarning, match="something else"):
        with sparse_beta_warnings_off():
            warnings.warn("something else about sparse tensors", UserWarning)


def test_sparse_beta_warnings_off_restores_on_error():
    before = list(warnings.filters)
    with pytest.raises(RuntimeError):
        with sparse_beta_warnings_off():
            raise RuntimeError("boom")
    assert warnings.filters == before


def test_progress_disabled_is_a_null_bar():
    bar = progress(range(3), enabled=False, desc="x")
    assert isinstance(bar, NullBar) and list(bar) == [0, 1, 2] and len(bar) == 3
    with progress(total=5, enabled=False) as manual:
        manual.update(2)
        manual.set_postfix(loss="1.0")
    assert manual.n == 2
    with pytest.raises(TypeError, match="no iterable"):
        iter(progress(enabled=False))


def test_progress_enabled_is_tqdm():
    tqdm_auto = pytest.importorskip("tqdm.auto")
    bar = progress(range(3), enabled=True, desc="x", disable=True)
    assert isinstance(bar, tqdm_auto.tqdm) and list(bar) == [0, 1, 2]
    bar.close()


def test_segmentation_pngs_use_the_one_palette(tmp_path):
    from PIL import Image

    from pyg_wsss.segmentation import load_label_map, save_label_maps
    from pyg_wsss.viz import voc_palette

    lab = np.array([[0, 1, 15], [255, 2, 3]], np.uint8)
    (path,) = save_label_maps([lab], ["a"], tmp_path)
    with Image.open(path) as img:
        assert img.mode == "P"
        pal = np.asarray(img.getpalette(), np.uint8).reshape(-1, 3)[:256]
    np.testing.assert_array_equal(pal, voc_palette(256))
    np.testing.assert_array_equal(load_label_map(path), lab)
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="mode"):
        load_label_map(tmp_path / "rgb.png")


def test_read_label_png_modes(tmp_path):
    from PIL import Image

    from pyg_wsss.data.io import read_label_png, write_label_png

    write_label_png(np.eye(3, dtype=np.uint8), tmp_path / "p.png")
    assert read_label_png(tmp_path / "p.png", modes=("P",)).sum() == 3
    Image.fromarray(np.eye(3, dtype=np.uint8)).save(tmp_path / "l.png")
    with pytest.raises(ValueError, match="mode P, got mode L"):
        read_label_png(tmp_path / "l.png", modes=("P",))
