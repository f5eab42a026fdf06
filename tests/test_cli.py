"""Tests for fgbg_tf.cli: what the command lines share."""

import pytest

from fgbg_tf.cli import run_command


def test_expected_failures_become_one_error_line_and_their_code(capsys):
    def fails(error):
        def body():
            raise error
        return body

    failures = {(KeyError, ValueError): 2, OSError: 3}
    assert run_command(fails(ValueError("bad value in config.yaml")), failures) == 2
    assert capsys.readouterr().err == "error: bad value in config.yaml\n"
    assert run_command(fails(FileNotFoundError("no such run")), failures) == 3  # a subclass of OSError
    with pytest.raises(ZeroDivisionError):  # a bug is not the user's input: it keeps its traceback
        run_command(fails(ZeroDivisionError()), failures)
    assert run_command(lambda: None, failures) == 0
    assert run_command(lambda: 1, failures) == 1
