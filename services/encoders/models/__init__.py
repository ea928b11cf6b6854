"""Model families and the one encoder interface they implement (``base``): the e5 text tower,
the EfficientNet-Lite image tower and its head, pluggable CLIP checkpoints, image preprocessing.
Pure PyTorch; nothing here knows about Triton."""
