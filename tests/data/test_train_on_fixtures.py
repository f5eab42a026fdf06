"""Training reads a fake copy of each dataset's distributed layout: `--dataset NAME --data-dir PATH`.

What depends on the dataset is the reader and the views it feeds the training step; the step itself does not
(test_train.py, test_distributed.py). So every layout is taken as far as the first training batch, and one of them
through `python -m fgbg_tf.train` end to end (each end-to-end run costs a model build and a traced step, about a
minute on 2 cores).
"""

import numpy as np
import pytest

from fgbg_tf.config import load_config
from fgbg_tf.data import get_dataset
from fgbg_tf.data.pipeline import check_views, training_batches
from fgbg_tf.train import main
from tests.conftest import TINY_OVERRIDES
from tests.data.fixtures_bair import make_bair_tar, register_fake_bair_checksums
from tests.data.fixtures_images import make_celeba_manual, make_faces5pt, register_fake_celeba_checksums
from tests.data.fixtures_video import gradient_frame, marker, write_avi, write_bbc, write_h36m, write_kth


def bbc(root, monkeypatch):
    frames = [1, 3, 5, 7, 9, 11]
    options = "{crop_size: 64, train_videos: [1, 2], val_videos: [11], test_videos: [16]}"
    return write_bbc(root, train={1: frames, 2: frames}, val={11: [2, 4]}, test={16: [5, 1]}), [f"data.options={options}"]


def h36m(root, monkeypatch):
    sequences = [("S1", "Directions 1.54138969", list(range(8))), ("S11", "Posing.54138969", [3, 5])]
    options = "{crop_size: 64, train_subjects: [S1], test_subjects: [S11]}"
    return write_h36m(root, sequences), [f"data.options={options}"]


def kth(root, monkeypatch):
    videos = {"person01_boxing_d1": [(1, 8)], "person17_boxing_d1": [(1, 8)]}
    frames = {"person01_boxing_d1": 8, "person17_boxing_d1": 8}
    options = "{train_persons: [1], test_persons: [17], actions: [boxing]}"
    return write_kth(root, videos, frames), [f"data.options={options}"]


def faces5pt(root, monkeypatch):
    make_faces5pt(root, num_train=4, num_test=2)
    return root, []


def celeba(root, monkeypatch):
    make_celeba_manual(root, [0] * 8 + [1] * 2 + [2] * 2, [1, 2, 3, 4], [5, 6])
    register_fake_celeba_checksums(monkeypatch, root)
    return root, [f"data.options={{tfds_data_dir: {root / 'tfds'}}}"]


def bair(root, monkeypatch):
    register_fake_bair_checksums(monkeypatch, make_bair_tar(root))
    return root, [f"data.options={{tfds_data_dir: {root / 'tfds'}}}", "data.image_size=64", "data.temporal_offset=[1, 3]"]


def videos(root, monkeypatch):
    for video in range(2):
        write_avi(root / f"clip{video}.avi", [gradient_frame(48, 64, marker(video, t)) for t in range(6)])
    return root, [f"data.options={{cache_dir: {root.parent / 'cache'}, test_videos: 0.0}}"]


def overrides_for(make, root, monkeypatch) -> tuple[str, list[str]]:
    """The data folder and the `--set` overrides of a tiny run on the layout `make` writes into `root`."""
    data_dir, settings = make(root, monkeypatch)
    overrides = [s for s in TINY_OVERRIDES if not s.startswith("data.options")] + ["data.temporal_offset=[1, 2]"]
    overrides += settings
    if make in (faces5pt, celeba):
        overrides.append("data.pose_perturbation=tps")
    return str(data_dir), overrides


@pytest.mark.parametrize("make", [bbc, h36m, kth, faces5pt, celeba, bair, videos], ids=lambda f: f.__name__)
def test_training_batches_come_from_the_distributed_layout(make, tmp_path, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    data_dir, overrides = overrides_for(make, root, monkeypatch)
    config = load_config(make.__name__, overrides=overrides + [f"data.data_dir={data_dir}"])
    dataset = get_dataset(config.data)
    check_views(dataset, config)
    batch = next(iter(training_batches(dataset, config, 2)))
    size = config.data.image_size
    for key in ("pose", "appearance", "target"):
        values = batch[key].numpy()
        assert values.shape == (2, size, size, 3) and np.all(np.abs(values) <= 1.0), key
        assert values.std() > 0.01, key  # an image, not a constant
    np.testing.assert_array_equal(batch["weight"].numpy(), [1.0, 1.0])  # the fixtures' frames all decode


def test_train_cli_runs_on_a_distributed_layout(tmp_path, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    data_dir, overrides = overrides_for(bbc, root, monkeypatch)
    # The baseline variant: MaskNet and BGNet do not touch what the reader feeds, and add tracing time only.
    args = ["--dataset", "bbc", "--data-dir", data_dir, "--max-steps", "1", "--output", str(tmp_path / "run"),
            "--no-progress", "--set", "model.variant=baseline"]
    for override in overrides:
        args += ["--set", override]
    assert main(args) == 0
    assert (tmp_path / "run" / "checkpoints" / "ckpt-1.index").is_file()
