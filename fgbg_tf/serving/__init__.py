"""What a trained model serves: the SavedModel's signatures (`module`), the TFLite detector (`tflite`), and the
export that writes and checks both (`export`).

`python -m fgbg_tf.export` writes them; `python -m fgbg_tf.predict` runs them (`predictor`).
"""

# Listed here, where importing costs nothing, so that the command line offers them before TensorFlow loads.
FORMATS = ("saved_model", "tflite")
QUANTIZATIONS = ("none", "float16", "int8")  # the TFLite detector's variants: float32, float16 weights, int8
# The export's report, beside saved_model/ (predict reads the training framing from it).
REPORT_FILE = "export_report.json"
