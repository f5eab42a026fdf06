"""Trains NVIDIA's released model on pairs dumped by dump.py, then runs it over the dump's evaluation frames.

Runs in a separate virtualenv with torch and numpy only (see README.md); never imports fgbg_tf or TensorFlow:

    python tools/release_control/train_release.py --release ~/UnsupervisedLandmarkLearning \
        --data /tmp/control/data.npz --out /tmp/control/release [--clip 1.0] [--mask-bg-filters 32]

The model is the release's own `PartFactorizedModel`, imported from the folder --release names (its repository is
NVIDIA/UnsupervisedLandmarkLearning; nothing of it is copied here). What this script supplies is what the release
gets from its training script and could not run here: the device (its code calls `.cuda()`, redirected to the CPU),
its initialisation rule (Glorot-uniform convolution kernels, biases 0.1, applied with `model.apply` as it does), its
optimiser (Adam with coupled L2 weight decay, gradient-norm clipping at 1.0 unless --clip 0) and, so that the two
trainings differ in the model only, fgbg_tf's loss on the dump's Caffe VGG19 weights (the release's own loss needs
torchvision's ImageNet download): scale * (sum_l w_l * MSE(feature_scale * (VGG_l(x) - VGG_l(y))) + w_px * MSE(x, y)).

Writes to --out: losses.json (per step), predictions.npz (landmark means in pixels on the fit and report frames, the
report frames' part maps, masks and backgrounds on the fg/bg frames) and model.pt (the final state_dict). Score them
with score.py in fgbg_tf's virtualenv.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def import_release(folder: Path):
    """The release's PartFactorizedModel, with its hard-coded `.cuda()` calls sent to the CPU."""
    if not (folder / "models" / "part_factorized_model.py").is_file():
        raise SystemExit(f"--release {folder}: no models/part_factorized_model.py; clone "
                         "https://github.com/NVIDIA/UnsupervisedLandmarkLearning there")
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.cuda.current_device = lambda: "cpu"
    sys.path.insert(0, str(folder))
    from models.part_factorized_model import PartFactorizedModel
    from models.unet import Unet
    return PartFactorizedModel, Unet


def release_args(settings: dict, ngc: int, n_filters: int) -> dict:
    """The release's config keys for the dumped fgbg_tf settings (its defaults.yaml for the rest, but ngc and n_filters)."""
    if settings["variant"] == "nomask":
        raise SystemExit("the release has no 'nomask' variant (background without a mask); dump 'full' or 'baseline'")
    return {
        "n_landmarks": settings["num_landmarks"], "n_filters": n_filters, "img_size": settings["image_size"],
        "use_identity_covariance": settings["covariance"] == "fixed", "fixed_covar": settings["fixed_covariance"],
        "use_fg_bg_mask": settings["variant"] == "full", "low_res_mask": settings["low_res_mask"],
        "nsf": 6, "naf": 0, "ngc": ngc,
    }


def init_like_release(module):
    # The release's train.py: every plain Conv2d gets Glorot-uniform weights and biases of 0.1.
    if type(module) == nn.Conv2d:
        nn.init.xavier_uniform_(module.weight)
        if getattr(module, "bias", None) is not None:
            module.bias.data.fill_(0.1)


class CaffeVGGLoss(nn.Module):
    """fgbg_tf's PerceptualLoss (fgbg_tf/loss/perceptual.py) in PyTorch, on the dumped VGG19 convolutions."""

    def __init__(self, arrays, settings: dict):
        super().__init__()
        names = sorted((k[4:-7] for k in arrays.files if k.startswith("vgg_") and k.endswith("_weight")),
                       key=lambda n: tuple(int(d) for d in re.findall(r"\d+", n)))
        self.convs = nn.ModuleList()
        for name in names:
            weight = torch.from_numpy(arrays[f"vgg_{name}_weight"])
            conv = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1)
            conv.weight.data.copy_(weight)
            conv.bias.data.copy_(torch.from_numpy(arrays[f"vgg_{name}_bias"]))
            self.convs.append(conv)
        self.names = names
        self.requires_grad_(False)
        self.mean = torch.tensor(settings["caffe_bgr_mean"]).view(1, 3, 1, 1)
        self.layer_weights = settings["layer_weights"]
        self.pixel_weight, self.scale = settings["pixel_weight"], settings["loss_scale"]
        self.feature_scale = settings["feature_scale"]

    def features(self, images):
        x = (images.flip(1) + 1.0) * 127.5 - self.mean  # RGB [-1, 1] -> Caffe BGR
        outputs, block = [], "block1"
        for name, conv in zip(self.names, self.convs):
            if not name.startswith(block + "_"):
                x, block = F.max_pool2d(x, 2), name.split("_")[0]
            x = F.relu(conv(x))
            if name.endswith("_conv2"):
                outputs.append(x)
        return outputs

    def forward(self, reconstruction, target):
        terms = {"pixel": ((reconstruction - target) ** 2).mean()}
        if any(self.layer_weights):
            with torch.no_grad():
                target_features = self.features(target)
            for weight, name, rec, tgt in zip(self.layer_weights, ("relu1_2", "relu2_2", "relu3_2", "relu4_2"),
                                              self.features(reconstruction), target_features):
                if weight:
                    terms[name] = weight * (((rec - tgt) * self.feature_scale) ** 2).mean()
        perceptual = sum(v for k, v in terms.items() if k != "pixel")
        return self.scale * (perceptual + self.pixel_weight * terms["pixel"]), terms


def nchw(array) -> torch.Tensor:
    return torch.from_numpy(np.asarray(array, np.float32)).permute(0, 3, 1, 2).contiguous()


def from_uint8(images) -> torch.Tensor:
    return nchw(np.asarray(images, np.float32) / 127.5 - 1.0)


@torch.no_grad()
def predictions(model, arrays, last_step: int, batch_size: int = 64) -> dict:
    """Landmark means (pixels, fgbg_tf's convention) and part maps; masks and backgrounds on the fg/bg frames."""
    model.eval()
    size = arrays["fit_image"].shape[1]
    out = {}
    for split in ("fit", "report"):
        means, maps = [], []
        for start in range(0, len(arrays[f"{split}_image"]), batch_size):
            result = model(from_uint8(arrays[f"{split}_image"][start:start + batch_size]))
            mean = torch.stack(result["vis_centers"], -1)  # [B, K, 2] (x, y) in [-1, 1)
            means.append(((mean + 1.0) * size / 2.0).numpy())
            if split == "report":
                maps.append(result["input_a_heatmaps"].permute(0, 2, 3, 1).numpy().astype(np.float16))
        out[f"{split}_means_pixels"] = np.concatenate(means)
        if maps:
            out["report_part_maps"] = np.concatenate(maps)
    masks, backgrounds = [], []
    for start in range(0, len(arrays["fact_image"]), batch_size):
        part = slice(start, start + batch_size)
        result = model(from_uint8(arrays["fact_image"][part]), from_uint8(arrays["fact_partner"][part]))
        if "input_a_fg_mask" in result:
            masks.append(result["input_a_fg_mask"][:, 0].numpy().astype(np.float16))
            backgrounds.append(result["background_recon"].permute(0, 2, 3, 1).numpy().astype(np.float16))
    if masks:
        out["fact_mask"], out["fact_background"] = np.concatenate(masks), np.concatenate(backgrounds)
    # Figure 6 of the last training batch: score.py draws it with fgbg_tf's own layout.
    pose, appearance = (nchw(arrays[f"train_{k}"][last_step][:8]) for k in ("pose", "appearance"))
    result = model(pose, appearance)
    out["figure_mean"] = torch.stack(result["vis_centers"], -1).numpy()
    pictures = {"reconstruction": "reconstruction", "foreground": "decoded_foreground",
                "background": "background_recon", "mask": "input_a_fg_mask"}
    for name, key in pictures.items():
        if key in result:
            out[f"figure_{name}"] = result[key].permute(0, 2, 3, 1).numpy()
    model.train()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release", required=True, type=Path, help="a checkout of NVIDIA/UnsupervisedLandmarkLearning")
    parser.add_argument("--data", required=True, help="the .npz dump.py wrote")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--steps", type=int, help="train on the first N dumped steps (default: all)")
    parser.add_argument("--clip", type=float, default=1.0, help="global gradient-norm clip (release: 1.0; 0 = off)")
    parser.add_argument("--mask-bg-filters", type=int, default=32,
                        help="first-layer width of MaskNet and BGNet (release: 32, hard-coded; fgbg_tf's small is ~8)")
    parser.add_argument("--ngc", type=int, default=64, help="SPADE decoder width (release: 64)")
    parser.add_argument("--n-filters", type=int, default=32, help="appearance vector size (release: 32; small: 16)")
    parser.add_argument("--log-every", type=int, default=25)
    args = parser.parse_args(argv)

    arrays = np.load(args.data)
    settings = json.loads(str(arrays["settings"]))
    steps = min(args.steps or settings["steps"], len(arrays["train_pose"]))
    PartFactorizedModel, Unet = import_release(args.release)
    torch.manual_seed(settings["seed"])
    torch.set_num_threads(os.cpu_count() or 1)
    config = release_args(settings, args.ngc, args.n_filters)
    model = PartFactorizedModel(config)
    if config["use_fg_bg_mask"] and args.mask_bg_filters != 32:
        # The release's widths for these two are literals in its constructor; the same Unets, narrower.
        f = args.mask_bg_filters
        model.bg_net = Unet(3, [f, 2 * f, 4 * f, 3], 3, 3, f)
        model.fg_mask_net = Unet(config["n_landmarks"], [f, f, f, 1], 3, 3, f)
    model.apply(init_like_release)
    loss_fn = CaffeVGGLoss(arrays, settings)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["learning_rate"],
                                 weight_decay=settings["weight_decay"], eps=settings["adam_epsilon"])
    parameters = sum(p.numel() for p in model.parameters())
    print(f"release model: {parameters / 1e6:.2f} M parameters, {steps} steps of {settings['batch_size']}, "
          f"clip {args.clip or 'off'}, MaskNet/BGNet filters {args.mask_bg_filters}", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    history, started = [], time.perf_counter()
    for step in range(steps):
        pose, appearance, target = (nchw(arrays[f"train_{k}"][step]) for k in ("pose", "appearance", "target"))
        optimizer.zero_grad()
        loss, terms = loss_fn(model(pose, appearance)["reconstruction"], target)
        loss.backward()
        if args.clip:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip))
        else:
            grad_norm = float(torch.linalg.vector_norm(torch.stack(
                [p.grad.norm() for p in model.parameters() if p.grad is not None])))
        optimizer.step()
        if not np.isfinite(loss.item()):
            raise SystemExit(f"loss is {float(loss)} at step {step + 1}")
        history.append({"step": step + 1, "loss": float(loss), "grad_norm": grad_norm,
                        **{k: float(v) for k, v in terms.items()}})
        if (step + 1) % args.log_every == 0 or step + 1 == steps:
            rate = (step + 1) * settings["batch_size"] / (time.perf_counter() - started)
            print(f"step {step + 1}: loss {float(loss):.3f}, grad norm {grad_norm:.2f}, {rate:.2f} images/s",
                  flush=True)
    (args.out / "losses.json").write_text(json.dumps(history))
    torch.save(model.state_dict(), args.out / "model.pt")
    run = {"steps": steps, "clip": args.clip, "mask_bg_filters": args.mask_bg_filters, "ngc": args.ngc,
           "n_filters": args.n_filters, "parameters": parameters,
           "seconds": time.perf_counter() - started, "release_args": config}
    np.savez(args.out / "predictions.npz", run=np.array(json.dumps(run)), **predictions(model, arrays, steps - 1))
    print(f"wrote {args.out}/predictions.npz; score it with tools/release_control/score.py", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
