"""Tiny fake image datasets in their distributed layouts: faces5pt and the CelebA manual files (BAIR: fixtures_bair.py).

Images are drawn so that tests can check geometry: a bright Gaussian blob on black
at a known point, whose intensity centroid must follow the keypoint transforms.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np


def blob_image(height: int, width: int, centre: tuple[float, float], sigma: float = 2.5) -> np.ndarray:
    """uint8 [height, width, 3] RGB: a white Gaussian blob centred at (x, y) on black."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    blob = np.exp(-((x - centre[0]) ** 2 + (y - centre[1]) ** 2) / (2 * sigma**2))
    return np.repeat((255 * blob).round().astype(np.uint8)[..., None], 3, axis=2)


def centroid(image: np.ndarray) -> np.ndarray:
    """(x, y) intensity centroid of an [H, W(, C)] image."""
    weights = np.asarray(image, np.float64)
    if weights.ndim == 3:
        weights = weights.mean(axis=2)
    y, x = np.mgrid[0 : weights.shape[0], 0 : weights.shape[1]]
    return np.array([(weights * x).sum(), (weights * y).sum()]) / weights.sum()


def encode_jpeg(image: np.ndarray) -> bytes:
    """JPEG bytes (quality 100) of an RGB uint8 image."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert ok
    return data.tobytes()


def write_jpeg(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_jpeg(image))
    return path


def corrupted_jpeg(height: int = 80, width: int = 80) -> tuple[bytes, bytes]:
    """(clean, corrupt) JPEG bytes of a smooth image; the corrupt copy has 40 bytes of its entropy-coded data
    scrambled: it decodes without an error, to wrong pixels (libjpeg only warns "Corrupt JPEG data: premature end of
    data segment" on stderr)."""
    rows, columns = np.indices((height, width))
    image = np.stack([rows * 3 % 256, columns * 3 % 256, (rows + columns) % 256], -1).astype(np.uint8)
    clean = cv2.imencode(".jpg", cv2.GaussianBlur(image, (9, 9), 3))[1].tobytes()
    corrupt, middle = bytearray(clean), len(clean) // 2
    corrupt[middle : middle + 40] = bytes((b * 37 + 11) % 256 for b in corrupt[middle : middle + 40])
    return clean, bytes(corrupt)


def write_corrupted_jpeg(path: Path) -> Path:
    """Writes `corrupted_jpeg()`'s corrupt 80x80 image at `path` and its clean original beside it as clean.jpg."""
    clean, corrupt = corrupted_jpeg()
    path.with_name("clean.jpg").write_bytes(clean)
    path.write_bytes(corrupt)
    return path.with_name("clean.jpg")


def faces5pt_keypoints(index: int) -> np.ndarray:
    """float [5, 2] (x, y) of fake face `index`: a distinct, in-crop layout per face."""
    base = np.array([[28.0, 32.0], [52.0, 32.0], [40.0, 44.0], [30.0, 56.0], [50.0, 56.0]])
    return base + np.array([index % 5, -(index % 3)], np.float64)


def make_faces5pt(root: Path, num_train: int = 5, num_test: int = 3) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Writes the faces5pt layout (list files + 80x80 JPEGs with a blob at the left eye).

    Returns split -> [(relative path, keypoints [5, 2])] in list order.
    """
    root.mkdir(parents=True, exist_ok=True)
    entries = {}
    for split, list_name, folder, count in (
        ("train", "new_training.txt", "lfw_5590", num_train),
        ("test", "new_testing.txt", "AFLW", num_test),
    ):
        rows = []
        for i in range(count):
            keypoints = faces5pt_keypoints(i + (100 if split == "test" else 0))
            relative = f"{folder}/face_{i:04d}.jpg"
            write_jpeg(root / relative, blob_image(80, 80, keypoints[0]))
            rows.append((relative, keypoints))
        write_faces5pt_list(root / list_name, rows)
        entries[split] = rows
    return entries


def write_faces5pt_list(path: Path, rows: list[tuple[str, np.ndarray]], extra_lines: tuple[str, ...] = ()) -> None:
    """A faces5pt list file: 'path x1..x5 y1..y5' per row, then any raw `extra_lines`."""
    lines = [" ".join([name] + [repr(float(v)) for v in np.concatenate([k[:, 0], k[:, 1]])]) for name, k in rows]
    path.write_text("\n".join(lines + list(extra_lines)) + "\n")


CELEBA_LANDMARKS = (
    "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
)
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
)


def celeba_landmarks(number: int) -> np.ndarray:
    """int [5, 2] (x, y) landmarks of fake CelebA image `number` (1-based), in the 178x218 aligned image."""
    base = np.array([[69, 111], [108, 111], [88, 135], [72, 152], [105, 152]])
    return base + np.array([number % 7, number % 4])


def register_fake_celeba_checksums(monkeypatch, manual_dir: Path) -> None:
    """Makes tfds' `celeb_a` accept the fake manual files: registers their checksums under the real file names."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download import checksums

    infos = tfds.builder_cls("celeb_a").url_infos
    for url, info in list(infos.items()):
        fake = checksums.compute_url_info(manual_dir / info.filename)
        fake.filename = info.filename
        monkeypatch.setitem(infos, url, fake)


def make_celeba_manual(
    root: Path, partitions: list[int], mafl_train: list[int], mafl_test: list[int], landmarks: dict | None = None
) -> None:
    """Writes the 5 official CelebA files in tfds' manual_dir layout, plus MAFL/training.txt and testing.txt.

    Image k (1-based, name f"{k:06d}.jpg") is 178x218 with a blob at its left eye
    and belongs to CelebA partition `partitions[k - 1]` (0 train, 1 val, 2 test);
    `landmarks` may replace the listed landmarks of some images (number -> [5, 2]).
    """
    listed = {k: celeba_landmarks(k) for k in range(1, len(partitions) + 1)}
    listed.update(landmarks or {})
    root.mkdir(parents=True, exist_ok=True)
    names = [f"{k:06d}.jpg" for k in range(1, len(partitions) + 1)]
    with zipfile.ZipFile(root / "img_align_celeba.zip", "w") as archive:
        for k, name in enumerate(names, start=1):
            archive.writestr(f"img_align_celeba/{name}", encode_jpeg(blob_image(218, 178, celeba_landmarks(k)[0])))
    (root / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, p in zip(names, partitions)))
    landmark_rows = [
        f"{n} " + " ".join(str(int(v)) for v in np.reshape(listed[k], -1)) for k, n in enumerate(names, start=1)
    ]
    (root / "list_landmarks_align_celeba.txt").write_text(
        f"{len(names)}\n{CELEBA_LANDMARKS}\n" + "\n".join(landmark_rows) + "\n"
    )
    attribute_rows = [f"{n} " + " ".join(["-1"] * 40) for n in names]
    attributes = f"{len(names)}\n{CELEBA_ATTRIBUTES}\n" + "\n".join(attribute_rows) + "\n"
    (root / "list_attr_celeba.txt").write_text(attributes)
    (root / "identity_CelebA.txt").write_text("".join(f"{n} {k}\n" for k, n in enumerate(names, start=1)))
    mafl = root / "MAFL"
    mafl.mkdir()
    (mafl / "training.txt").write_text("".join(f"{k:06d}.jpg\n" for k in mafl_train))
    (mafl / "testing.txt").write_text("".join(f"{k:06d}.jpg\n" for k in mafl_test))
