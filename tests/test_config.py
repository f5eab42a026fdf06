import pytest

from fgbg_tf.config import DATASET_NAMES, ConfigError, config_dir, load_config


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_every_dataset_config_is_valid(name):
    config = load_config(name)
    assert config.data.name == name


def test_paper_values_in_dataset_configs():
    bbc, h36m, celeba = load_config("bbc"), load_config("h36m"), load_config("celeba")
    assert (bbc.model.num_landmarks, bbc.model.covariance, bbc.data.image_size) == (30, "fitted", 128)
    assert (h36m.model.num_landmarks, h36m.model.covariance, h36m.model.fixed_covariance) == (16, "fixed", 0.08)
    assert (celeba.model.num_landmarks, celeba.model.covariance, celeba.model.fixed_covariance) == (10, "fixed", 0.08)
    assert celeba.data.pose_perturbation == "tps" and bbc.data.pose_perturbation == "temporal"


def test_variant_files_and_overrides_apply_in_order():
    variants = config_dir() / "variants"
    config = load_config("bbc", [variants / "nomask.yaml"], ["model.num_landmarks=12", "data.temporal_offset=[3, 39]"])
    assert config.model.variant == "nomask"
    assert config.model.num_landmarks == 12
    assert config.data.temporal_offset == (3, 39)
    assert load_config("bbc", [variants / "baseline.yaml"]).model.variant == "baseline"


def test_unknown_key_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  num_landmark: 10\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown config key 'model.num_landmark'"):
        load_config("synthetic", [bad])
    with pytest.raises(ConfigError, match=r"unknown config key 'train.lr'"):
        load_config("synthetic", overrides=["train.lr=0.1"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.num_landmarks=ten", "model.num_landmarks must be an integer"),
        ("model.variant=fancy", "model.variant must be one of"),
        ("data.image_size=50", "data.image_size must be a multiple of 16"),
        ("data.temporal_offset=[5, 2]", "data.temporal_offset"),
        ("train.learning_rate=-1", "train.learning_rate must be > 0"),
        ("loss.layer_weights=[1, 2]", "loss.layer_weights must be a list of 4 values"),
        ("model.low_res_mask=1", "model.low_res_mask must be true or false"),
        ("model", "must look like section.key=value"),
        ("loss.scale=-1", "loss.scale must be > 0"),
        ("train.adam_epsilon=0", "train.adam_epsilon must be > 0"),
        ("train.seed=-3", "train.seed must be >= 0"),
        ("data.tps.scale=[1.15, 1.05]", r"data.tps.scale must be \[low, high\]"),
        ("data.tps.rotation=-0.1", "data.tps.rotation must be >= 0"),
        ("data.color_jitter.hue=0.7", r"data.color_jitter.hue must be in \[0, 0.5\]"),
        ("data.color_jitter.contrast=-0.2", "data.color_jitter.contrast must be >= 0"),
        ("loss.vgg_weights=/nowhere/vgg19.h5", "loss.vgg_weights: /nowhere/vgg19.h5 is not a file"),
        ("data.options={train_videos: [1", r"--set data.options=.*: the value .* is not valid YAML \(expected"),
        ("model.mask_temperature=0", "model.mask_temperature must be > 0"),
        ("model.mask_prior=-1", "model.mask_prior must be >= 0"),
        ("model.background_downsample=0", "model.background_downsample must be >= 1"),
        ("train.learning_rate_decay=[500,500]", r"train.learning_rate_decay must be \[start, end\] with 0 <= start < end"),
        ("train.learning_rate_decay=[100]", "train.learning_rate_decay"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("synthetic", overrides=[override])


def test_missing_or_malformed_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("synthetic", [tmp_path / "missing.yaml"])
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config("synthetic", [broken])


def test_to_dict_round_trips():
    from fgbg_tf.config import config_from_dict

    config = load_config("h36m", overrides=["train.batch_size=4"])
    assert config_from_dict(config.to_dict()) == config


def test_numbers_typed_as_yaml_strings_are_accepted():
    # YAML 1.1 reads 1e-4 (no dot) as a string; a person means the number.
    config = load_config("synthetic", overrides=["train.learning_rate=1e-4", "train.clip_grad_norm=1e0"])
    assert config.train.learning_rate == 1e-4 and config.train.clip_grad_norm == 1.0
    with pytest.raises(ConfigError, match="train.learning_rate must be a number"):
        load_config("synthetic", overrides=["train.learning_rate=fast"])


def test_auto_precision_follows_the_hardware(monkeypatch):
    from fgbg_tf.training import distribute

    monkeypatch.setattr(distribute, "cpu_has_amx", lambda: True)
    assert distribute.resolve_precision("auto") == "mixed_bfloat16"
    monkeypatch.setattr(distribute, "cpu_has_amx", lambda: False)
    assert distribute.resolve_precision("auto") == "float32"
    assert distribute.resolve_precision("mixed_bfloat16") == "mixed_bfloat16"


def test_overrides_of_single_options_keep_the_others():
    config = load_config("videos", overrides=["data.options.cache_dir=/tmp/c", "data.options.test_videos=[a.mp4]"])
    assert config.data.options == {"framing": "centre_crop", "test_videos": ["a.mp4"], "cache_dir": "/tmp/c"}
    assert load_config("videos", overrides=["data.options={}"]).data.options == {}


def test_landmark_foreground_weight_is_checked_by_name():
    with pytest.raises(ConfigError, match="loss.landmark_foreground_weight must be >= 0"):
        load_config("synthetic", overrides=["loss.landmark_foreground_weight=-1"])
