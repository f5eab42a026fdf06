"""Stopping a training run between steps when SIGINT (Ctrl-C) or SIGTERM (timeout, Docker, Kubernetes, Slurm) asks.

A KeyboardInterrupt raised wherever the signal lands can fall between a step's update and its log line (the
checkpoint then holds a step whose loss was never written) or, during start-up, inside code that swallows it. While
the loop runs, `StopRequest` only records the first signal; the loop asks `requested` once a step is complete
(updated, logged, checkpointed when due) and stops there, so the final checkpoint and the logs end at the same step.
A second signal stops at once, as before.

Example:
    stop = StopRequest().install()
    try:
        for batch in batches:
            if stop.requested:
                raise KeyboardInterrupt
            ...
    finally:
        stop.restore()
"""

from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Records SIGINT / SIGTERM instead of raising at once (see the module docstring).

    Attributes:
        requested: the name of the first signal received ("SIGINT", "SIGTERM"), or None.
    """

    def __init__(self):
        self.requested: str | None = None
        self._saved: dict = {}

    def install(self) -> "StopRequest":
        # Python lets only the main thread set handlers; elsewhere (a test's thread) signals keep their handlers.
        if threading.current_thread() is threading.main_thread():
            # A signal the process ignores on purpose (a launcher's worker, where the parent answers Ctrl-C) stays
            # ignored; one whose handler lives in C (getsignal gives None) cannot be put back, so it is left alone.
            current = {kind: signal.getsignal(kind) for kind in SIGNALS}
            self._saved = {kind: h for kind, h in current.items() if h is not None and h is not signal.SIG_IGN}
            for kind in self._saved:
                signal.signal(kind, self._handle)
        return self

    def _handle(self, number, frame) -> None:
        if self.requested is not None:
            raise KeyboardInterrupt
        self.requested = signal.Signals(number).name

    def restore(self) -> None:
        for kind, handler in self._saved.items():
            signal.signal(kind, handler)
        self._saved = {}
