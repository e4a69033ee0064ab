"""Frontends: importers that turn models in other formats into ONNX.

- :mod:`edgeopt.frontends.tflite`: TensorFlow Lite flatbuffers, read without TensorFlow.
"""
