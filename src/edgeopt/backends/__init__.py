"""Backends: ONNX Runtime (the baseline), TVM and OpenVINO, each in its own module.

Nothing is imported here: backends load lazily through `edgeopt.registry`.
"""
