"""The model learns: a short run's landmarks must predict the keypoints clearly better than its untrained model's.

Every other test would still pass if a change stopped the model from learning (a loss with no gradient to the pose
encoder, a broken heatmap, a data pipeline that pairs the wrong frames); this one fails. The baseline variant at
32 px with the perceptual loss: 150 steps took the test split's regression error from 11.6 % (untrained; the mean
pose gives 11.2 %) to 9.2 % when it was written.
"""

from tests.conftest import TINY_OVERRIDES
from fgbg_tf.config import load_config
from fgbg_tf.evaluation.runner import evaluate_checkpoint
from fgbg_tf.training.loop import train

STEPS = 150
OVERRIDES = [o for o in TINY_OVERRIDES if not o.startswith(("loss.layer_weights", "data.options", "train."))] + [
    "train.precision=float32",
    # The budget below was set without the clip that synthetic.yaml now has; with it this 32 px, batch-8 run
    # reached 10.3 % at 150 steps against the mean pose's 11.2, too close to the margin for a test.
    "train.clip_grad_norm=null",
    "data.options={train_videos: 8, test_videos: 2, frames_per_video: 32}",
    "data.temporal_offset=[3, 20]",
    "model.variant=baseline",
    "train.batch_size=8",
    f"train.max_steps={STEPS}",
    f"train.log_every={STEPS}",
    f"train.checkpoint_every={STEPS}",
    "train.image_every=100000",
]


def error(report):
    return report["results"][report["origin"]]["error_by_image_size_pct"]


def test_a_short_run_learns_landmarks_that_predict_the_keypoints(tmp_path):
    history = train(load_config("synthetic", overrides=OVERRIDES), tmp_path / "run", progress=False)
    assert history[-1]["loss"] < 0.2 * history[0]["loss"]
    untrained = evaluate_checkpoint(tmp_path / "run", output=tmp_path / "untrained", untrained=True, num_images=0)
    trained = evaluate_checkpoint(tmp_path / "run", output=tmp_path / "trained", num_images=0)
    # A clear margin: rounding and thread order move the error by hundredths of a point, learning by points.
    assert error(trained) < error(untrained) - 1.0
    assert error(trained) < trained["mean_pose_reference"]["error_by_image_size_pct"] - 1.0
