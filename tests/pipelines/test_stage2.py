import numpy as np
import pytest

from pyg_wsss.pipelines.stage2 import heldout_synthetic, run_stage2


def test_heldout_images_do_not_overlap_and_stage2_runs(one_thread):
    held = heldout_synthetic(2, after=4, image_size=32, num_classes=2)
    from pyg_wsss.data import SyntheticWSSS

    first = SyntheticWSSS(num_images=6, image_size=32, num_classes=2)
    assert np.array_equal(held[0]["image"], first[4]["image"])
    train = [first[i] for i in range(4)]
    labels = [s["mask"] for s in train]
    out = run_stage2(train, labels, held, 3, iterations=30, crf=False, batch_size=4,
                     aspp_channels=16)
    assert 0.0 <= out["miou"] <= 1.0 and "miou_crf" not in out
    with pytest.raises(ValueError, match="pseudo-label"):
        run_stage2(train, labels[:2], held, 3, iterations=1)
    with pytest.raises(ValueError, match="num_images"):
        heldout_synthetic(0, after=4)
