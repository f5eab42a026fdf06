"""Dataset readers, looked up by the names `--dataset` accepts."""

from __future__ import annotations

import importlib

from fgbg_tf.config import DataConfig
from fgbg_tf.data.base import DatasetError, LandmarkDataset

# name -> "module:class"; modules are imported only when their dataset is used.
READERS = {
    "synthetic": "fgbg_tf.data.synthetic:SyntheticDataset",
    "faces5pt": "fgbg_tf.data.faces5pt:Faces5ptDataset",
    "bbc": "fgbg_tf.data.bbc:BBCPoseDataset",
    "h36m": "fgbg_tf.data.h36m:Human36MDataset",
    "celeba": "fgbg_tf.data.celeba:CelebADataset",
    "kth": "fgbg_tf.data.kth:KTHDataset",
    "bair": "fgbg_tf.data.bair:BAIRDataset",
    "images": "fgbg_tf.data.image_folder:ImageFolderDataset",
    "videos": "fgbg_tf.data.video_folder:VideoFolderDataset",
}


def get_dataset(config: DataConfig) -> LandmarkDataset:
    """Builds the reader named by `config.name`; fails clearly if it is unknown or unavailable."""
    if config.name not in READERS:
        raise DatasetError(f"unknown dataset {config.name!r}; choose one of {sorted(READERS)}")
    module_name, class_name = READERS[config.name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        raise DatasetError(
            f"dataset {config.name!r} has no reader in this version of fgbg_tf; "
            f"available: {sorted(n for n in READERS if _available(n))}"
        ) from None
    return getattr(module, class_name)(config)


def dataset_options(config: DataConfig) -> dict:
    """The options a reader of `config` works with: its defaults updated with `config.options` (a run's
    config.yaml holds only what was set, e.g. after `--set data.options.cache_dir=...` no framing)."""
    try:
        module_name, class_name = READERS[config.name].split(":")
        defaults = getattr(importlib.import_module(module_name), class_name).default_options
    except (KeyError, ImportError):  # a reader this install cannot import (h5py, scipy): what the run recorded
        defaults = {}
    return {**defaults, **config.options}


def _available(name: str) -> bool:
    return importlib.util.find_spec(READERS[name].split(":")[0]) is not None


__all__ = ["DatasetError", "LandmarkDataset", "READERS", "dataset_options", "get_dataset"]
