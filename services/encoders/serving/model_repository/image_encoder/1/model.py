"""Triton python-backend entry point for the image encoder (logic: services.encoders.serving.triton_python)."""

from services.encoders.serving.triton_python import ImageEncoderModel as TritonPythonModel  # noqa: F401
