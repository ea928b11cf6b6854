"""Triton python-backend entry point for the image encoder (logic: homesearch.encoders.serving)."""

from homesearch.encoders.serving import ImageEncoderModel as TritonPythonModel  # noqa: F401
