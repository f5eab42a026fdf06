"""What every command line shares: its log format, and expected failures as one `error:` line and an exit code.

Example:
    def main(argv=None) -> int:
        args = parse_args(argv)

        def body():
            evaluate_checkpoint(args.checkpoint)  # returns None: exit code 0

        return run_command(body, {(ConfigError, DatasetError): 2})
"""

from __future__ import annotations

import logging
import sys


def run_command(body, failures: dict) -> int:
    """Runs `body()` with INFO logging and returns its exit code (None counts as 0).

    Args:
        body: the command's work; returns an int exit code or None.
        failures: {exception class or tuple of classes: exit code}. Such an exception becomes "error: <message>"
            on stderr and that code, without a traceback (it is the user's input, not a bug); anything else is
            raised as usual.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        code = body()
    except tuple(_classes(failures)) as error:
        print(f"error: {error}", file=sys.stderr)
        return next(code for kinds, code in failures.items() if isinstance(error, kinds))
    return 0 if code is None else code


def _classes(failures: dict):
    for kinds in failures:
        yield from kinds if isinstance(kinds, tuple) else (kinds,)
