"""train() under every strategy it offers, from the command line as a user runs it.

The losses of one step are the sums of per-example losses over the global batch, so
a run on R replicas of b images must reproduce a one-replica run of R x b images
step by step: same batches (the pipeline hands replica r examples [r b, (r + 1) b)),
same aggregated gradient, same update.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_OVERRIDES, shared_folder
from fgbg_tf.config import ConfigError, load_config
from fgbg_tf.evaluation.runner import evaluate_checkpoint
from fgbg_tf.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
# What these tests compare is the data and state path: which examples each replica gets, restore on another
# replica count, the forward pass, the chief's logs. At a vanishing learning rate every topology gives the same
# losses to float32 rounding (2e-6 measured over 3 steps), while a wrong batch changes a step's loss by percents.
# The update itself is compared in training/test_step.py with SGD, where the aggregation is visible: with Adam, one replica
# batch size rounds differently from another (~1e-4 relative in the gradient), and Adam's first steps, lr * sign(g),
# move every element whose gradient is within that rounding of zero a full step in a random direction (measured: two
# steps at lr 1e-6 differ by 6e-4), which would drown any tolerance that can still see a wrong batch.
RTOL = 1e-5
STILL = ["train.learning_rate=1e-12", "train.weight_decay=0"]
# The baseline variant: the distribution code does not depend on the variant, and tracing a step once per replica
# (8 times for the paper's topology) is most of these tests' time, so the graph without MaskNet and BGNet is traced.
# The update's aggregation over replicas is checked in training/test_step.py, with SGD.
VARIANT = "model.variant=baseline"


def tiny(batch_size, steps, *extra):
    return TINY_OVERRIDES + [f"train.batch_size={batch_size}", f"train.max_steps={steps}", "train.checkpoint_every=2",
                             "train.image_every=1000", VARIANT, *STILL, *extra]


def logged_losses(run: Path) -> dict[int, float]:
    """step -> loss/loss from every TensorBoard file of a run folder (log_every is 1 in these configs)."""
    losses = {}
    for path in sorted((run / "logs").glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag == "loss/loss":
                    losses[event.step] = float(tf.make_ndarray(value.tensor))
    return losses


# How the command-line runs execute their tf.functions. "graph" is the product as users run it. "unoptimised": the
# same graph with TensorFlow's graph optimiser (grappler) off: what it changes (fused kernels, folded constants) is
# not what these tests check, and it costs seconds per worker. "eager": no tf.function is traced; the replicas run
# their ops one by one. Tracing the step once per replica (8 x ~9,000 ops) and instantiating that graph were 70 of
# the 8-replica test's 92 s; eagerly the same run checks the same path of train() (strategy, sharded data, restore
# on another replica count, the chief's writes) and the same losses to float32 rounding. The traced multi-replica
# step itself is covered by the 2-replica test below, the cluster test and training/test_step.py.
ENTRY = {
    "graph": "runpy.run_module('fgbg_tf.train', run_name='__main__', alter_sys=True)",
    "unoptimised": "tf.config.optimizer.set_experimental_options({'disable_meta_optimizer': True})",
    "eager": "tf.config.run_functions_eagerly(True)",
}


def cli(args, env=None, mode="graph", **kwargs):
    prologue = "" if mode == "graph" else f"import tensorflow as tf; {ENTRY[mode]}; "
    command = [sys.executable, "-c", f"import runpy; {prologue}{ENTRY['graph']}", "--no-progress", *args]
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def run_cli(args, env=None, timeout=600, mode="graph"):
    process = cli(args, env, mode)
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return out, err


def settings(overrides):
    return [item for override in overrides for item in ("--set", override)]


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory, worker_id):
    """One replica of 8 images for 3 steps (a run folder shared by the test processes; copy it to change it)."""

    def make(folder):
        history = train(load_config("synthetic", overrides=tiny(8, 3)), folder / "run", progress=False)
        (folder / "losses.json").write_text(json.dumps([h["loss"] for h in history]))

    return shared_folder(tmp_path_factory, worker_id, "one_replica", make) / "run"


@pytest.fixture(scope="session")
def reference(reference_run):
    """The reference run's losses, which every topology below must reproduce."""
    return json.loads((reference_run.parent / "losses.json").read_text())


@pytest.fixture
def unoptimised():
    """Grappler off inside the test (see ENTRY), restored after it."""
    before = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    yield
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": before.get("disable_meta_optimizer", False)})


def test_two_replicas_train_resume_on_one_replica_and_evaluate(reference, tmp_path, unoptimised):
    # Traced, as users run it: the multi-replica graph of the whole train() loop.
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    run = tmp_path / "run"
    two = [h["loss"] for h in train(load_config("synthetic", overrides=tiny(4, 2)), run, mirrored, progress=False)]
    np.testing.assert_allclose(two, reference[:2], rtol=RTOL)
    assert (run / "checkpoints" / "ckpt-2.index").exists()
    # The same global batch on one replica continues exactly where the two replicas stopped.
    one = [h["loss"] for h in train(load_config("synthetic", overrides=tiny(8, 3)), run, progress=False)]
    np.testing.assert_allclose(one, reference[2:], rtol=RTOL)
    report = evaluate_checkpoint(run, output=tmp_path / "eval", num_images=0)
    assert report["step"] == 3 and report["splits"]["report"]["frames"] > 0


def test_resume_with_another_global_batch_is_refused(reference_run, tmp_path):
    shutil.copytree(reference_run, tmp_path / "run")
    # 2 x 2 images where the run had 1 x 8: the data stream's position would no longer match the step.
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with pytest.raises(ConfigError, match=r"global batch of 8 .*this run's is 4 \(2 replica\(s\) x train.batch_size 2"):
        train(load_config("synthetic", overrides=tiny(2, 4)), tmp_path / "run", mirrored, progress=False)


def test_eight_cpu_replicas_from_the_command_line_resume_a_one_replica_run(reference, reference_run, tmp_path):
    # The paper's topology, 8 replicas of 1 image, from the command line, continuing the one-replica run of 8 images
    # from its step-2 checkpoint (the other way round from the test above): its step 3 is the reference's.
    # Eagerly (see ENTRY): traced, the step's 8 copies and their graph took 70 s before the first step. The limit only
    # catches a hang, and leaves room for a loaded machine.
    run = tmp_path / "run"
    shutil.copytree(reference_run, run, ignore=shutil.ignore_patterns("ckpt-3.*", "logs"))
    run_cli(["--cpu-replicas", "8", "--output", str(run), *settings(tiny(1, 3))], timeout=1500, mode="eager")
    assert (run / "checkpoints" / "ckpt-3.index").exists()
    losses = logged_losses(run)
    assert sorted(losses) == [3]
    np.testing.assert_allclose(losses[3], reference[2], rtol=RTOL)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def cluster_env(ports, index):
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}


def test_two_workers_match_one_replica_only_the_chief_writes_and_a_killed_worker_stops_the_other(reference, tmp_path):
    # One cluster for both checks (starting one costs two TensorFlow start-ups and traces): it trains on past step 3,
    # its steps 1-3 must be the one-replica run's, then one worker is killed and the chief must stop with a clear
    # error within the collective timeout, not hang.
    ports = free_ports(2)
    run = tmp_path / "run"
    args = ["--strategy", "multiworker", "--collective-timeout", "20", "--output", str(run), *settings(tiny(4, 10_000))]
    chief, worker = (cli(args, cluster_env(ports, i), mode="unoptimised") for i in range(2))
    try:
        deadline = time.monotonic() + 400
        while not (run / "checkpoints" / "ckpt-4.index").exists():
            assert time.monotonic() < deadline and chief.poll() is None and worker.poll() is None, (
                "the cluster did not reach step 4")
            time.sleep(0.5)
        worker.send_signal(signal.SIGKILL)
        _, err = chief.communicate(timeout=240)
    finally:
        for process in (chief, worker):
            if process.poll() is None:
                process.kill()
    assert chief.returncode == 3, err[-3000:]
    assert "stopped answering" in err and "Restart every worker" in err
    losses = logged_losses(run)
    np.testing.assert_allclose([losses[s] for s in (1, 2, 3)], reference, rtol=RTOL)
    written = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())
    assert [p for p in written if not p.startswith(("checkpoints/", "logs/"))] == ["config.yaml"]
    assert len(list((run / "logs").iterdir())) == 1  # one event file: the chief's
