"""Tests for fgbg_tf.training.step: the update on 1 and 2 replicas, zero-weight examples, the background warm-up."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fgbg_tf.loss.perceptual import PerceptualLoss
from fgbg_tf.model.factorized import build_model
from fgbg_tf.training.step import FusedAdam, landmark_background_share, make_train_step


def one_step(config, strategy, weights, batch, optimizer=keras.optimizers.Adam):
    """Runs one step from the given weights; returns (losses, new trainable weights)."""
    with strategy.scope():
        model = build_model(config.model, config.data.image_size)
        model.set_weights(weights)
        optimizer = optimizer(config.train.learning_rate)
        optimizer.build(model.trainable_variables)
    loss = PerceptualLoss(layer_weights=(0, 0, 0, 0))
    step = make_train_step(model, loss, optimizer, strategy, config, global_batch_size=4)
    dataset = tf.data.Dataset.from_tensors(batch)
    losses = step(next(iter(strategy.experimental_distribute_dataset(dataset))))
    return {k: float(v) for k, v in losses.items()}, [v.numpy() for v in model.trainable_variables]


def trainable_values(model):
    return [v.numpy() for v in model.trainable_variables]


@pytest.mark.parametrize("clip", [None, 0.5])
def test_two_replicas_equal_one_replica_on_the_same_global_batch(tiny_config, clip):
    # Plain SGD with lr 1: the weight change is exactly the aggregated gradient plus the coupled L2 term,
    # so summing instead of averaging over replicas, or adding the decay once per replica, would show.
    # (Adam's first step is almost scale-invariant and would hide both.) With clipping, the global gradient
    # (norm ~100 here) is clipped to 0.5: clipping each replica's half instead would give another update.
    tiny_config.train.learning_rate = 1.0
    # A decay as large as the gradient: adding it once per replica instead of once would change the update by tens
    # of percent.
    decay = tiny_config.train.weight_decay = 1.0
    tiny_config.train.clip_grad_norm = clip
    # The aggregation does not depend on the variant (MaskNet and BGNet are more variables of the same list), and
    # the baseline's graph is the cheaper to trace twice.
    tiny_config.model.variant = "baseline"
    keras.utils.set_random_seed(0)
    model = build_model(tiny_config.model, tiny_config.data.image_size)
    weights, reference = model.get_weights(), trainable_values(model)
    rng = np.random.default_rng(0)
    batch = {k: tf.constant(rng.uniform(-1, 1, (4, 32, 32, 3)), tf.float32) for k in ("pose", "appearance", "target")}
    batch["weight"] = tf.ones([4])
    sgd = keras.optimizers.SGD
    single, single_weights = one_step(tiny_config, tf.distribute.get_strategy(), weights, batch, sgd)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    double, double_weights = one_step(tiny_config, mirrored, weights, batch, sgd)
    assert double["loss"] == pytest.approx(single["loss"], rel=1e-5)
    # The wrong aggregations differ by factors of 2. A batch of 4 and two of 2 round differently: on AVX2 CPUs the
    # pose encoder's update differed by up to ~1 % (relative L2) in the release's float32 conv kernels, on AMX CPUs by
    # ~1e-6; so the whole update is compared, in relative L2.
    difference = np.sqrt(sum(np.sum(np.square(a - b)) for a, b in zip(single_weights, double_weights)))
    update = np.sqrt(sum(np.sum(np.square(a - before)) for a, before in zip(single_weights, reference)))
    assert difference < 0.03 * update
    assert max(np.abs(a - b).max() for a, b in zip(single_weights, reference)) > 1e-3  # the step moved the weights
    if clip:
        assert single["grad_norm/pose_encoder"] > 10 * clip  # the clip was active
        # w' = w - (clipped g + decay w), so the clipped gradient is w - w' - decay w.
        update = np.sqrt(sum(np.sum(np.square(b - a - decay * b)) for a, b in zip(single_weights, reference)))
        assert update == pytest.approx(clip, rel=1e-3)  # SGD moved by exactly the clipped gradient (+ decay)


def test_zero_weight_examples_do_not_count(tiny_config):
    # One traced step scores several batches from the same state: learning rate 0, and the weights (spectral norm
    # renormalises its kernels on every training call) restored before each call.
    tiny_config.train.weight_decay = 0.0
    model = build_model(tiny_config.model, tiny_config.data.image_size)
    optimizer = keras.optimizers.SGD(0.0)
    optimizer.build(model.trainable_variables)
    step = make_train_step(model, PerceptualLoss(layer_weights=(0, 0, 0, 0)), optimizer, tf.distribute.get_strategy(),
                           tiny_config, global_batch_size=4)
    rng = np.random.default_rng(1)
    batch = {k: tf.constant(rng.uniform(-1, 1, (4, 32, 32, 3)), tf.float32) for k in ("pose", "appearance", "target")}
    batch["weight"] = tf.constant([1.0, 1.0, 0.0, 0.0])
    corrupted = dict(batch, target=tf.concat([batch["target"][:2], 100 + batch["target"][2:]], 0))
    start = model.get_weights()

    def loss(b):
        model.set_weights(start)
        return float(step(b)["loss"])

    clean, dirty = loss(batch), loss(corrupted)
    assert clean == pytest.approx(dirty, rel=1e-6)
    weighted = loss(dict(corrupted, weight=tf.ones([4])))
    assert weighted > 100 * clean  # the corrupted targets do count once they are weighted


def counted_sgd_step(config, learning_rate, seed):
    """An SGD train step with a step counter on one device, and a random batch of 4:
    (model, optimizer, train_step, batch)."""
    model = build_model(config.model, config.data.image_size)
    optimizer = keras.optimizers.SGD(learning_rate)
    optimizer.build(model.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64)
    train_step = make_train_step(model, PerceptualLoss(layer_weights=(0, 0, 0, 0)), optimizer,
                                 tf.distribute.get_strategy(), config, global_batch_size=4, step=step)
    rng = np.random.default_rng(seed)
    batch = {k: tf.constant(rng.uniform(-1, 1, (4, 32, 32, 3)), tf.float32) for k in ("pose", "appearance", "target")}
    batch["weight"] = tf.ones([4])
    return model, optimizer, train_step, batch


def test_background_warmup_leaves_mask_and_background_untouched(tiny_config):
    # A decay as large as the gradient: during the warm-up neither a loss gradient nor the decay term may reach
    # MaskNet or BGNet (Adam would turn a bare decay term into lr-sized sign steps that erase their initial weights).
    tiny_config.train.weight_decay = 1.0
    tiny_config.train.background_warmup_steps = 1
    model, _, train_step, batch = counted_sgd_step(tiny_config, 1e-2, seed=2)
    waiting = model.mask_net.trainable_variables + model.background_net.trainable_variables

    def moved(variables, before):
        return min(np.abs(v.numpy() - b).max() for v, b in zip(variables, before))

    before, pose_before = [v.numpy() for v in waiting], trainable_values(model.pose_encoder)
    train_step(batch)  # step 0 < 1: the warm-up
    assert moved(waiting, before) == 0.0
    assert moved(model.pose_encoder.trainable_variables, pose_before) > 0
    train_step(batch)  # step 1: the factorisation takes part
    assert moved(waiting, before) > 0


def test_landmark_background_share_by_hand():
    # Part maps at 2 x 2 for a 4 x 4 mask: landmark 0 all in the top-left cell, landmark 1 half there, half in the
    # bottom-right. The mask is 1 on the top-left 2 x 2 pixels and 0.5 on one pixel of the bottom-right block.
    part_maps = np.zeros([1, 2, 2, 2], np.float32)
    part_maps[0, 0, 0] = [1.0, 0.5]
    part_maps[0, 1, 1, 1] = 0.5
    mask = np.zeros([1, 4, 4, 1], np.float32)
    mask[0, :2, :2] = 1.0
    mask[0, 3, 3] = 0.5
    part_maps, mask = tf.constant(part_maps), tf.Variable(mask)
    # Outside shares: landmark 0: 0; landmark 1: 0.5 x (1 - 0.125) = 0.4375 (0.5 averaged over the cell's 4 pixels).
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(part_maps)
        share = landmark_background_share(part_maps, mask)
    np.testing.assert_allclose(share.numpy(), [(0.0 + 0.4375) / 2], atol=1e-7)
    assert tape.gradient(share, mask) is None  # the mask is held constant: the term moves landmarks only
    # d share / d part map = -(mask's cell mean) / K: most negative where the mask is.
    np.testing.assert_allclose(tape.gradient(share, part_maps).numpy()[0, :, :, 0], [[-0.5, 0.0], [0.0, -0.0625]])


def test_landmark_foreground_weight_adds_its_term_to_the_loss(tiny_config):
    # Learning rate 0: the same state scored with and without the term; the loss differs by weight x the share.
    tiny_config.train.weight_decay = 0.0
    model = build_model(tiny_config.model, tiny_config.data.image_size)
    optimizer = keras.optimizers.SGD(0.0)
    optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(3)
    batch = {k: tf.constant(rng.uniform(-1, 1, (4, 32, 32, 3)), tf.float32) for k in ("pose", "appearance", "target")}
    batch["weight"] = tf.ones([4])
    start = model.get_weights()
    results = []
    for weight in (0.0, 2.0):
        tiny_config.loss.landmark_foreground_weight = weight
        model.set_weights(start)
        step = make_train_step(model, PerceptualLoss(layer_weights=(0, 0, 0, 0)), optimizer,
                               tf.distribute.get_strategy(), tiny_config, global_batch_size=4)
        results.append({k: float(v) for k, v in step(batch).items()})
    plain, prior = results
    assert "landmark_background" not in plain
    assert 0.0 < prior["landmark_background"] < 1.0
    assert prior["loss"] == pytest.approx(plain["loss"] + 2.0 * prior["landmark_background"], rel=1e-5)


@pytest.mark.parametrize("replicas", [1, 2])
def test_fused_adam_follows_keras_adam_on_every_replica(replicas):
    # Five steps from the same start with gradients that change every step: the fused op must give Keras' Adam to
    # float32 rounding on each replica's copy (a wrong bias correction or epsilon moves them by 1e-3 and more).
    # Reduction through one device, not collective ops: what is tested is each replica's update, and collective
    # instance keys of several strategies in one test process can collide (seen once in CI: "Shape mismatch in the
    # collective instance 100").
    strategy = (tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice())
                if replicas == 2 else tf.distribute.get_strategy())

    def run(optimizer_class):
        with strategy.scope():
            weights = [keras.Variable(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)),
                       keras.Variable(np.ones(5, np.float32))]
            optimizer = optimizer_class(1e-2, epsilon=1e-7)
            optimizer.build(weights)

        @tf.function
        def step(i):
            strategy.run(lambda: optimizer.apply([tf.sin(w * (tf.cast(i, tf.float32) + 1.0)) for w in weights], weights))

        for i in range(5):
            step(tf.constant(i))
        copies = [getattr(w.value, "values", (w.value,)) for w in weights]
        return [np.stack([c.numpy() for c in copy]) for copy in copies], int(optimizer.iterations.numpy())

    (expected, steps), (fused, fused_steps) = run(keras.optimizers.Adam), run(FusedAdam)
    assert steps == fused_steps == 5 and expected[0].shape[0] == replicas
    starts = (np.linspace(-1, 1, 12).reshape(3, 4), np.ones(5))
    for want, got, start in zip(expected, fused, starts):
        assert np.abs(want - start).max() > 0.03  # five steps of about lr each: the weights did move
        np.testing.assert_allclose(got, want, atol=2e-6)


def test_learning_rate_decay_follows_the_step_counter(tiny_config):
    # [1, 3]: the rate is lr at steps 0 and 1, lr / 2 at step 2 and 0 from step 3, set from the counter, so a run
    # resumed at step 2 continues the schedule whatever rate the optimizer restored (here a wrong one).
    tiny_config.train.learning_rate = 0.1
    tiny_config.train.learning_rate_decay = (1, 3)
    tiny_config.model.variant = "baseline"
    model, optimizer, train_step, batch = counted_sgd_step(tiny_config, tiny_config.train.learning_rate, seed=3)
    rates = [float(train_step(batch)["optimizer/learning_rate"]) for _ in range(2)]
    optimizer.learning_rate.assign(7.0)
    rates += [float(train_step(batch)["optimizer/learning_rate"]) for _ in range(2)]
    assert rates == pytest.approx([0.1, 0.1, 0.05, 0.0])
    before = trainable_values(model)
    train_step(batch)  # past the end: the rate stays 0 and nothing moves (the coupled decay is scaled by it too)
    assert max(np.abs(a - b).max() for a, b in zip(trainable_values(model), before)) == 0.0
