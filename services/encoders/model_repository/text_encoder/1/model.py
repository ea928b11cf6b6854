"""Triton python-backend entry point for the text encoder (logic: homesearch.encoders.serving)."""

from homesearch.encoders.serving import TextEncoderModel as TritonPythonModel  # noqa: F401
