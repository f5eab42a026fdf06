"""Tests for fgbg_tf.cli: what the command lines share."""

import os
import subprocess
import sys

import pytest

from fgbg_tf.cli import STARTUP_NOTICES, run_command


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


COMMANDS = ("train", "evaluate", "export", "predict", "benchmark", "landmark_study", "weights")


def _python(code: str, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TF_")} | env
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=environment)


def test_help_answers_without_importing_tensorflow():
    code = f"""
import importlib, sys
for name in {COMMANDS!r}:
    try:
        importlib.import_module("fgbg_tf." + name).main(["--help"])
    except SystemExit as stop:
        assert stop.code == 0, (name, stop.code)
    else:
        raise AssertionError(name + ": --help did not exit")
    print("after", name, "--help, tensorflow loaded:", "tensorflow" in sys.modules)
"""
    result = _python(code)
    assert result.returncode == 0, result.stderr
    loaded = [line for line in result.stdout.splitlines() if line.startswith("after ")]
    assert loaded == [f"after {name} --help, tensorflow loaded: False" for name in COMMANDS]


def test_benchmark_names_match_the_benchmarks():
    from fgbg_tf import benchmark
    from fgbg_tf.evaluation import speed

    assert benchmark.BENCHMARKS == tuple(speed.BENCHMARKS)


def test_tensorflow_start_up_notices_are_left_out_unless_asked_for():
    code = "from fgbg_tf.cli import import_tensorflow; import_tensorflow(); import sys; print('kept', file=sys.stderr)"
    shown = _python(code, TF_CPP_MIN_LOG_LEVEL="0")
    assert shown.returncode == 0, shown.stderr
    if not any(notice in shown.stderr for notice in STARTUP_NOTICES):
        pytest.skip("this TensorFlow build prints no start-up notice")
    quiet = _python(code)  # the package's default, TF_CPP_MIN_LOG_LEVEL=3
    assert quiet.returncode == 0, quiet.stderr
    assert not any(notice in quiet.stderr for notice in STARTUP_NOTICES)
    assert quiet.stderr.endswith("kept\n")  # stderr still works after the import
