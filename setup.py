"""Installs fgbg_tf. CPU hosts (and CI) get tensorflow-cpu; `pip install .[gpu]` adds the CUDA build."""

from setuptools import find_packages, setup

# Versions tested together on Python 3.11 (see README "Dependencies" for why each is here).
REQUIRES = [
    "tensorflow-cpu==2.21.0; platform_machine == 'x86_64' or platform_machine == 'AMD64'",
    "tensorflow==2.21.0; platform_machine != 'x86_64' and platform_machine != 'AMD64'",
    "keras==3.15.1",
    "tensorboard==2.21.0",
    "tensorflow-datasets==4.9.10",
    "importlib_resources>=6",
    "numpy>=1.26,<3",
    "opencv-python-headless==5.0.0.93",
    "scikit-learn==1.9.1",
    "scipy>=1.11",
    "ai-edge-litert==2.3.0",
    "pyyaml>=6",
]
ONNX = ["tf2onnx==1.17.0", "onnxruntime>=1.20"]

setup(
    name="fgbg_tf",
    version="0.1.0",
    description="Unsupervised disentanglement of pose, appearance and background (Dundar et al.) in TF2 / Keras 3",
    python_requires=">=3.11",
    packages=find_packages(include=["fgbg_tf", "fgbg_tf.*"]) + ["fgbg_tf.configs"],
    package_dir={"fgbg_tf.configs": "configs"},
    package_data={"fgbg_tf.configs": ["*.yaml", "variants/*.yaml"]},
    install_requires=REQUIRES,
    extras_require={
        "gpu": ["tensorflow[and-cuda]==2.21.0"],
        # The optional ONNX export (python -m fgbg_tf.export --formats onnx): TensorFlow's converter and the runtime
        # the export measures the file with.
        "onnx": ONNX,
        "test": ["pytest>=8", "pytest-xdist>=3.5", "filelock>=3.12", *ONNX],
    },
)
