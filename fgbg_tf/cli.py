"""What every command line shares: its log format, expected failures as one `error:` line and an exit code, and a
quiet import of TensorFlow after the arguments are parsed (so `--help` and a mistyped flag answer at once).

Example:
    def main(argv=None) -> int:
        args = parse_args(argv)
        import_tensorflow()
        from fgbg_tf.evaluation.runner import evaluate_checkpoint

        def body():
            evaluate_checkpoint(args.checkpoint)  # returns None: exit code 0

        return run_command(body, {(ConfigError, DatasetError): 2})
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading


def run_command(body, failures: dict) -> int:
    """Runs `body()` with INFO logging and returns its exit code (None counts as 0).

    Args:
        body: the command's work; returns an int exit code or None.
        failures: {exception class or tuple of classes: exit code}. Such an exception becomes "error: <message>"
            on stderr and that code, without a traceback (it is the user's input, not a bug); anything else is
            raised as usual.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # TensorFlow's checkpoint writer logs an INFO line through absl at every save ("Sharding callback duration").
    logging.getLogger("absl").setLevel(logging.WARNING)
    try:
        code = body()
    except tuple(_classes(failures)) as error:
        print(f"error: {error}", file=sys.stderr)
        return next(code for kinds, code in failures.items() if isinstance(error, kinds))
    return 0 if code is None else code


def _classes(failures: dict):
    for kinds in failures:
        yield from kinds if isinstance(kinds, tuple) else (kinds,)


# What TensorFlow's C++ runtime writes to stderr while it loads, once per shared library, whatever
# TF_CPP_MIN_LOG_LEVEL says: absl writes every line logged before its own set-up, INFO included.
STARTUP_NOTICES = ("All log messages before absl::InitializeLog() is called", "oneDNN custom operations are on")


def import_tensorflow() -> None:
    """Imports TensorFlow, leaving its start-up notices out of stderr when TF_CPP_MIN_LOG_LEVEL asks for quiet.

    The package sets TF_CPP_MIN_LOG_LEVEL=3 unless the user set it; at 0 nothing is filtered. Every other line
    written while TensorFlow loads (a warning, a failure's message) is passed on as it comes.
    """
    if "tensorflow" in sys.modules:
        return
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") == "0":
        importlib.import_module("tensorflow")
        return
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    forward = threading.Thread(target=_forward_lines, args=(read_end, saved), daemon=True)
    forward.start()
    try:
        importlib.import_module("tensorflow")
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's only write end: the thread reads to its end and stops
        forward.join()
        os.close(saved)


def _forward_lines(read_end: int, target: int) -> None:
    with os.fdopen(read_end, "rb") as pipe:
        for line in pipe:
            if not any(notice.encode() in line for notice in STARTUP_NOTICES):
                os.write(target, line)
