"""Choosing the tf.distribute strategy for the hardware at hand.

Example:
    strategy = make_strategy("auto", cpu_replicas=2)   # 2 logical CPU devices, MirroredStrategy
"""

from __future__ import annotations

import functools
import os

import tensorflow as tf

from fgbg_tf.config import PRECISIONS, STRATEGIES


def split_cpu(replicas: int) -> list[str]:
    """Splits the CPU into `replicas` logical devices so multi-replica code runs without GPUs.

    Must run before TensorFlow initialises its devices (before any op executes).
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is None or len(current) != replicas:
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
        except RuntimeError as error:
            raise RuntimeError(
                "--cpu-replicas must be set before TensorFlow runs its first op; start a new process"
            ) from error
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def make_strategy(name: str = "auto", cpu_replicas: int = 0, collective_timeout: float | None = None):
    """Returns the tf.distribute strategy for `name`.

    Args:
        name: "auto" (MirroredStrategy over all GPUs when there are several, else the
            default strategy), "default", "mirrored" (all GPUs, or the logical CPU
            devices) or "multiworker" (MultiWorkerMirroredStrategy; reads TF_CONFIG and
            uses TensorFlow's own collective runtime over gRPC).
        cpu_replicas: if > 1, split the CPU into that many logical devices and mirror over them.
        collective_timeout: multiworker only: seconds after which a collective op that
            still waits for a peer fails, so a dead worker stops the others instead of
            hanging them (TensorFlow's peer health check also aborts them).
    """
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")
    if cpu_replicas > 1:
        if name == "multiworker":
            raise ValueError("--cpu-replicas cannot be combined with the multiworker strategy")
        return tf.distribute.MirroredStrategy(split_cpu(cpu_replicas))
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multiworker needs TF_CONFIG describing the cluster (see trainers/README.md)")
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=collective_timeout)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


@functools.lru_cache(maxsize=None)
def cpu_has_amx() -> bool:
    """Whether this CPU has AMX bfloat16 units (Linux /proc/cpuinfo flag `amx_bf16`)."""
    try:
        with open("/proc/cpuinfo") as info:
            return any(line.startswith("flags") and " amx_bf16" in line for line in info)
    except OSError:
        return False


def resolve_precision(precision: str) -> str:
    """The Keras dtype policy a `train.precision` setting means on this machine.

    "auto" is mixed_bfloat16 on CPUs with AMX (about 5x faster than float32 there) and
    float32 everywhere else: GPUs, as the release trained, and CPUs without AMX, where
    bfloat16 convolutions are emulated and run several times slower than float32.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    if tf.config.list_physical_devices("GPU") or not cpu_has_amx():
        return "float32"
    return "mixed_bfloat16"
