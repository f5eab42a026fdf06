"""One training step (paper eq. 1-7 and the loss), as a tf.function under any tf.distribute strategy.

`make_train_step` returns the function `loop.train` calls once per step: the forward pass, the reconstruction
loss over the global batch, the coupled L2 decay, optional clipping of the global gradient, the update, and the
instruments of `docs/training.md` section 2.

Example:
    step = make_train_step(model, build_loss(config), optimizer, strategy, config, global_batch_size=16, step=counter)
    results = step(batch)   # {"loss", "pixel", "relu1_2", ..., "grad_norm/...", "mask/...", "landmarks/..."}
"""

from __future__ import annotations

import keras
import tensorflow as tf

from fgbg_tf.config import Config
from fgbg_tf.training.distribute import resolve_precision
from fgbg_tf.loss.perceptual import PerceptualLoss
from fgbg_tf.loss.vgg19 import fetch_vgg19_weights


def build_loss(config: Config, precision: str | None = None) -> PerceptualLoss:
    """The reconstruction loss a config describes, computed in `precision` (default: the run's, resolved).

    Fetches the VGG19 weights first when the loss needs them and the config names no file (the explicit
    acquisition step of `fgbg_tf/loss/vgg19.py`; a no-op once they are on this machine).
    """
    if any(config.loss.layer_weights) and config.loss.vgg_weights is None:
        fetch_vgg19_weights()
    return PerceptualLoss(
        layer_weights=config.loss.layer_weights,
        pixel_weight=config.loss.pixel_weight,
        scale=config.loss.scale,
        feature_scale=config.loss.feature_scale,
        weights=config.loss.vgg_weights,
        dtype=precision or resolve_precision(config.train.precision),
    )


class FusedAdam(keras.optimizers.Adam):
    """Keras' Adam whose update of each variable is TensorFlow's one fused op, `ResourceApplyAdam`.

    The same rule as `keras.optimizers.Adam` (m, v, bias-corrected step, epsilon outside the square root) and the
    same variables, so checkpoints are interchangeable; Keras writes it as some 40 ops per variable, which made the
    optimizer 43 % of the training graph and, with a copy per replica, most of a multi-replica step's tracing and
    start-up (docs/benchmarks.md). Args and example as `keras.optimizers.Adam`, e.g. `FusedAdam(1e-3)`.
    """

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        if self.amsgrad:
            return super()._distributed_tf_update_step(distribution, grads_and_vars, learning_rate)
        # The step's scalars once, not once per variable and device: on 8 replicas the per-variable copies were
        # some 12,000 ops of the traced step.
        self._scalars = self._step_scalars(learning_rate)
        try:
            super()._distributed_tf_update_step(distribution, grads_and_vars, learning_rate)
        finally:
            del self._scalars

    def _step_scalars(self, learning_rate) -> dict:
        step = tf.cast(self.iterations + 1, tf.float32)
        beta_1, beta_2 = tf.constant(self.beta_1, tf.float32), tf.constant(self.beta_2, tf.float32)
        return dict(beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
                    lr=tf.cast(learning_rate, tf.float32), beta1=beta_1, beta2=beta_2,
                    epsilon=tf.constant(self.epsilon, tf.float32))

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        shared = getattr(self, "_scalars", None) or self._step_scalars(learning_rate)  # also when called directly
        scalars = {k: tf.cast(v, dtype) for k, v in shared.items()}
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(self._momentums[index]), v=_handle(self._velocities[index]),
            grad=tf.cast(gradient, dtype), **scalars,
        )


def _handle(variable):
    """The resource handle of a Keras or TF variable (inside a distributed update: this device's copy)."""
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle


def build_optimizer(config: Config) -> FusedAdam:
    """The run's optimizer: Adam at train.learning_rate and train.adam_epsilon (the coupled L2 decay and clipping
    are applied to the gradients in `make_train_step`)."""
    return FusedAdam(config.train.learning_rate, epsilon=config.train.adam_epsilon)


# Sub-networks whose gradient norms are logged (attribute of FactorizedLandmarkModel -> TensorBoard name).
SUBNETWORKS = {
    "pose_encoder": "pose_encoder",
    "appearance_encoder": "appearance_encoder",
    "decoder": "foreground_decoder",
    "mask_net": "mask_net",
    "background_net": "background_net",
}


def make_train_step(model, loss_fn, optimizer, strategy, config: Config, global_batch_size: int, step=None):
    """Returns a tf.function running one distributed optimisation step on a distributed batch.

    The returned dict holds the global batch's loss terms (sums over replicas) and
    the training instruments (`instruments`, averaged over replicas). With `step`, the
    counter is advanced in the same graph call as the update, so an interrupt can
    never separate the two (a checkpoint's step always matches its weights).
    """
    replicas = strategy.num_replicas_in_sync
    # PyTorch's Adam(weight_decay=wd) adds wd * w to the gradient (coupled L2), unlike
    # Keras' decoupled `weight_decay`. Gradients are summed over replicas, so each adds its share.
    decay = config.train.weight_decay / replicas
    clip = config.train.clip_grad_norm
    warmup = config.train.background_warmup_steps
    decay_steps = config.train.learning_rate_decay
    if (warmup or decay_steps) and step is None:
        raise ValueError("train.background_warmup_steps and train.learning_rate_decay need the step counter")
    prior_weight = config.loss.landmark_foreground_weight
    position = {id(v): i for i, v in enumerate(model.trainable_variables)}
    groups = {name: [position[id(v)] for v in getattr(model, attr).trainable_variables]
              for attr, name in SUBNETWORKS.items() if hasattr(model, attr)}
    # During the warm-up MaskNet and BGNet get no loss gradient, and must get no decay either: Adam turns the bare
    # decay term wd * w into steps of lr * sign(w), which would walk their initial weights to zero in a few hundred
    # steps (PyTorch's Adam skips parameters without a gradient altogether).
    waiting = set(groups.get("mask_net", []) + groups.get("background_net", [])) if warmup else set()

    def replica_step(batch):
        with tf.GradientTape() as tape:
            outputs = model({"pose": batch["pose"], "appearance": batch["appearance"]}, training=True)
            reconstruction = outputs["reconstruction"]
            if warmup and "background" in outputs:
                # The warm-up's reconstruction is the foreground alone; MaskNet and BGNet get no gradient yet.
                reconstruction = tf.cond(step < warmup, lambda: outputs["foreground"], lambda: reconstruction)
            losses = loss_fn(reconstruction, batch["target"])
            if prior_weight and "mask" in outputs:
                losses["landmark_background"] = landmark_background_share(outputs["part_maps"], outputs["mask"])
                losses["total"] = losses["total"] + prior_weight * losses["landmark_background"]
            # Per-example losses over the global batch, so replicas add up to the batch mean.
            weight = batch["weight"] / global_batch_size
            loss = tf.reduce_sum(losses["total"] * weight)
        variables = model.trainable_variables
        gradients = tape.gradient(loss, variables)
        if clip and replicas > 1:
            # Clip the global batch's gradient, as the release's clip_grad_norm_ does on one GPU: the
            # replicas' sum, not each replica's share (Keras' global_clipnorm clips before the all-reduce).
            gradients = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, gradients)
        # Norms of the global gradient when clipping (or on one replica), else of this replica's share.
        instruments = training_instruments(outputs)
        for name, indices in groups.items():
            instruments[f"grad_norm/{name}"] = tf.linalg.global_norm([gradients[i] for i in indices])
        if clip:
            gradients, _ = tf.clip_by_global_norm(gradients, clip)
            if replicas > 1:
                gradients = [g / replicas for g in gradients]  # optimizer.apply sums the replicas' gradients again
        terms = {k: tf.reduce_sum(v * weight) for k, v in losses.items()}
        started = tf.cast(step >= warmup, tf.float32) if waiting else 1.0
        gradients = [g + decay * (started if i in waiting else 1.0) * v
                     for i, (g, v) in enumerate(zip(gradients, variables))]
        optimizer.apply(gradients, variables)
        return terms, instruments

    @tf.function
    def train_step(batch):
        # Set from the config (and the step counter) before every update: a resumed run continues a decay exactly,
        # and a checkpoint's rate (the optimizer's learning_rate is one of its variables) never overrides a new
        # train.learning_rate given to the resumed run.
        rate = config.train.learning_rate
        optimizer.learning_rate.assign(rate * decay_factor(step, *decay_steps) if decay_steps else rate)
        terms, instruments = strategy.run(replica_step, args=(batch,))
        results = {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in terms.items()}
        results["loss"] = results.pop("total")
        results.update({k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in instruments.items()})
        results["optimizer/learning_rate"] = tf.cast(optimizer.learning_rate, tf.float32)
        if step is not None:
            step.assign_add(1)
        return results

    return train_step


def decay_factor(step, start: int, end: int):
    """train.learning_rate_decay's multiplier at `step`: 1 before `start`, falling linearly to 0 at `end`."""
    remaining = tf.cast(end - step, tf.float32) / float(end - start)
    return tf.clip_by_value(remaining, 0.0, 1.0)


def landmark_background_share(part_maps, mask):
    """Per example, the mean over landmarks of each part map's mass outside the mask, [B] in [0, 1].

    The deviation `loss.landmark_foreground_weight` (docs/training.md, run U): the mask [B, S, S, 1] is averaged
    over the 2 x 2 pixels each part-map cell covers (as `evaluation.metrics.foreground_containment` does with the
    true mask) and held constant, so the term moves landmarks, never the mask. A constant mask (the warm-up's,
    or a template) gives every part map the same share whatever its position, hence no gradient.
    """
    factor = mask.shape[1] // part_maps.shape[1]
    foreground = tf.stop_gradient(tf.nn.avg_pool2d(tf.cast(mask, tf.float32), factor, factor, "VALID"))
    inside = tf.reduce_sum(tf.cast(part_maps, tf.float32) * foreground, axis=[1, 2])  # [B, K]
    return 1.0 - tf.reduce_mean(inside, axis=-1)


def training_instruments(outputs: dict) -> dict:
    """What shows whether the factorisation is learning (issue: a template mask has no spread).

    mask/mean and mask/spread (per-pixel standard deviation across the batch, averaged
    over pixels: 0 for one template shared by every image), mask/background_share
    mean(1 - M), landmarks/spread (standard deviation of each landmark's mean across
    the batch, averaged over landmarks, in [-1, 1] units) and landmarks/covariance_det.
    """
    mean = outputs["mean"]
    cov = outputs["covariance"]
    values = {
        "landmarks/spread": tf.reduce_mean(tf.math.reduce_std(mean, axis=0)),
        "landmarks/covariance_det": tf.reduce_mean(tf.linalg.det(cov)),
    }
    if "mask" in outputs:
        mask = outputs["mask"]
        values["mask/mean"] = tf.reduce_mean(mask)
        values["mask/spread"] = tf.reduce_mean(tf.math.reduce_std(mask, axis=0))
        values["mask/background_share"] = 1.0 - values["mask/mean"]
    return values
