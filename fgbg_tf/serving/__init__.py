"""What a trained model serves: the SavedModel's signatures (`module`) and the TFLite detector (`tflite`).

`python -m fgbg_tf.export` writes both; `python -m fgbg_tf.predict` runs them.
"""
