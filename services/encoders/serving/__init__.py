"""Serving the encoders on Triton: the launcher (``homesearch triton``), the model repository and its
rendering, the python-backend models and the wire format shared with ``services.encoders.client``."""
