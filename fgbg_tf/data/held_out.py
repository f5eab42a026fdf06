"""Which of a user's own files are held out for testing, never trained on (the `images` and `videos` datasets).

`data.options.test_images` (`test_videos`) is either a fraction of the files, chosen by a hash of each file's path
relative to data_dir, or a list of those relative paths. Ranking by a hash of the path, not by the order files are
found in, gives the same split on every machine and keeps each file's rank when files are added; at least one file
stays in training.

Example:
    held = held_out_names(["a.jpg", "b.jpg", "c.jpg"], 0.2, "data.options.test_images", "images")
"""

from __future__ import annotations

import hashlib

from fgbg_tf.data.base import DatasetError


def held_out_names(names: list[str], held_out, key: str, kind: str) -> set[str]:
    """The held-out files among `names` (relative paths): those `held_out` lists, or the fraction `held_out` of them
    that ranks first by a hash of the name. `key` (the option) and `kind` ("images", "videos") name them in errors."""
    if not (isinstance(held_out, list) and all(isinstance(n, str) for n in held_out)
            or isinstance(held_out, (int, float)) and not isinstance(held_out, bool) and 0 <= held_out < 1):
        raise DatasetError(f"{key} must be a fraction in [0, 1) or a list of {kind} paths relative to data_dir, "
                           f"got {held_out!r}")
    if isinstance(held_out, list):
        unknown = sorted(set(held_out) - set(names))
        if unknown:
            raise DatasetError(f"{key} names {unknown}, which are not {kind} under data_dir; the {kind} are "
                               f"{names[:10]}{' ...' if len(names) > 10 else ''}")
        if set(held_out) >= set(names):
            raise DatasetError(f"{key} holds out every one of the {kind}; leave at least one to train on")
        return set(held_out)
    count = min(round(held_out * len(names)), len(names) - 1)
    ranked = sorted(names, key=lambda name: hashlib.sha256(name.encode()).hexdigest())
    return set(ranked[:count])
