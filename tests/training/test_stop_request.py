"""Tests for fgbg_tf.training.stop_request: the first signal is recorded, the second stops at once."""

import os
import signal

import pytest

from fgbg_tf.training.stop_request import StopRequest


@pytest.mark.parametrize("kind", [signal.SIGINT, signal.SIGTERM])
def test_the_first_signal_is_recorded_and_the_second_interrupts(kind):
    before = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    stop = StopRequest().install()
    try:
        os.kill(os.getpid(), kind)
        assert stop.requested == kind.name
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), kind)
    finally:
        stop.restore()
    assert {number: signal.getsignal(number) for number in before} == before
