"""What a trained model serves: the SavedModel's signatures (`module`), the TFLite detector (`tflite`), the ONNX
detector (`onnx`), and the export that writes and checks them (`export`).

`python -m fgbg_tf.export` writes them; `python -m fgbg_tf.predict` runs them (`predictor`).
"""

# Listed here, where importing costs nothing, so that the command line offers them before TensorFlow loads.
# saved_model: every signature; landmarks_saved_model: the detector's signatures alone (no decoder weights);
# onnx: the detector for ONNX Runtime (optional extra).
FORMATS = ("saved_model", "landmarks_saved_model", "tflite", "onnx")
DEFAULT_FORMATS = ("saved_model", "tflite")
QUANTIZATIONS = ("none", "float16", "int8")  # the TFLite detector's variants: float32, float16 weights, int8
# The export's report, beside saved_model/ (predict reads the training framing from it).
REPORT_FILE = "export_report.json"
