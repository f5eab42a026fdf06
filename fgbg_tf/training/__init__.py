"""Training: the loop (`loop`), one optimisation step (`step`), checkpoints, and the tf.distribute strategy."""
