"""The pixel sizes of the user's own images and videos a run trained on, for `export` and `predict`.

The `images` and `videos` readers count the original (width, height) of their training sources as they decode them
(`LandmarkDataset.source_sizes`: [[width, height, count], ...], count the images or videos of that size). Training
writes them, with the dataset's name and framing, to `RUN/sources.json` beside config.yaml rather than into it:
config.yaml holds the settings the user chose, checked key by key when a run resumes, while the sizes are found in
the data (a reader rewrites them on every start). `export` copies them into its report next to the framing
(`framing_record`), and `predict` reads them from either to tell an input framed unlike every training source
(`fgbg_tf/serving/predictor.py`).

Example:
    framing_record(config.data, "runs/clips")   # {"framing": "centre_crop", "source_sizes": [[1920, 1080, 12]]}
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Iterable

from fgbg_tf.config import DataConfig
from fgbg_tf.data import LandmarkDataset, dataset_options

SOURCES_FILE = "sources.json"


def count_sizes(sizes: Iterable[tuple[int, int]]) -> list[list[int]]:
    """[[width, height, count], ...] of (width, height) pairs, smallest width first."""
    return [[width, height, count] for (width, height), count in sorted(collections.Counter(sizes).items())]


def write_sources(run_dir: str | Path, dataset: LandmarkDataset) -> None:
    """Writes `run_dir/sources.json` for a reader that counted its sources' sizes; nothing for the others."""
    if dataset.source_sizes is None:
        return
    record = {"dataset": dataset.name, "framing": dataset.options.get("framing"), "source_sizes": dataset.source_sizes}
    (Path(run_dir) / SOURCES_FILE).write_text(json.dumps(record, indent=1))


def read_record(path: str | Path) -> dict:
    """The "framing" and "source_sizes" a sources.json or an export report holds (those it has); raises ValueError
    naming the file when it is not a JSON object or its sizes are not [[width, height, count], ...]."""
    try:
        saved = json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not readable JSON ({error})") from None
    if not isinstance(saved, dict):
        raise ValueError(f"{path} should hold a JSON object, got {type(saved).__name__}")
    sizes = saved.get("source_sizes", [])
    if not (isinstance(sizes, list) and all(isinstance(s, list) and len(s) == 3 and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in s) for s in sizes)):
        raise ValueError(f"{path}: \"source_sizes\" must be a list of [width, height, count], got {sizes!r}")
    return {key: saved[key] for key in ("framing", "source_sizes") if key in saved}


def framing_record(config: DataConfig, run_dir: str | Path) -> dict:
    """How a run's training images were made square: "framing" where its dataset takes one (from its config), and
    "source_sizes" where the run recorded them (sources.json); what `export` puts in its report."""
    options = dataset_options(config)
    record = {"framing": options["framing"]} if "framing" in options else {}
    path = Path(run_dir) / SOURCES_FILE
    sizes = read_record(path).get("source_sizes") if path.is_file() else None
    if sizes is not None:
        record["source_sizes"] = sizes
    return record
