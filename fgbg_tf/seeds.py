"""Seeds of the stateless random ops every perturbation uses.

Example:
    seed = check_seed(seed)   # int64 [2], ready for tf.random.stateless_* ops
"""

import tensorflow as tf


def check_seed(seed):
    """Validates a stateless-RNG seed (int32/int64, shape [2]) and returns it as int64."""
    seed = tf.convert_to_tensor(seed)
    if seed.dtype not in (tf.int32, tf.int64):
        raise ValueError(f"seed: expected an int32/int64 tensor of shape [2], got dtype {seed.dtype.name}")
    if seed.shape.rank is not None and seed.shape.as_list() != [2]:
        raise ValueError(f"seed: expected an int32/int64 tensor of shape [2], got shape {seed.shape}")
    # stateless_split draws in the seed's dtype, so int32 and int64 seeds would otherwise give different streams.
    return tf.cast(seed, tf.int64)
