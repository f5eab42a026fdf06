"""The ONNX landmark detector: the `landmarks` signature converted by tf2onnx, run with ONNX Runtime.

An optional format (`pip install -e ".[onnx]"`): tf2onnx is TensorFlow's own converter to ONNX, ONNX Runtime the
runtime most ONNX users deploy with, and the one the export measures the file on. The file holds `landmarks` only:
input "images" uint8 [B, S, S, 3], outputs "means", "means_pixels", "covariances", "part_maps" as in
`fgbg_tf/serving/module.py` (the signature's shape checks are dropped by the converter, as TFLite drops them).

Example:
    content = convert_onnx(InferenceModule(model)); outputs, ms = run_onnx(content, images)
"""

from __future__ import annotations

import numpy as np

from fgbg_tf.serving.module import InferenceModule, run_per_image

ONNX_FILE = "landmarks.onnx"
# Opset 17 (ONNX 1.12, 2022): supported by every ONNX Runtime of the last years and by tf2onnx 1.17's full op set.
OPSET = 17


def require_onnx() -> None:
    """Raises RuntimeError naming the extra to install when tf2onnx or onnxruntime is missing."""
    missing = []
    for package, module in (("tf2onnx", "tf2onnx"), ("onnxruntime", "onnxruntime")):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise RuntimeError(f"--formats onnx needs {' and '.join(missing)}: pip install -e \".[onnx]\" "
                          "(or pip install tf2onnx onnxruntime)")


def convert_onnx(module: InferenceModule) -> bytes:
    """The module's `landmarks` function as a serialised ONNX model (opset OPSET)."""
    require_onnx()
    import tf2onnx

    model, _ = tf2onnx.convert.from_function(module.landmarks, input_signature=module.landmarks.input_signature,
                                             opset=OPSET)
    return model.SerializeToString()


def run_onnx(model_content: bytes, images: np.ndarray) -> tuple[dict, float]:
    """Runs an ONNX landmark detector on uint8 images one by one with ONNX Runtime; returns (outputs, ms per image)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(model_content, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return run_per_image(lambda image: dict(zip(names, session.run(names, {"images": image}))), images)
