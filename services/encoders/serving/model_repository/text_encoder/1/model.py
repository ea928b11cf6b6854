"""Triton python-backend entry point for the text encoder (logic: services.encoders.serving.triton_python)."""

from services.encoders.serving.triton_python import TextEncoderModel as TritonPythonModel  # noqa: F401
