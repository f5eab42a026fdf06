import shutil

import numpy as np
import pytest
import keras
import tensorflow as tf

from fgbg_tf.checkpoints import CheckpointError, restore_newest
from fgbg_tf.config import ConfigError, load_config
from fgbg_tf.data import DatasetError
from fgbg_tf.loss.perceptual import PerceptualLoss
from fgbg_tf.model.factorized import build_model
from fgbg_tf.train import SkippedFrames, main, make_train_step, prepare_output, train


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


def test_resume_continues_with_identical_losses(tiny_config, tmp_path):
    tiny_config.train.max_steps = 4
    tiny_config.train.checkpoint_every = 2
    tiny_config.train.image_every = 1000  # pictures are not what is compared; the fg/bg probe still runs every step
    straight = [h["loss"] for h in train(tiny_config, tmp_path / "straight", progress=False)]
    assert list((tmp_path / "straight" / "logs").glob("events.out.tfevents.*"))
    # Resume a copy of the straight run's step-2 checkpoint: steps 3 and 4 must repeat its losses. A resume that
    # lost Adam's moments, the step counter or the data position would change step 4 by percents, not 1e-6.
    resumed = tmp_path / "resumed" / "checkpoints"
    resumed.mkdir(parents=True)
    shutil.copy(tmp_path / "straight" / "config.yaml", tmp_path / "resumed")
    for part in (tmp_path / "straight" / "checkpoints").glob("ckpt-2.*"):
        shutil.copy(part, resumed)
    tf.compat.v1.train.update_checkpoint_state(str(resumed), str(resumed / "ckpt-2"))
    continued = [h["loss"] for h in train(tiny_config, tmp_path / "resumed", progress=False)]
    np.testing.assert_allclose(continued, straight[2:], rtol=1e-4)
    assert (resumed / "ckpt-4.index").exists()


def test_restore_falls_back_past_damaged_checkpoints_and_sets_them_aside(tmp_path, caplog):
    value = tf.Variable(0.0)
    checkpoint = tf.train.Checkpoint(v=value)
    manager = tf.train.CheckpointManager(checkpoint, tmp_path, 5)
    for number in (2, 4, 6):
        value.assign(float(number))
        manager.save(checkpoint_number=number)
    (tmp_path / "checkpoint").write_text("garbage {")  # the state file: latest_checkpoint() now says None
    (tmp_path / "ckpt-6.data-00000-of-00001").write_bytes(b"xx")  # a truncated newest checkpoint
    value.assign(-1.0)
    assert restore_newest(checkpoint, tmp_path) == str(tmp_path / "ckpt-4")
    assert float(value.numpy()) == 4.0 and "ckpt-6 does not read" in caplog.text
    assert (tmp_path / "ckpt-6.unreadable.index").is_file() and not (tmp_path / "ckpt-6.index").exists()
    for part in tmp_path.glob("ckpt-[24].data*"):
        part.write_bytes(b"")
    with pytest.raises(CheckpointError, match="no checkpoint .* reads.*Nothing was overwritten"):
        restore_newest(checkpoint, tmp_path)
    assert restore_newest(checkpoint, tmp_path / "empty") is None


def test_output_folder_of_a_different_model_or_data_stream_is_refused(tiny_config, tmp_path):
    prepare_output(tmp_path, tiny_config)
    tiny_config.model.num_landmarks = 6
    with pytest.raises(ConfigError, match="different model.*model.num_landmarks: 4 in the run, 6 now"):
        prepare_output(tmp_path, tiny_config)
    tiny_config.model.num_landmarks = 4
    # Another data stream: other videos, or another order, would not continue the run's checkpoint either.
    tiny_config.data.options = {**tiny_config.data.options, "train_videos": 3}
    tiny_config.train.seed = 5
    with pytest.raises(ConfigError, match=r"data.options: .*; train.seed: 0 in the run, 5 now"):
        prepare_output(tmp_path, tiny_config)
    tiny_config.data.options = {**tiny_config.data.options, "train_videos": 2}
    tiny_config.train.seed = 0
    # Training settings and the data's location may change between sessions of a run.
    tiny_config.train.max_steps = 10
    tiny_config.train.learning_rate = 1e-4
    tiny_config.data.data_dir = str(tmp_path / "moved")
    prepare_output(tmp_path, tiny_config)


def test_a_start_that_fails_on_its_data_leaves_no_config_behind(tmp_path):
    config = load_config("faces5pt", overrides=[f"data.data_dir={tmp_path / 'nowhere'}"])
    with pytest.raises(DatasetError):
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "config.yaml").exists()  # the corrected command can use the same folder


def test_views_the_dataset_cannot_give_are_refused_before_any_work(tmp_path):
    from tests.data.fixtures_images import make_faces5pt

    make_faces5pt(tmp_path / "faces", num_train=4, num_test=2)
    config = load_config("faces5pt", overrides=[f"data.data_dir={tmp_path / 'faces'}", "data.pose_perturbation=temporal"])
    with pytest.raises(ConfigError, match="data.pose_perturbation: dataset 'faces5pt' has no videos"):
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_a_training_set_without_readable_frames_stops_the_run():
    def batch(indices, readable):
        return {"weight": np.full(len(indices), float(readable)), "index": np.array(indices),
                "source": np.array([f"frame{i}.jpg".encode() for i in indices])}

    nothing = SkippedFrames(epoch_size=100, first_batches=3)
    nothing.add(batch([0, 1], False))
    nothing.add(batch([2, 3], False))
    with pytest.raises(DatasetError, match=r"first 3 batches \(6 skipped, e.g. frame0.jpg"):
        nothing.add(batch([4, 5], False))
    # Readable frames early on, then a whole epoch without any: stopped when that epoch ends.
    later = SkippedFrames(epoch_size=4, first_batches=2)
    for indices, readable in (([0, 1], True), ([2, 3], False), ([4, 5], False), ([6, 7], False)):
        later.add(batch(indices, readable))
    with pytest.raises(DatasetError, match="epoch 1"):
        later.add(batch([8, 9], True))


def test_cli_reports_config_errors_and_unavailable_data(tmp_path, capsys):
    assert main(["--set", "model.num_landmark=3", "--output", str(tmp_path)]) == 2
    assert "unknown config key 'model.num_landmark'" in capsys.readouterr().err
    assert main(["--dataset", "faces5pt", "--data-dir", str(tmp_path / "nowhere"), "--output", str(tmp_path)]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_background_warmup_leaves_mask_and_background_untouched(tiny_config):
    # A decay as large as the gradient: during the warm-up neither a loss gradient nor the decay term may reach
    # MaskNet or BGNet (Adam would turn a bare decay term into lr-sized sign steps that erase their initial weights).
    tiny_config.train.weight_decay = 1.0
    tiny_config.train.background_warmup_steps = 1
    model = build_model(tiny_config.model, tiny_config.data.image_size)
    optimizer = keras.optimizers.SGD(1e-2)
    optimizer.build(model.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64)
    train_step = make_train_step(model, PerceptualLoss(layer_weights=(0, 0, 0, 0)), optimizer,
                                 tf.distribute.get_strategy(), tiny_config, global_batch_size=4, step=step)
    rng = np.random.default_rng(2)
    batch = {k: tf.constant(rng.uniform(-1, 1, (4, 32, 32, 3)), tf.float32) for k in ("pose", "appearance", "target")}
    batch["weight"] = tf.ones([4])
    waiting = model.mask_net.trainable_variables + model.background_net.trainable_variables

    def moved(variables, before):
        return min(np.abs(v.numpy() - b).max() for v, b in zip(variables, before))

    before, pose_before = [v.numpy() for v in waiting], trainable_values(model.pose_encoder)
    train_step(batch)  # step 0 < 1: the warm-up
    assert moved(waiting, before) == 0.0
    assert moved(model.pose_encoder.trainable_variables, pose_before) > 0
    train_step(batch)  # step 1: the factorisation takes part
    assert moved(waiting, before) > 0
