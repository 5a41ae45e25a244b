import os

import numpy as np
import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "2")
torch.set_num_threads(2)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(12345)
    np.random.seed(12345)
    yield


@pytest.fixture
def one_thread():
    """One intra-op thread for tests of many tiny tensor ops (a second OpenMP thread only adds
    synchronisation there, and spins badly when the 2 cores are shared); restored after."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
