"""Landmark state sequences of videos, read through a frozen landmark model (docs/video-prediction.md section 1.3).

The dynamics model never sees pixels: each clip of a video dataset becomes the sequence of its frames' landmark
states (`state.encode_state` of the pose encoder's fitted Gaussians), and the LSTM trains on windows of those.

`video_clips` gives a dataset's videos as whole clips in time order, whatever the reader: the embedded `synthetic`
videos directly, KTH's segments and BAIR's 30-frame clips by grouping the frames of `eval_split`, which come in
order with their clip id ("video" for KTH, "sequence" for BAIR).

Example:
    clips = video_clips(dataset, "train")                    # [(name, uint8 [T, S, S, 3]), ...]
    states = extract_states(model, [c for _, c in clips])    # [float32 [T, 5K], ...]
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from fgbg_tf.data import DatasetError
from fgbg_tf.data.pipeline import to_model_range
from fgbg_tf.dynamics.state import encode_state

# The eval-split key that names each frame's clip, for the readers whose eval frames come in clip order.
_CLIP_KEYS = ("video", "sequence")


def video_clips(dataset, split: str) -> list[tuple[str, np.ndarray]]:
    """Every clip of `split` as (name, uint8 [T, S, S, 3]), frames in time order.

    Frames marked invalid (an unreadable file) end their clip there: the part before is kept when it is not
    empty, so that a rollout never reads across a gap.
    """
    if hasattr(dataset, "splits") and hasattr(dataset.splits.get(split), "frames"):  # the embedded synthetic videos
        frames = dataset.splits[split].frames
        return [(f"{dataset.name}/{split}/{i}", frames[i]) for i in range(len(frames))]
    clips, current, current_id = [], [], None

    def close():
        if current:
            clips.append((f"{dataset.name}/{split}/{current_id}", np.stack(current)))

    for element in dataset.eval_split(split).as_numpy_iterator():
        key = next((k for k in _CLIP_KEYS if k in element), None)
        if key is None:
            raise DatasetError(f"{dataset.name}: its eval frames carry no clip id ({' or '.join(_CLIP_KEYS)}), "
                               "so it has no videos to predict")
        clip_id = int(element[key])
        if clip_id != current_id or not element.get("valid", True):
            close()
            current, current_id = [], clip_id
        if element.get("valid", True):
            current.append(element["image"])
    close()
    if not clips:
        raise DatasetError(f"{dataset.name} split {split!r} has no readable clip")
    return clips


def extract_states(model, clips, batch_size: int = 64) -> list[np.ndarray]:
    """The landmark states of every frame of each clip: float32 [T, 5K] per clip.

    Args:
        model: a `FactorizedLandmarkModel` (only its pose encoder runs).
        clips: uint8 arrays [T, S, S, 3].
        batch_size: frames per pose-encoder call.
    """
    size = model.image_size

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)])
    def states_of(images):
        landmarks = model.detect(to_model_range(images))
        return encode_state(landmarks["mean"], landmarks["covariance"])

    sequences = []
    for clip in clips:
        if clip.shape[1:] != (size, size, 3):
            raise DatasetError(f"clip frames must be {size}x{size}x3 for this model, got {clip.shape[1:]}")
        parts = [states_of(clip[i:i + batch_size]).numpy() for i in range(0, len(clip), batch_size)]
        sequences.append(np.concatenate(parts))
    return sequences


def sample_windows(sequences, length: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` windows of `length` consecutive states, each from a random sequence at a random start.

    Sequences shorter than `length` are never drawn; every sequence long enough is drawn in proportion to how
    many windows it holds, so each window of the training set is equally likely. Returns [count, length, 5K].
    """
    starts = np.array([max(len(s) - length + 1, 0) for s in sequences])
    if starts.sum() == 0:
        raise DatasetError(f"no training clip has the {length} frames a window needs "
                           f"(dynamics.train_input + dynamics.train_future); the longest has "
                           f"{max(len(s) for s in sequences)}")
    picks = rng.choice(len(sequences), size=count, p=starts / starts.sum())
    offsets = (rng.random(count) * starts[picks]).astype(np.int64)
    return np.stack([sequences[i][o:o + length] for i, o in zip(picks, offsets)])
