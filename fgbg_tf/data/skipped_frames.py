"""The training loop's report of frames a reader could not decode (they reach the step with zero loss weight)."""

from __future__ import annotations

import logging

import numpy as np

from fgbg_tf.data.base import DatasetError

logger = logging.getLogger("fgbg_tf.train")


class SkippedFrames:
    """Collects the frames a reader could not decode, reports them once per epoch, and stops a run that has none.

    A training set whose frames are all unreadable would otherwise train to the end on zero-weight batches (loss 0,
    exit code 0): `add` raises DatasetError when the first `first_batches` batches (or all `steps` of a shorter
    run), or a whole epoch, hold no readable frame.
    """

    def __init__(self, epoch_size: int, first_batches: int = 10, steps: int | None = None):
        self.epoch_size = epoch_size
        # A run of fewer steps (`steps`: those it will train) is judged on all of them, not let through to exit 0.
        self.first_batches = first_batches if steps is None else min(first_batches, steps)
        self.epoch = None
        self.sources: list[str] = []
        self.batches = self.readable = self.readable_in_epoch = 0

    def add(self, batch) -> None:
        weight = _local(batch["weight"])
        index = _local(batch["index"])
        epoch = int(index.max()) // self.epoch_size
        if self.epoch is not None and epoch != self.epoch:
            if not self.readable_in_epoch:
                self._stop(f"epoch {self.epoch}")
            self.report()
            self.readable_in_epoch = 0
        self.epoch = epoch
        bad = weight == 0
        if bad.any():
            self.sources += [s.decode() for s in _local(batch["source"])[bad]]
        self.batches += 1
        self.readable += int((~bad).sum())
        self.readable_in_epoch += int((~bad).sum())
        if self.batches == self.first_batches and not self.readable:
            self._stop(f"the first {self.first_batches} batches")

    def _stop(self, where: str) -> None:
        unique = sorted(set(self.sources))
        raise DatasetError(
            f"no readable training frame in {where} ({len(self.sources)} skipped, e.g. {', '.join(unique[:5])}); "
            "check data.data_dir and the files"
        )

    def report(self) -> None:
        if self.sources:
            unique = sorted(set(self.sources))
            logger.warning(
                "epoch %d: skipped %d unreadable frame(s) (zero loss weight): %s%s",
                self.epoch, len(self.sources), ", ".join(unique[:10]), " ..." if len(unique) > 10 else "",
            )
        self.sources = []


def _local(value) -> np.ndarray:
    """Concatenates a (possibly per-replica) tensor into one numpy array."""
    parts = value.values if hasattr(value, "values") else (value,)
    return np.concatenate([np.asarray(p) for p in parts])
