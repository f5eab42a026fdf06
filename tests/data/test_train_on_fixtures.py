"""`python -m fgbg_tf.train --dataset NAME --data-dir PATH` runs on a fake copy of each dataset's distributed layout."""

import pytest

from fgbg_tf.train import main
from tests.conftest import TINY_OVERRIDES
from tests.data.fixtures_bair import make_bair_tar, register_fake_bair_checksums
from tests.data.fixtures_images import make_celeba_manual, make_faces5pt, register_fake_celeba_checksums
from tests.data.fixtures_video import write_bbc, write_h36m, write_kth


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


@pytest.mark.parametrize("make", [bbc, h36m, kth, faces5pt, celeba, bair], ids=lambda f: f.__name__)
def test_train_cli_runs_on_the_distributed_layout(make, tmp_path, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    data_dir, settings = make(root, monkeypatch)
    # The baseline variant: what is tested is the reader feeding a training step, which MaskNet and BGNet do not
    # touch, and leaving them out makes the step cheaper to trace.
    overrides = [s for s in TINY_OVERRIDES if not s.startswith("data.options")] + ["data.temporal_offset=[1, 2]",
                                                                                     "model.variant=baseline"]
    overrides += settings
    if make in (faces5pt, celeba):
        overrides.append("data.pose_perturbation=tps")
    args = ["--dataset", make.__name__, "--data-dir", str(data_dir), "--max-steps", "1", "--output", str(tmp_path / "run"),
            "--no-progress"]
    for override in overrides:
        args += ["--set", override]
    assert main(args) == 0
    assert (tmp_path / "run" / "checkpoints" / "ckpt-1.index").is_file()
