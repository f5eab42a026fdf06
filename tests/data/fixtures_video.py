"""Tiny fake BBC Pose, Human3.6M and KTH datasets in their distributed layouts, with real file formats.

Frames are gradients that make crops hand-checkable: red = 2 x, green = 2 y (frame
pixels), blue = `marker(video, frame)`, so a decoded crop tells where it came from
and which frame it is.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import scipy.io

BBC_FIELDS = ("videoName", "type", "source", "train_frames", "train_joints", "test_frames", "test_joints")
KTH_ACTIONS = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")


def marker(video: int, frame: int) -> int:
    """Blue value identifying a frame: distinct for the frames the tests use, far from JPEG noise."""
    return (40 * video + 8 * frame) % 256


def gradient_frame(height: int, width: int, blue: int) -> np.ndarray:
    """RGB uint8 [height, width, 3] with red = 2x, green = 2y (mod 256), blue constant."""
    y, x = np.mgrid[:height, :width]
    return np.stack([(2 * x) % 256, (2 * y) % 256, np.full_like(x, blue)], axis=-1).astype(np.uint8)


def write_jpeg(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, 100, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    if not cv2.imwrite(str(path), rgb[..., ::-1], params):
        raise OSError(f"could not write {path}")
    return path


def truncate(path: Path, keep: float = 0.5) -> None:
    """Cuts a file to a fraction of its bytes, as an interrupted copy would."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def joints_around(cx: float, cy: float, spread: float = 10.0) -> np.ndarray:
    """7 joints [7, 2] (x, y) whose bounding box is centred on (cx, cy) with half-width `spread`."""
    offsets = np.array([[0, -1], [-1, 1], [1, 1], [-0.5, 0.5], [0.5, 0.5], [-1, 0], [1, 0]], np.float64)
    return np.array([cx, cy]) + spread * offsets


def bbc_joints(video: int, frame: int) -> np.ndarray:
    """MATLAB 1-based joints of a BBC fixture frame: the centre moves right by 4 px per frame number."""
    return joints_around(21.0 + 4 * frame, 51.0 + video % 3)


def write_bbc(
    root: Path,
    train: dict[int, list[int]],
    val: dict[int, list[int]],
    test: dict[int, list[int]],
    size: tuple[int, int] = (100, 120),
    num_videos: int = 20,
    joints=bbc_joints,
    blue=marker,
) -> Path:
    """Writes <root>/<video>/<frame>.jpg, code/bbcpose.mat and code/results.mat.

    Args:
        train: video -> annotated frame numbers (`train_frames`).
        val: video -> manually annotated frame numbers (`test_frames`).
        test: video -> frame numbers listed in results.mat.
        size: (height, width) of every frame.
        joints: (video, frame) -> the frame's MATLAB 1-based joints [7, 2] (x, y).
        blue: (video, frame) -> the frame's blue level.
    """
    height, width = size
    for group in (train, val, test):
        for video, frames in group.items():
            for frame in frames:
                write_jpeg(root / str(video) / f"{frame}.jpg", gradient_frame(height, width, blue(video, frame)))
    entries = np.zeros((1, num_videos), dtype=[(name, "O") for name in BBC_FIELDS])
    for index in range(num_videos):
        video = index + 1
        entry = entries[0, index]
        entry["videoName"] = str(video)
        entry["type"] = "train" if video <= 10 else "val" if video <= 15 else "test"
        entry["source"] = "bbc"
        for frames_field, joints_field, group in (("train_frames", "train_joints", train), ("test_frames", "test_joints", val)):
            frames = group.get(video, [])
            entry[frames_field] = np.array([frames], np.float64).reshape(1, -1)
            entry[joints_field] = _matlab_joints(joints, video, frames)
    (root / "code").mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(root / "code" / "bbcpose.mat"), {"bbcpose": entries})
    rows = [(video, frame) for video, frames in test.items() for frame in frames]
    results = np.zeros((1, 1), dtype=[("gt", "O"), ("frame", "O"), ("video", "O")])
    results[0, 0]["gt"] = np.concatenate([_matlab_joints(joints, v, [f]) for v, f in rows], axis=2)
    results[0, 0]["frame"] = np.array([[f for _, f in rows]], np.float64)
    results[0, 0]["video"] = np.array([[v for v, _ in rows]], np.float64)
    scipy.io.savemat(str(root / "code" / "results.mat"), {"results": results})
    return root


def _matlab_joints(joints, video: int, frames: list[int]) -> np.ndarray:
    if not frames:
        return np.zeros((2, 7, 0))
    return np.stack([joints(video, f).T for f in frames], axis=2)


def write_avi(path: Path, frames: list[np.ndarray], fps: int = 25) -> Path:
    """Writes RGB frames [h, w, 3] as an MJPG AVI (the codec opencv-python-headless can write)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height), True)
    if not writer.isOpened():
        raise OSError(f"cannot write {path} with MJPG")
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    return path


def kth_frame(frame: int, height: int = 120, width: int = 160) -> np.ndarray:
    """A grey KTH-like frame: a flat level encoding the 1-based frame number, with a bright left edge."""
    image = np.full((height, width, 3), (20 + 10 * frame) % 256, np.uint8)
    image[:, :20] = 250
    return image


def write_kth(
    root: Path,
    videos: dict[str, list[tuple[int, int]]],
    num_frames: dict[str, int],
    flat: bool = False,
) -> Path:
    """Writes personXX_action_dY_uncomp.avi files and sequences.txt.

    Args:
        videos: video name (e.g. "person01_boxing_d1") -> 1-based inclusive (first, last) segments.
        num_frames: video name -> frames written into its AVI (frame i shows `kth_frame(i)`).
        flat: all AVIs directly in root instead of <root>/<action>/.
    """
    lines = ["Sequences of the KTH actions, as distributed", "", ""]
    for name, segments in videos.items():
        action = name.split("_")[1]
        folder = root if flat else root / action
        count = num_frames[name]
        if count:
            write_avi(folder / f"{name}_uncomp.avi", [kth_frame(i) for i in range(1, count + 1)])
        ranges = ", ".join(f"{a}-{b}" for a, b in segments)
        lines.append(f"{name}\t\tframes\t{ranges}")
    root.mkdir(parents=True, exist_ok=True)
    (root / "sequences.txt").write_text("\n".join(lines) + "\n")
    return root


def h36m_joints(sequence: int, frame: int) -> np.ndarray:
    """32 joints [32, 2] on a circle of radius 10 whose bounding box is centred on (30 + 4 frame, 50 + sequence)."""
    angles = 2 * np.pi * np.arange(32) / 32
    centre = np.array([30.0 + 4 * frame, 50.0 + sequence])
    return centre + 10 * np.stack([np.cos(angles), np.sin(angles)], axis=-1)


def h36m_marker(sequence: int, frame: int) -> int:
    """Blue level of a Human3.6M fixture frame: distinct across the first two sequences' first 10 frames."""
    return marker(3 * sequence + 1, frame)


def write_h36m(
    root: Path,
    sequences: list[tuple[str, str, list[int]]],
    num_rows: int = 12,
    size: tuple[int, int] = (100, 120),
    masks: bool = True,
) -> Path:
    """Writes extracted frames, D2_Positions .npy poses and official-style v7.3 mask files.

    Args:
        sequences: (subject, "<take>.<camera>", extracted 0-based frame numbers); sequence k
            (its position in the list) has joints `h36m_joints(k, frame)` and frame markers
            `h36m_marker(k, frame)`.
        num_rows: pose rows (= video frames) per sequence.
        masks: also write MySegmentsMat/ground_truth_bs/<name>.mat whose mask of frame f is 1
            on the joints' bounding box (10 px around the centre).
    """
    import h5py

    height, width = size
    for k, (subject, name, frames) in enumerate(sequences):
        for frame in frames:
            write_jpeg(root / subject / name / f"{frame:06d}.jpg", gradient_frame(height, width, h36m_marker(k, frame)))
        poses = np.stack([h36m_joints(k, f).reshape(64) for f in range(num_rows)])[None]
        pose_dir = root / subject / "MyPoseFeatures" / "D2_Positions"
        pose_dir.mkdir(parents=True, exist_ok=True)
        np.save(pose_dir / f"{name}.npy", poses)
        if masks:
            mask_dir = root / subject / "MySegmentsMat" / "ground_truth_bs"
            mask_dir.mkdir(parents=True, exist_ok=True)
            with h5py.File(mask_dir / f"{name}.mat", "w") as handle:
                references = np.empty((num_rows, 1), dtype=h5py.ref_dtype)
                for f in range(num_rows):
                    cx, cy = h36m_joints(k, f).mean(axis=0).round().astype(int)
                    mask = np.zeros((height, width), np.uint8)
                    mask[max(cy - 10, 0) : cy + 11, max(cx - 10, 0) : cx + 11] = 1
                    references[f, 0] = handle.create_dataset(f"#refs#/m{f}", data=mask.T).ref
                handle.create_dataset("Masks", data=references)
    return root
