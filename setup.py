"""ppresvar: faithful PaddlePaddle reproductions of ResNet variants.

Paddle itself is an extra, never a hard requirement: ``paddlepaddle`` (CPU)
and ``paddlepaddle-gpu`` both provide the ``paddle`` module, and installing
one over the other breaks a GPU box. Install paddle first (GPU users: the
paddlepaddle-gpu build for their CUDA), then ``pip install -e .``; on a CPU
machine ``pip install -e .[cpu]`` brings paddlepaddle along.
"""
from setuptools import find_packages, setup

setup(
    name="ppresvar",
    version="0.1.0",
    description="ResNet variants (CIFAR 6n+2, RiR, NAM, DyReLU, ResNet-RS) in PaddlePaddle, reproduced faithfully",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["ppresvar", "ppresvar.*"]),
    # the CPU kernels' sources, compiled on first use (ppresvar/kernels)
    package_data={"ppresvar.kernels": ["*.cc"]},
    python_requires=">=3.8",
    install_requires=["numpy", "pyyaml>=5.1", "pillow", "safetensors"],
    extras_require={
        "cpu": ["paddlepaddle>=2.6"],
        "plot": ["matplotlib"],
        "onnx": ["paddle2onnx", "onnxruntime"],
        # paddle2onnx + onnxruntime: the ONNX leg of tests/export runs in CI
        # (without them it is skipped; paddle2onnx 2.x needs paddle >= 3).
        "test": ["pytest", "hypothesis", "scikit-learn", "matplotlib", "paddle2onnx", "onnxruntime"],
        # the quick-start demo: the digits data set ships inside scikit-learn
        "demo": ["scikit-learn", "matplotlib"],
    },
    entry_points={},
    classifiers=["Programming Language :: Python :: 3", "Topic :: Scientific/Engineering :: Artificial Intelligence"],
)
