"""The TFLite landmark detector: conversion from the SavedModel's `landmarks` signature, and running it.

The TFLite files hold `landmarks` only (a signature of that name, uint8 input
[1, S, S, 3]; the batch can be resized). int8 is full-integer quantisation where
the converter can, calibrated on images from --calibration-dir or from the run's
dataset; float16 stores float16 weights.

Example:
    content = convert_tflite("out/saved_model", "float16"); outputs, ms = run_tflite(content, images)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from fgbg_tf.serving import QUANTIZATIONS
from fgbg_tf.serving.module import run_per_image


def tflite_name(quantization: str) -> str:
    return f"landmarks_{'float32' if quantization == 'none' else quantization}.tflite"


def convert_tflite(saved_model: str | Path, quantization: str, calibration_images: np.ndarray | None = None) -> bytes:
    """Converts the SavedModel's `landmarks` signature to a TFLite flatbuffer.

    Args:
        saved_model: a folder written by `save_saved_model`.
        quantization: "none" (float32), "float16" (float16 weights) or "int8"
            (integer weights and activations where the converter can, float elsewhere).
        calibration_images: uint8 [N, S, S, 3], the representative dataset for "int8".
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=["landmarks"])
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        if calibration_images is None or len(calibration_images) == 0:
            raise ValueError("int8 quantisation needs calibration images (a representative dataset)")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ({"images": image[None]} for image in calibration_images)
    return converter.convert()


def run_tflite(model_content: bytes, images: np.ndarray) -> tuple[dict, float]:
    """Runs a TFLite landmark detector on uint8 images one by one; returns (outputs, ms per image)."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=model_content).get_signature_runner("landmarks")
    return run_per_image(lambda image: runner(images=image), images)
