"""Tests of the embedded synthetic video renderer (geometry, determinism, what training relies on)."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest

from fgbg_tf.data.synthetic_render import KEYPOINT_NAMES, make_splits, render_videos

SIZE = 64


@functools.lru_cache(maxsize=None)
def _videos(seed=3, num_videos=4, frames=40, size=SIZE):
    return render_videos(seed, num_videos, frames, size)


def _dilate(masks: np.ndarray, pixels: int = 1) -> np.ndarray:
    kernel = np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)
    return np.stack([cv2.dilate(m, kernel) for m in masks.reshape((-1,) + masks.shape[-2:])]).reshape(masks.shape)


def test_shapes_and_dtypes():
    v = _videos()
    assert v.frames.shape == (4, 40, SIZE, SIZE, 3) and v.frames.dtype == np.uint8
    assert v.keypoints.shape == (4, 40, len(KEYPOINT_NAMES), 2) and v.keypoints.dtype == np.float32
    assert v.masks.shape == (4, 40, SIZE, SIZE) and v.masks.dtype == np.uint8
    assert v.backgrounds.shape == (4, SIZE, SIZE, 3) and v.backgrounds.dtype == np.uint8
    assert v.keypoint_names == KEYPOINT_NAMES and len(set(KEYPOINT_NAMES)) == 14
    assert set(np.unique(v.masks)) == {0, 1}


def test_same_seed_is_byte_identical_and_other_seeds_differ():
    a, b = render_videos(7, 2, 6, 32), render_videos(7, 2, 6, 32)
    for name in ("frames", "keypoints", "masks", "backgrounds"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    c = render_videos(8, 2, 6, 32)
    assert np.abs(a.frames.astype(int) - c.frames).mean() > 10
    assert np.abs(a.keypoints - c.keypoints).mean() > 1


def test_videos_and_frames_depend_only_on_their_index():
    big, small = _videos(), render_videos(3, 2, 15, SIZE)
    np.testing.assert_array_equal(small.frames, big.frames[:2, :15])
    np.testing.assert_array_equal(small.keypoints, big.keypoints[:2, :15])


def test_image_size_rescales_the_same_scene():
    # Pixel-centre convention: image-unit u maps to pixel u * S - 0.5 at every size S.
    small, medium, large = render_videos(5, 2, 8, 32), render_videos(5, 2, 8, 64), render_videos(5, 2, 8, 128)
    np.testing.assert_allclose((small.keypoints + 0.5) / 32, (large.keypoints + 0.5) / 128, atol=1e-5)
    # Limbs are about 1 px thick at 32 px, too thin for a fair area comparison; 64 px is not.
    np.testing.assert_allclose(medium.masks.mean(axis=(2, 3)), large.masks.mean(axis=(2, 3)), rtol=0.1)


def test_figure_stays_inside_the_frame():
    v = _videos()
    assert v.keypoints.min() >= 0 and v.keypoints.max() <= SIZE - 1
    border = np.ones((SIZE, SIZE), bool)
    border[1:-1, 1:-1] = False
    assert not v.masks[..., border].any()


def test_every_keypoint_lies_on_or_next_to_the_mask():
    v = _videos()
    near = _dilate(v.masks)
    cols, rows = np.round(v.keypoints).astype(int).transpose(3, 0, 1, 2)
    videos, frames = np.indices(cols.shape[:2])
    assert near[videos[..., None], frames[..., None], rows, cols].all()


def test_every_keypoint_pixel_is_foreground_at_128px():
    # Limbs are over 2 px thick at 128 px, so a misplaced keypoint or a half-pixel offset shows.
    v = render_videos(11, 2, 12, 128)
    cols, rows = np.round(v.keypoints).astype(int).transpose(3, 0, 1, 2)
    videos, frames = np.indices(cols.shape[:2])
    assert v.masks[videos[..., None], frames[..., None], rows, cols].all()


def test_mask_area_is_sane():
    area = _videos().masks.mean(axis=(2, 3))
    assert area.min() > 0.03 and area.max() < 0.25


def test_background_is_textured_static_and_differs_between_videos():
    v = _videos()
    # Anti-aliased edges reach up to 2 px past the half-coverage mask.
    away = _dilate(v.masks, 2) == 0
    for video in range(v.frames.shape[0]):
        for frame in range(v.frames.shape[1]):
            pixels = v.frames[video, frame][away[video, frame]]
            # Static: away from the figure every frame is the video's background.
            np.testing.assert_array_equal(pixels, v.backgrounds[video][away[video, frame]])
            assert pixels.astype(np.float32).std() > 10
        # The figure really is drawn over it.
        background = np.broadcast_to(v.backgrounds[video], v.frames[video].shape).astype(int)
        figure = v.masks[video] == 1
        assert np.abs(v.frames[video][figure] - background[figure]).mean() > 20
    for a in range(v.frames.shape[0]):
        for b in range(a):
            assert np.abs(v.backgrounds[a].astype(int) - v.backgrounds[b]).mean() > 15


def test_part_colour_is_constant_within_and_differs_across_videos():
    v = _videos()
    names = list(KEYPOINT_NAMES)
    hips = 0.5 * (v.keypoints[:, :, names.index("right_hip")] + v.keypoints[:, :, names.index("left_hip")])
    torso = np.round(0.5 * (v.keypoints[:, :, names.index("neck")] + hips)).astype(int)
    modes = []
    for video in range(v.frames.shape[0]):
        colours = v.frames[video, np.arange(v.frames.shape[1]), torso[video, :, 1], torso[video, :, 0]]
        unique, counts = np.unique(colours, axis=0, return_counts=True)
        # The right arm passes in front of the torso in some frames; the rest show the torso's one colour.
        assert counts.max() >= 0.6 * len(colours)
        modes.append(tuple(unique[counts.argmax()]))
    assert len(set(modes)) == len(modes)


def test_pose_changes_within_a_video():
    kp = _videos().keypoints
    moved = np.linalg.norm(kp[:, 10:] - kp[:, :-10], axis=-1).mean(axis=(1, 2))
    assert moved.min() > 4
    # Not just translation: the joints move relative to the figure's centre too.
    centred = kp - kp.mean(axis=2, keepdims=True)
    articulated = np.linalg.norm(centred[:, 10:] - centred[:, :-10], axis=-1).mean(axis=(1, 2))
    assert articulated.min() > 2


def test_train_and_test_splits_differ():
    splits = make_splits(1, image_size=32, train_videos=3, test_videos=2, frames_per_video=5)
    train, test = splits["train"], splits["test"]
    assert train.frames.shape == (3, 5, 32, 32, 3) and test.frames.shape == (2, 5, 32, 32, 3)
    for a in train.backgrounds:
        for b in test.backgrounds:
            assert np.abs(a.astype(int) - b).mean() > 15
    np.testing.assert_array_equal(train.frames, render_videos(2, 3, 5, 32).frames)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"num_videos": 0}, "num_videos"),
        ({"frames_per_video": 0}, "frames_per_video"),
        ({"image_size": 16}, "image_size"),
        ({"image_size": 129}, "image_size"),
        ({"image_size": True}, "image_size"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, name):
    arguments = {"seed": 0, "num_videos": 1, "frames_per_video": 2, "image_size": 32, **kwargs}
    with pytest.raises(ValueError, match=name):
        render_videos(**arguments)


@pytest.mark.parametrize("name", ["train_videos", "test_videos"])
def test_bad_split_sizes_name_the_argument(name):
    with pytest.raises(ValueError, match=name):
        make_splits(0, image_size=32, **{name: 0})


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.image_size=144", "synthetic renders 32 to 128 px, got 144"),
        ("data.temporal_offset=[70, 90]", "synthetic videos have 64 frames .* at most 63 frames apart"),
        ("data.options={seed: -1}", r"data.options.seed must be an integer >= 0, got -1"),
        ("data.options={train_videos: 2.5}", r"data.options.train_videos must be an integer >= 1, got 2.5"),
        ("data.options={test_videos: 0}", r"data.options.test_videos must be an integer >= 1, got 0"),
    ],
)
def test_the_reader_refuses_what_it_cannot_render_before_rendering(override, message):
    from fgbg_tf.config import load_config
    from fgbg_tf.data import DatasetError, get_dataset

    with pytest.raises(DatasetError, match=message):
        get_dataset(load_config("synthetic", overrides=[override]).data)
