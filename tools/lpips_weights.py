"""Writes the LPIPS v0.1 AlexNet weights .npz that `fgbg_tf.evaluation.lpips.load_lpips_weights` reads.

Runs in a separate virtualenv that has torch and numpy (fgbg_tf never imports this file and needs no torch):

    python -m venv /tmp/torch-env && /tmp/torch-env/bin/pip install torch numpy
    /tmp/torch-env/bin/python tools/lpips_weights.py alexnet-owt-7be5be79.pth alex.pth lpips_alex_v0.1.npz

The first file is torchvision's ImageNet AlexNet state dict (what `torchvision.models.alexnet(weights=
"IMAGENET1K_V1")` downloads into ~/.cache/torch/hub/checkpoints/); the second is `lpips/weights/v0.1/alex.pth` from
the `lpips` wheel (`pip download lpips==0.1.4 --no-deps`, then unzip), keys lin0.model.1.weight .. lin4.model.1.weight,
each [1, C, 1, 1]. The output holds conv{1..5}_kernel (HWIO), conv{1..5}_bias and lin{0..4} ([C]); loading it in the
project's environment checks every key and shape.
"""

import argparse

import numpy as np

# Indices in torchvision's alexnet.features of the five convolutions whose ReLUs LPIPS taps.
ALEXNET_CONV_INDICES = (0, 3, 6, 8, 10)


def convert(alexnet: dict, lin: dict) -> dict:
    """The .npz arrays from the two state dicts given as {name: numpy array} (torch layouts)."""
    arrays = {}
    for i, index in enumerate(ALEXNET_CONV_INDICES, start=1):
        # torch stores kernels [out, in, kh, kw]; TF convolves with [kh, kw, in, out].
        arrays[f"conv{i}_kernel"] = np.transpose(alexnet[f"features.{index}.weight"], (2, 3, 1, 0))
        arrays[f"conv{i}_bias"] = alexnet[f"features.{index}.bias"]
        arrays[f"lin{i - 1}"] = lin[f"lin{i - 1}.model.1.weight"].reshape(-1)  # the 1x1 conv [1, C, 1, 1] -> [C]
    return {name: np.ascontiguousarray(value, np.float32) for name, value in arrays.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("alexnet", help="torchvision AlexNet state dict (.pth)")
    parser.add_argument("lin", help="the lpips wheel's lpips/weights/v0.1/alex.pth")
    parser.add_argument("output", help="the .npz to write")
    args = parser.parse_args(argv)
    import torch  # only here, so that the conversion itself can be tested without torch

    def state(path):
        return {name: tensor.numpy() for name, tensor in torch.load(path, map_location="cpu", weights_only=True).items()}

    arrays = convert(state(args.alexnet), state(args.lin))
    np.savez(args.output, **arrays)
    for name, value in arrays.items():
        print(f"{name:14s} {value.shape}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
