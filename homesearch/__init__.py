"""homesearch: cross-modal product search for home-furnishing stores.

The top-level package holds what every service shares (configuration, logging,
gRPC plumbing, generated protobuf stubs under ``homesearch.v1``) and the public
Python client. Service code lives in ``services/*`` and ``gateway/`` and is
importable as ``services.encoders``, ``services.ranking`` and
``gateway``.
"""

__version__ = "0.1.0"
