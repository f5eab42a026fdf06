"""Choosing the tf.distribute strategy for the hardware at hand.

Example:
    strategy = make_strategy("auto", cpu_replicas=2)   # 2 logical CPU devices, MirroredStrategy
"""

from __future__ import annotations

import tensorflow as tf

STRATEGIES = ("auto", "default", "mirrored", "multiworker")


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


def make_strategy(name: str = "auto", cpu_replicas: int = 0) -> tf.distribute.Strategy:
    """Returns the strategy for `name`.

    Args:
        name: "auto" (MirroredStrategy over all GPUs when there are several, else the
            default strategy), "default", "mirrored" (all GPUs, or the logical CPU
            devices) or "multiworker" (MultiWorkerMirroredStrategy; reads TF_CONFIG).
        cpu_replicas: if > 1, split the CPU into that many logical devices and mirror over them.
    """
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")
    if cpu_replicas > 1:
        if name == "multiworker":
            raise ValueError("--cpu-replicas cannot be combined with the multiworker strategy")
        return tf.distribute.MirroredStrategy(split_cpu(cpu_replicas))
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
